/**
 * `deno task bench dispatcher`: the dispatcher's hot path and cold starts.
 *
 * 1. Throughput and p50/p99 of wrk → dispatcher → static backend, as a ratio to
 *    wrk → nginx → the same backend (nginx serves the static file too), medians of
 *    alternating rounds. A minimal Deno proxy (bench/deno_floor.ts) takes its turn too:
 *    what any proxy in TypeScript on this Deno costs here, F2S's code aside.
 *
 *   deno task bench dispatcher [SECONDS=5] [COLD_ROUNDS=10] [ROUNDS=3]
 * 2. Cold start from zero of a trivial function under `f2s dev`: time from the request to
 *    its answer when no instance exists.
 */

import { freePort, selfCommand } from "../common/self.ts";
import { load, type LoadResult, median, medianOf } from "./load.ts";
import { startNginx } from "./nginx.ts";

const ROOT = new URL("../", import.meta.url).pathname;

async function waitUp(url: string, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const r = await fetch(url);
      await r.body?.cancel();
      if (r.ok) return;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${url} did not come up`);
}

function row(name: string, r: LoadResult, ref?: LoadResult): string {
  const ratio = ref ? ` | ${(r.rps / ref.rps).toFixed(2)}` : " | 1.00";
  return `| ${name} | ${Math.round(r.rps)} | ${r.p50Ms.toFixed(2)} | ${
    r.p99Ms.toFixed(2)
  }${ratio} |`;
}

async function throughput(seconds: number, rounds: number) {
  const backend = await startNginx({ staticBody: "hello from the static backend\n" });
  const backendUrl = `http://127.0.0.1:${backend.staticPort}`;
  const proxy = await startNginx({ proxyTo: backendUrl });
  const port = freePort();
  const [cmd, ...args] = selfCommand([]);
  // selfCommand runs main.ts; the bench target is its own module.
  const targetArgs = cmd.endsWith("deno")
    ? ["run", "-A", `${ROOT}bench/dispatcher_target.ts`, String(port), backendUrl]
    : [];
  if (targetArgs.length === 0) {
    throw new Error("run the benchmark with deno, not the compiled binary");
  }
  void args;
  const target = new Deno.Command(cmd, { args: targetArgs, stdout: "null", stderr: "null" })
    .spawn();
  const floorPort = freePort();
  const floor = new Deno.Command(cmd, {
    args: [
      "run",
      "-A",
      `${ROOT}bench/deno_floor.ts`,
      String(floorPort),
      String(backend.staticPort),
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    await waitUp(`http://127.0.0.1:${port}/invoke/static`);
    await waitUp(`http://127.0.0.1:${floorPort}/`);
    const opts = { connections: 32, seconds, warmup: 1 };
    const direct = await load(backendUrl + "/", opts);
    // The reference and the dispatcher take turns, round after round: this machine's load
    // drifts (other work shares its two cores), and alternating spreads that drift over
    // both instead of charging it to whichever ran in a busy moment. The medians count.
    const nginxRuns: LoadResult[] = [];
    const f2sRuns: LoadResult[] = [];
    const floorRuns: LoadResult[] = [];
    for (let round = 0; round < rounds; round++) {
      nginxRuns.push(await load(`http://127.0.0.1:${proxy.proxyPort}/`, opts));
      f2sRuns.push(await load(`http://127.0.0.1:${port}/invoke/static`, opts));
      floorRuns.push(await load(`http://127.0.0.1:${floorPort}/`, opts));
    }
    const nginx = medianOf(nginxRuns);
    const f2s = medianOf(f2sRuns);
    const deno = medianOf(floorRuns);
    console.log(
      `\nwrk, ${opts.connections} connections, ${seconds} s each, ${rounds} alternating rounds (${f2s.tool}); medians`,
    );
    console.log("| path | req/s | p50 ms | p99 ms | ratio to nginx |");
    console.log("|---|---|---|---|---|");
    console.log(row("static backend directly", direct, nginx));
    console.log(row("nginx → backend (reference)", nginx));
    console.log(row("f2s dispatcher → backend", f2s, nginx));
    console.log(row("minimal Deno proxy (bench/deno_floor.ts) → backend", deno, nginx));
    // Each round's ratio compares neighbours in time; their median is the headline.
    const medianRatio = (runs: LoadResult[]) => {
      const ratios = runs.map((r, i) => r.rps / nginxRuns[i].rps);
      return {
        each: ratios.map((r) => r.toFixed(2)).join(", "),
        median: median(ratios),
      };
    };
    const ratio = medianRatio(f2sRuns);
    const floorRatio = medianRatio(floorRuns);
    console.log(`\nratio in each round: ${ratio.each} (minimal Deno proxy: ${floorRatio.each})`);
    console.log(
      `dispatcher/nginx throughput ratio (median round): ${
        ratio.median.toFixed(2)
      } (goal ≥ 0.85); p99 ${(f2s.p99Ms / nginx.p99Ms).toFixed(2)} (goal ≤ 1.5)`,
    );
    console.log(
      `minimal Deno proxy/nginx: throughput ${floorRatio.median.toFixed(2)}, p99 ${
        (deno.p99Ms / nginx.p99Ms).toFixed(2)
      }; dispatcher/minimal Deno proxy: throughput ${(f2s.rps / deno.rps).toFixed(2)}`,
    );
    console.log(`dispatcher/nginx p50 latency ratio: ${(f2s.p50Ms / nginx.p50Ms).toFixed(2)}`);
    const errors = (runs: LoadResult[]) => runs.reduce((sum, r) => sum + r.errors, 0);
    if (errors(f2sRuns) > 0 || errors(nginxRuns) > 0 || errors(floorRuns) > 0) {
      console.log(
        `errors: f2s ${errors(f2sRuns)}, nginx ${errors(nginxRuns)}, minimal Deno proxy ${
          errors(floorRuns)
        }`,
      );
    }
  } finally {
    target.kill("SIGTERM");
    await target.status;
    floor.kill("SIGKILL");
    await floor.status;
    await proxy.stop();
    await backend.stop();
  }
}

async function coldStarts(rounds: number) {
  const dir = await Deno.makeTempDir({ prefix: "f2s-bench-cold-" });
  await Deno.mkdir(`${dir}/trivial`);
  await Deno.writeTextFile(`${dir}/trivial/start.sh`, "#!/bin/sh\necho '{\"ok\":true}'\n");
  await Deno.chmod(`${dir}/trivial/start.sh`, 0o755);
  const port = freePort();
  const [cmd, ...args] = selfCommand(["dev", "--functions", dir, "--port", String(port)]);
  const dev = new Deno.Command(cmd, {
    args,
    stdout: "null",
    stderr: "null",
    env: { F2S_LOG_LEVEL: "warn" },
  }).spawn();
  const base = `http://127.0.0.1:${port}`;
  const times: number[] = [];
  try {
    await waitUp(`${base}/health`);
    for (let i = 0; i < rounds; i++) {
      const manifest = {
        metadata: { name: `trivial-${i}` },
        spec: { endpoint: `/trivial-${i}`, method: "ANY" },
        target: {
          containerImage: "bench/trivial",
          minReplicas: 0,
          maxReplicas: 1,
          local: { dir: `${dir}/trivial` },
        },
      };
      const created = await fetch(`${base}/functions`, {
        method: "POST",
        body: JSON.stringify(manifest),
        headers: { "content-type": "application/json" },
      });
      await created.body?.cancel();
      const t = performance.now();
      const res = await fetch(`${base}/invoke/trivial-${i}`);
      await res.text();
      times.push(performance.now() - t);
      if (!res.ok) throw new Error(`cold start ${i} answered ${res.status}`);
      const del = await fetch(`${base}/functions/trivial-${i}`, { method: "DELETE" });
      await del.body?.cancel();
    }
  } finally {
    dev.kill("SIGTERM");
    await dev.status;
    await Deno.remove(dir, { recursive: true });
  }
  times.sort((a, b) => a - b);
  const pct = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))];
  console.log(`\ncold start from zero (command-mode function, ${rounds} rounds under f2s dev)`);
  console.log(
    `p50 ${pct(0.5).toFixed(0)} ms, p90 ${pct(0.9).toFixed(0)} ms, min ${
      times[0].toFixed(0)
    } ms (target p50 ≤ 100 ms)`,
  );
}

export async function run(args: string[]): Promise<void> {
  const seconds = Number(args[0] ?? 5);
  await throughput(seconds, Number(args[2] ?? 3));
  await coldStarts(Number(args[1] ?? 10));
}
