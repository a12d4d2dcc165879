// The autoscaler end to end through `f2s dev` with real function processes and a bounded
// load generator: a load step raises instances within two ticks and stays within bounds,
// steady load does not oscillate, load gone goes back to min (and to zero after the idle
// time), no request fails or is lost through 0 → N → 0, and reading the signal from a real
// Prometheus scraping the control plane decides the same as reading it locally.

import { assert, assertEquals } from "../harness/assert.ts";
import { processesMatching, startDev } from "../harness/dev.ts";
import { startPrometheus } from "../harness/prometheus.ts";
import { freePort } from "../../common/self.ts";
import { startLoad } from "./load.ts";
import {
  cleanup,
  decisions,
  desired,
  fastConfig,
  functionsDir,
  manifest,
  ready,
  sleep,
  until,
} from "./e2e.ts";

const TICK = 500;

Deno.test({
  name: "f2s dev: a load step scales up within two ticks, within bounds, steadily, back to min",
  async fn() {
    const dir = await functionsDir([manifest("sleeper", { minReplicas: 1, maxReplicas: 4 })]);
    const config = fastConfig({
      tick: `${TICK}ms`,
      stable_window: "4s",
      panic_window: "1s",
      panic_threshold: 2,
      target_concurrency: 2,
      idle_timeout: "2s",
    });
    const dev = await startDev({ functionsDir: dir, config });
    const url = `${dev.url}/invoke/sleeper/sleep?ms=200`;
    let load: ReturnType<typeof startLoad> | undefined;
    try {
      await until("ready instances", () => ready(dev.url, "sleeper"), 1, 20_000);
      assertEquals(await decisions(dev.url, "sleeper"), []);

      // Step: 10 concurrent requests at a target of 2 per instance wants 5; the bound is 4.
      const step = Date.now();
      load = startLoad({ url, workers: 10, deadlineMs: 50_000, maxRequests: 20_000 });
      await until("desired instances", () => desired(dev.url, "sleeper"), 4, 10_000);
      const [first] = await decisions(dev.url, "sleeper");
      assert(
        first.time - step <= 2 * TICK + 250,
        `first scale-up ${first.time - step} ms after the load step: ${first.message}`,
      );
      await until("ready instances", () => ready(dev.url, "sleeper"), 4, 20_000);

      // Steady at 5 concurrent: down to ceil(5 / 2) = 3 once the panic is over, then no change.
      load.setWorkers(5);
      await until("desired instances", () => desired(dev.url, "sleeper"), 3, 15_000);
      const settled = (await decisions(dev.url, "sleeper")).length;
      await sleep(6000);
      const steady = (await decisions(dev.url, "sleeper")).slice(settled);
      assertEquals(steady, [], "steady load changed the instance count");
      assertEquals(await ready(dev.url, "sleeper"), 3);

      // Load gone: back to minReplicas 1, and never below it however long it idles.
      const stats = await load.stop();
      load = undefined;
      await until("desired instances", () => desired(dev.url, "sleeper"), 1, 15_000);
      await sleep(3000);
      assertEquals(await desired(dev.url, "sleeper"), 1);
      await until("ready instances", () => ready(dev.url, "sleeper"), 1, 15_000);

      const all = await decisions(dev.url, "sleeper");
      for (const d of all) assert(d.to >= 1 && d.to <= 4, `out of bounds: ${d.message}`);
      assertEquals(all.at(-1)!.to, 1);
      assertEquals(stats.failures, []);
      assert(stats.ok > 100, `only ${stats.ok} requests answered`);
    } finally {
      await load?.stop();
      await cleanup(dir, dev);
    }
  },
});

Deno.test({
  name: "f2s dev: 0 → N → 0 under continuous load loses no request, idles to zero",
  async fn() {
    const dir = await functionsDir([
      manifest("sleeper", {
        minReplicas: 0,
        maxReplicas: 4,
        // Per-function settings over the global ones below.
        scaling: { targetConcurrency: 2, stableWindow: "2s", panicWindow: "1s", idleTimeout: "4s" },
      }),
    ]);
    const config = fastConfig({
      tick: `${TICK}ms`,
      stable_window: "60s",
      panic_window: "6s",
      target_concurrency: 100,
      idle_timeout: "60s",
    });
    const dev = await startDev({ functionsDir: dir, config });
    const instances = () => processesMatching(`${dir}/sleeper`).length;
    const url = `${dev.url}/invoke/sleeper/sleep?ms=200`;
    let load: ReturnType<typeof startLoad> | undefined;
    try {
      // minReplicas 0 starts with nothing running.
      await sleep(1000);
      assertEquals(await ready(dev.url, "sleeper"), 0);
      assertEquals(instances(), 0);

      // 0 → 1: the first requests are held while the function wakes.
      load = startLoad({ url, workers: 1, deadlineMs: 60_000, maxRequests: 20_000 });
      await until("ready instances", () => ready(dev.url, "sleeper"), 1, 20_000);
      // 1 → 4 under a step, then 4 → 1 (draining three) while requests keep coming.
      load.setWorkers(8);
      await until("ready instances", () => ready(dev.url, "sleeper"), 4, 20_000);
      await sleep(1500);
      load.setWorkers(1);
      await until("desired instances", () => desired(dev.url, "sleeper"), 1, 15_000);
      await until("ready instances", () => ready(dev.url, "sleeper"), 1, 15_000);
      await sleep(1500);
      const stats = await load.stop();
      load = undefined;
      // The server counts the last request done after it was sent: idle time starts no
      // earlier. (The client's clock after stop() can be later than the server's count.)
      const lastRequest = stats.lastSentAt;

      // No request failed or got lost on the way up or down.
      assertEquals(stats.failures, []);
      assertEquals(stats.pending, 0);
      assertEquals(stats.ok, stats.sent);

      // Nothing in flight: one instance stays for the idle timeout (4 s), then zero.
      await sleep(2500);
      assertEquals(await desired(dev.url, "sleeper"), 1, "scaled to zero before the idle timeout");
      const zero = await until("desired instances", () => desired(dev.url, "sleeper"), 0, 10_000);
      assert(zero - lastRequest >= 4000, `went to zero ${zero - lastRequest} ms after the load`);
      await until("ready instances", () => ready(dev.url, "sleeper"), 0, 15_000);
      await until("instance processes", () => Promise.resolve(instances()), 0, 20_000);

      const log = await decisions(dev.url, "sleeper");
      assertEquals(log[0].reason, "wake");
      assertEquals(Math.max(...log.map((d) => d.to)), 4);
      const last = log.at(-1)!;
      assertEquals([last.from, last.to, last.reason], [1, 0, "idle"]);
      assert(last.idleForMs >= 4000, last.message);

      // From zero again: the next request is held and answered.
      const res = await fetch(url);
      assertEquals(res.status, 200, await res.text());
    } finally {
      await load?.stop();
      await cleanup(dir, dev);
    }
  },
});

/** One run of the same load against `f2s dev`: 5 concurrent for a while, then nothing. */
async function scenario(options: { port?: number; prometheusUrl?: string }) {
  const dir = await functionsDir([manifest("sleeper", { minReplicas: 0, maxReplicas: 4 })]);
  const config = fastConfig(
    {
      tick: `${TICK}ms`,
      stable_window: "4s",
      // Two scrapes at least, so Prometheus' rate() has two samples in the panic window.
      panic_window: "2s",
      target_concurrency: 2,
      idle_timeout: "3s",
      source: options.prometheusUrl ? "prometheus" : "local",
    },
    options.prometheusUrl ? `prometheus:\n  url: ${options.prometheusUrl}\n` : "",
  );
  const dev = await startDev({ functionsDir: dir, config, port: options.port });
  let load: ReturnType<typeof startLoad> | undefined;
  try {
    load = startLoad({
      url: `${dev.url}/invoke/sleeper/sleep?ms=200`,
      workers: 5,
      deadlineMs: 40_000,
      maxRequests: 20_000,
    });
    // 5 concurrent at target 2: three instances, held for a while.
    await until("desired instances", () => desired(dev.url, "sleeper"), 3, 15_000);
    await sleep(4000);
    const underLoad = await desired(dev.url, "sleeper");
    const stats = await load.stop();
    load = undefined;
    await until("desired instances", () => desired(dev.url, "sleeper"), 0, 15_000);
    return { underLoad, stats, log: await decisions(dev.url, "sleeper") };
  } finally {
    await load?.stop();
    await cleanup(dir, dev);
  }
}

Deno.test({
  name: "f2s dev: the Prometheus-backed signal gives the same decisions as the local one",
  async fn() {
    const local = await scenario({});
    const port = freePort();
    const prom = await startPrometheus({ targets: [`127.0.0.1:${port}`], scrapeInterval: "1s" });
    let remote;
    try {
      remote = await scenario({ port, prometheusUrl: prom.url });
    } finally {
      await prom.stop();
    }
    const summary = (r: typeof local) => ({
      underLoad: r.underLoad,
      peak: Math.max(...r.log.map((d) => d.to)),
      first: r.log[0].reason,
      last: [r.log.at(-1)!.to, r.log.at(-1)!.reason],
      failures: r.stats.failures,
    });
    const trace = (r: typeof local) => r.log.map((d) => d.message).join("\n");
    assertEquals(
      summary(remote),
      summary(local),
      `local:\n${trace(local)}\nprometheus:\n${trace(remote)}`,
    );
    assertEquals(summary(local).underLoad, 3);
    assertEquals(new Set(remote.log.map((d) => d.source)), new Set(["prometheus"]));
    assertEquals(new Set(local.log.map((d) => d.source)), new Set(["local"]));
  },
});
