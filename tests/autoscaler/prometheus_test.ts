// The Prometheus-backed signal against a real Prometheus (Debian's package, started by
// tests/harness/prometheus.ts, scraping every second): it sees what the trackers export,
// sums several control-plane replicas, and leads the autoscaler to the same decisions as
// the local signal under the same load.

import { realClock } from "../../common/clock.ts";
import { assert, assertEquals, assertRejects } from "../harness/assert.ts";
import { startPrometheus } from "../harness/prometheus.ts";
import { createAutoscaler } from "../../control/autoscaler/autoscaler.ts";
import {
  type ConcurrencyTracker,
  createConcurrencyTracker,
} from "../../control/autoscaler/concurrency.ts";
import { localSignal, prometheusSignal, SignalError } from "../../control/autoscaler/signal.ts";
import type { AutoscalingConfig } from "../../control/config.ts";
import { createEventLog } from "../../control/events.ts";
import { createMetrics, type Metrics } from "../../control/metrics.ts";
import { type FunctionDef, parseFunction } from "../../common/function.ts";
import { countingRuntime } from "./replicas.ts";

/** A control-plane replica's /metrics: a tracker exporting into its own registry. */
function metricsServer() {
  const metrics = createMetrics({ processMetrics: false });
  const tracker = createConcurrencyTracker(realClock, { metrics });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async () =>
      new Response(await metrics.registry.metrics(), {
        headers: { "content-type": metrics.registry.contentType },
      }),
  );
  return {
    metrics,
    tracker,
    target: `127.0.0.1:${server.addr.port}`,
    stop: () => server.shutdown(),
  };
}

function fnDef(name: string, target: Record<string, unknown>): FunctionDef {
  const r = parseFunction({
    metadata: { name },
    spec: { endpoint: `/${name}`, method: "GET" },
    target: { containerImage: name, ...target },
  });
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.fn;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sets the concurrency of `fn` in `tracker` to `n` (as the dispatcher's ±1 calls would). */
function setLoad(tracker: ConcurrencyTracker, fn: string, n: number) {
  tracker.change(fn, n - tracker.current(fn));
}

Deno.test({
  name: "prometheus signal: sums the replicas' exported concurrency over a window",
  async fn() {
    const a = metricsServer();
    const b = metricsServer();
    const prom = await startPrometheus({ targets: [a.target, b.target], scrapeInterval: "1s" });
    try {
      await prom.waitForTargetsUp();
      let queries = 0;
      const counting: typeof fetch = (input, init) => {
        queries++;
        return fetch(input, init);
      };
      const signal = prometheusSignal({ url: prom.url, fetch: counting });
      // Unknown function: no series at all is no load, not an error.
      assertEquals(await signal.average("nobody", 3000), 0);
      assertEquals(await signal.lastActivity("nobody"), undefined);
      // Each replica's dispatcher sees its share: 3 and 4 in flight.
      setLoad(a.tracker, "hello", 3);
      setLoad(b.tracker, "hello", 4);
      setLoad(a.tracker, "other", 1);
      await sleep(5000);
      queries = 0;
      const [avg, other] = await Promise.all([
        signal.average("hello", 3000),
        signal.average("other", 3000),
      ]);
      assert(Math.abs(avg - 7) < 0.5, `expected about 7 concurrent, Prometheus says ${avg}`);
      assert(Math.abs(other - 1) < 0.2, `expected about 1 concurrent, Prometheus says ${other}`);
      assertEquals(queries, 1, "one query answers every function of a round");
      // Busy: last activity is within a scrape or two of now.
      const busy = await signal.lastActivity("hello");
      assert(busy !== undefined && Date.now() - busy < 2500, `busy last activity ${busy}`);
      // All done on both replicas: the average falls to 0, last activity stays at the end.
      setLoad(a.tracker, "hello", 0);
      setLoad(a.tracker, "other", 0);
      await sleep(300);
      setLoad(b.tracker, "hello", 0);
      const end = Date.now();
      await sleep(4500);
      const after = await signal.average("hello", 3000);
      assert(after < 0.05, `expected no load, Prometheus says ${after}`);
      const last = await signal.lastActivity("hello");
      assert(last !== undefined && Math.abs(last - end) < 50, `last ${last} vs end ${end}`);
    } finally {
      await prom.stop();
      await a.stop();
      await b.stop();
    }
  },
});

Deno.test("prometheus signal: errors name the server and the query", async () => {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () =>
      Response.json({ status: "error", errorType: "bad_data", error: "parse error" }, {
        status: 400,
      }),
  );
  try {
    const signal = prometheusSignal({ url: `127.0.0.1:${server.addr.port}` });
    await assertRejects(() => signal.average("x", 1000), SignalError, "parse error");
  } finally {
    await server.shutdown();
  }
  // Nothing listens there any more.
  const gone = prometheusSignal({ url: `http://127.0.0.1:${server.addr.port}`, timeoutMs: 500 });
  await assertRejects(() => gone.lastActivity("x"), SignalError, "unreachable");
});

Deno.test({
  name: "prometheus signal: gives the autoscaler the same decisions as the local signal",
  async fn() {
    const replica = metricsServer();
    const prom = await startPrometheus({ targets: [replica.target], scrapeInterval: "1s" });
    const config: AutoscalingConfig = {
      tick: 1000,
      stableWindow: 4000,
      panicWindow: 2000,
      panicThreshold: 2,
      targetConcurrency: 2,
      idleTimeout: 3000,
      source: "local",
    };
    const fns = [fnDef("echo", { minReplicas: 0, maxReplicas: 10 })];
    const side = (signal: ReturnType<typeof localSignal>, metrics: Metrics) => {
      const runtime = countingRuntime();
      runtime.add("echo", 1);
      const events = createEventLog();
      const scaler = createAutoscaler({
        runtime,
        functions: () => fns,
        signal,
        config,
        events,
        metrics,
      });
      return { runtime, events, scaler };
    };
    const local = side(localSignal(replica.tracker), replica.metrics);
    const remote = side(
      prometheusSignal({ url: prom.url, local: replica.tracker }),
      createMetrics({ processMetrics: false }),
    );
    const desired = () => [
      local.runtime.desiredReplicas("echo"),
      remote.runtime.desiredReplicas("echo"),
    ];
    /** Ticks both every second for `ms`, returning each side's counts tick by tick. */
    const run = async (ms: number) => {
      const trace: (number | undefined)[][] = [];
      for (let t = 0; t < ms; t += 1000) {
        await Promise.all([local.scaler.tick(), remote.scaler.tick()]);
        trace.push(desired());
        await sleep(1000);
      }
      return trace;
    };
    try {
      await prom.waitForTargetsUp();
      setLoad(replica.tracker, "echo", 7);
      const up = await run(7000);
      assertEquals(desired(), [4, 4], `load 7 at target 2: ${JSON.stringify(up)}`);
      setLoad(replica.tracker, "echo", 1);
      const down = await run(11_000);
      assertEquals(desired(), [1, 1], `load 1: ${JSON.stringify(down)}`);
      setLoad(replica.tracker, "echo", 0);
      const idle = await run(8000);
      assertEquals(desired(), [0, 0], `no load: ${JSON.stringify(idle)}`);
      // The decision logs tell the same story: up, down to one, then to zero when idle.
      const story = (events: ReturnType<typeof createEventLog>) =>
        events.list({ type: "scaling.decision" }).map((e) => e.data?.to);
      const localStory = story(local.events);
      const remoteStory = story(remote.events);
      assertEquals(localStory.at(-1), 0);
      assertEquals(remoteStory.at(-1), 0);
      assertEquals(Math.max(...localStory as number[]), 4);
      assertEquals(Math.max(...remoteStory as number[]), 4);
      const sources = remote.events.list({ type: "scaling.decision" }).map((e) => e.data?.source);
      assertEquals(new Set(sources), new Set(["prometheus"]));
    } finally {
      await prom.stop();
      await replica.stop();
    }
  },
});
