/**
 * `deno task bench e2e [--seconds N] [--rounds N] [--connections N]`: the whole request path
 * against two references, all in front of the same Node app (examples/nodejs/server.js):
 *
 * - client → nginx → nginx → app: two proxy hops, the limit for F2S's two hops;
 * - client → nginx → of-watchdog (http mode) → app: an OpenFaaS-like chain;
 * - client → `f2s dev` → fizzlet → app (`/invoke/app/…`, one instance);
 * - client → minimal Deno proxy → minimal Deno proxy → app (bench/deno_floor.ts): what two
 *   hops in TypeScript on this Deno cost here, F2S's code aside.
 *
 * wrk, rounds alternating between the three (this machine's load drifts; alternating spreads
 * it over all), medians printed as a table with ratios to the nginx chain. Everything it
 * starts is stopped at the end, also when it fails.
 */

import { parseArgs } from "node:util";
import { freePort, selfCommand } from "../common/self.ts";
import { load, type LoadResult } from "./load.ts";
import { startNginx } from "./nginx.ts";
import { ensureWatchdog, startWatchdog } from "./watchdog.ts";

const ROOT = new URL("../", import.meta.url).pathname;

async function waitUp(url: string, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await r.body?.cancel();
      if (r.ok) return;
      last = `status ${r.status}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not answer 200 at ${url} within ${timeoutMs}ms (${last})`);
}

/** The 1-minute load average, to tell a quiet run from a noisy one. */
async function loadAverage(): Promise<string> {
  return (await Deno.readTextFile("/proc/loadavg").catch(() => "?")).split(" ")[0];
}

/** The median of each figure over the rounds. */
function median(runs: LoadResult[]): LoadResult {
  const mid = (by: (r: LoadResult) => number) =>
    [...runs].map(by).sort((a, b) => a - b)[Math.floor(runs.length / 2)];
  return {
    ...runs[0],
    rps: mid((r) => r.rps),
    p50Ms: mid((r) => r.p50Ms),
    p99Ms: mid((r) => r.p99Ms),
    errors: runs.reduce((n, r) => n + r.errors, 0),
  };
}

export async function run(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      seconds: { type: "string", default: "5" },
      rounds: { type: "string", default: "3" },
      connections: { type: "string", default: "32" },
    },
  });
  const seconds = Number(values.seconds);
  const rounds = Number(values.rounds);
  const connections = Number(values.connections);
  const stops: (() => Promise<void>)[] = [];
  const work = await Deno.makeTempDir({ prefix: "f2s-bench-e2e-" });
  try {
    const watchdog = await ensureWatchdog();
    const appPort = freePort();
    const app = new Deno.Command("node", {
      args: [`${ROOT}examples/nodejs/server.js`],
      env: { PORT: String(appPort) },
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    stops.push(async () => {
      app.kill("SIGKILL");
      await app.status;
    });
    const appUrl = `http://127.0.0.1:${appPort}`;
    await waitUp(`${appUrl}/`, "examples/nodejs");

    const inner = await startNginx({ proxyTo: appUrl });
    stops.push(inner.stop);
    const outer = await startNginx({ proxyTo: `http://127.0.0.1:${inner.proxyPort}` });
    stops.push(outer.stop);

    const wd = await startWatchdog(watchdog, {
      mode: "http",
      upstream_url: appUrl,
      fprocess: "sleep 3600",
    });
    stops.push(wd.stop);
    const front = await startNginx({ proxyTo: `http://127.0.0.1:${wd.port}` });
    stops.push(front.stop);

    const floorPorts = [freePort(), freePort()];
    for (const [i, port] of floorPorts.entries()) {
      const upstream = i === 0 ? appPort : floorPorts[0];
      const floor = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", `${ROOT}bench/deno_floor.ts`, String(port), String(upstream)],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      stops.push(async () => {
        floor.kill("SIGKILL");
        await floor.status;
      });
    }
    await waitUp(`http://127.0.0.1:${floorPorts[1]}/`, "minimal Deno proxies");

    // f2s dev runs its own copy of the same app, started by its fizzlet.
    const fnDir = `${work}/functions/app`;
    await Deno.mkdir(fnDir, { recursive: true });
    await Deno.copyFile(`${ROOT}examples/nodejs/server.js`, `${fnDir}/server.js`);
    await Deno.writeTextFile(
      `${fnDir}/function.yaml`,
      JSON.stringify({
        apiVersion: "f2s.opensight.ch/v1alpha1",
        kind: "Function",
        metadata: { name: "app" },
        spec: { endpoint: "/app", method: "ANY" },
        target: {
          containerImage: "bench/app",
          minReplicas: 1,
          maxReplicas: 1,
          local: { dir: ".", command: "node server.js" },
        },
      }),
    );
    const devPort = freePort();
    const [cmd, ...devArgs] = selfCommand([
      "dev",
      "--functions",
      `${work}/functions`,
      "--port",
      String(devPort),
    ]);
    const dev = new Deno.Command(cmd, {
      args: devArgs,
      env: { F2S_LOG_LEVEL: "warn" },
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    stops.push(async () => {
      dev.kill("SIGTERM");
      const killer = setTimeout(() => {
        try {
          dev.kill("SIGKILL");
        } catch {
          // gone
        }
      }, 15_000);
      await dev.status;
      clearTimeout(killer);
    });
    const path = "/bench?x=1";
    const f2sUrl = `http://127.0.0.1:${devPort}/invoke/app${path}`;
    await waitUp(f2sUrl, "f2s dev → fizzlet → app", 60_000);

    const chains: [string, string][] = [
      ["client → nginx → nginx → node app", `http://127.0.0.1:${outer.proxyPort}${path}`],
      [
        `client → nginx → ${watchdog.label} (http) → node app`,
        `http://127.0.0.1:${front.proxyPort}${path}`,
      ],
      ["client → f2s dev → fizzlet → node app", f2sUrl],
      [
        "client → minimal Deno proxy → minimal Deno proxy → node app",
        `http://127.0.0.1:${floorPorts[1]}${path}`,
      ],
    ];
    const loadBefore = await loadAverage();
    const runs: LoadResult[][] = chains.map(() => []);
    const opts = { connections, seconds, warmup: 1 };
    for (let round = 0; round < rounds; round++) {
      for (const [i, [, url]] of chains.entries()) runs[i].push(await load(url, opts));
    }
    const medians = runs.map(median);
    const ref = medians[0];
    console.log(
      `\nwrk, ${connections} connections, ${seconds} s each, ${rounds} alternating rounds; medians`,
    );
    console.log("| path | req/s | p50 ms | p99 ms | ratio | p99 ratio | errors |");
    console.log("|---|---|---|---|---|---|---|");
    for (const [i, [name]] of chains.entries()) {
      const m = medians[i];
      console.log(
        `| ${name} | ${Math.round(m.rps)} | ${m.p50Ms.toFixed(2)} | ${m.p99Ms.toFixed(2)} | ${
          (m.rps / ref.rps).toFixed(2)
        } | ${(m.p99Ms / ref.p99Ms).toFixed(2)} | ${m.errors} |`,
      );
    }
    console.log("\nevery round (req/s, p99 ms):");
    for (const [i, [name]] of chains.entries()) {
      console.log(
        `  ${name}: ${
          runs[i].map((r) => `${Math.round(r.rps)} (${r.p99Ms.toFixed(2)})`).join(", ")
        }`,
      );
    }
    const f2s = medians[2];
    console.log(
      `\nf2s/nginx chain: throughput ${(f2s.rps / ref.rps).toFixed(2)} (goal ≥ 0.70), p99 ${
        (f2s.p99Ms / ref.p99Ms).toFixed(2)
      } (goal ≤ 2); f2s/${watchdog.label} chain: ${
        (f2s.rps / medians[1].rps).toFixed(2)
      } (goal ≥ 1.3)`,
    );
    const floor = medians[3];
    console.log(
      `minimal Deno proxies/nginx chain: throughput ${(floor.rps / ref.rps).toFixed(2)}, p99 ${
        (floor.p99Ms / ref.p99Ms).toFixed(2)
      }; f2s/minimal Deno proxies: throughput ${(f2s.rps / floor.rps).toFixed(2)}`,
    );
    console.log(
      `load average (1 min) before ${loadBefore}, after ${await loadAverage()} on ${navigator.hardwareConcurrency} CPUs: above the CPU count, other work shared the machine`,
    );
    console.log(watchdog.note);
  } finally {
    // Last started, first stopped; one failing stop does not keep the others running.
    for (const stop of stops.reverse()) await stop().catch((e) => console.error(e));
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}
