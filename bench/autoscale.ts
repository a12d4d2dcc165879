/**
 * `deno task bench autoscale`: the reaction time of the autoscaler through `f2s dev` with
 * real processes, from a load step to the new instances being ready. It is printed beside
 * two references measured in the same run: the tick (how often decisions are made) and the
 * time one instance takes from start to ready (what no autoscaler can beat), so the ratios
 * compare across machines.
 *
 *   deno task bench autoscale [--repeat 3] [--workers 10] [--tick 2s] [--panic-window 2s]
 *                             [--stable-window 6s] [--target 2]
 */

import { parseArgs } from "node:util";
import { parseDuration } from "../common/duration.ts";
import { startDev } from "../tests/harness/dev.ts";
import {
  cleanup,
  decisions,
  desired,
  fastConfig,
  functionsDir,
  manifest,
  ready,
  until,
} from "../tests/autoscaler/e2e.ts";
import { startLoad } from "../tests/autoscaler/load.ts";

interface Round {
  decisionMs: number;
  readyMs: number;
  instanceStartMs: number;
  added: number;
}

export async function run(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      repeat: { type: "string", default: "3" },
      workers: { type: "string", default: "10" },
      tick: { type: "string", default: "2s" },
      "panic-window": { type: "string", default: "2s" },
      "stable-window": { type: "string", default: "6s" },
      target: { type: "string", default: "2" },
    },
  });
  const ms = (name: string, v: string) => {
    const d = parseDuration(/^\d+$/.test(v) ? Number(v) : v);
    if (typeof d === "string") throw new Error(`--${name}: ${d}`);
    return d;
  };
  const repeat = Number(values.repeat);
  const workers = Number(values.workers);
  const tick = ms("tick", values.tick!);
  const target = Number(values.target);
  const max = Math.min(8, Math.ceil(workers / target));
  const config = fastConfig({
    tick: `${tick}ms`,
    panic_window: `${ms("panic-window", values["panic-window"]!)}ms`,
    stable_window: `${ms("stable-window", values["stable-window"]!)}ms`,
    target_concurrency: target,
    idle_timeout: "60s",
  });
  console.log(
    `load step 0 → ${workers} concurrent requests (200 ms each) on a function at 1 instance, ` +
      `target ${target} per instance, max ${max}; tick ${tick} ms; ${repeat} rounds`,
  );

  const dir = await functionsDir([manifest("sleeper", { minReplicas: 1, maxReplicas: max })]);
  const dev = await startDev({ functionsDir: dir, config, env: { F2S_LOG_LEVEL: "warn" } });
  const rounds: Round[] = [];
  try {
    await until("ready instances", () => ready(dev.url, "sleeper"), 1, 30_000);
    for (let i = 0; i < repeat; i++) {
      const seen = (await decisions(dev.url, "sleeper")).length;
      const step = Date.now();
      const load = startLoad({
        url: `${dev.url}/invoke/sleeper/sleep?ms=200`,
        workers,
        deadlineMs: 120_000,
        maxRequests: 100_000,
      });
      let readyAt: number;
      try {
        readyAt = await until("ready instances", () => ready(dev.url, "sleeper"), max, 60_000);
      } finally {
        const stats = await load.stop();
        if (stats.failures.length > 0) {
          console.log(`  round ${i + 1}: ${stats.failures.length} failed requests`);
        }
      }
      const up = (await decisions(dev.url, "sleeper")).slice(seen).find((d) => d.to > d.from);
      const starts = await instanceStartTimes(dev.url, step);
      rounds.push({
        decisionMs: (up?.time ?? NaN) - step,
        readyMs: readyAt - step,
        instanceStartMs: median(starts),
        added: starts.length,
      });
      const r = rounds.at(-1)!;
      console.log(
        `  round ${i + 1}: decision after ${r.decisionMs} ms, ${max} ready after ${r.readyMs} ms` +
          ` (${r.added} instances started, median start-to-ready ${
            Math.round(r.instanceStartMs)
          } ms)`,
      );
      await until("desired instances", () => desired(dev.url, "sleeper"), 1, 120_000);
      await until("ready instances", () => ready(dev.url, "sleeper"), 1, 60_000);
    }
  } finally {
    await cleanup(dir, dev);
  }

  const decision = median(rounds.map((r) => r.decisionMs));
  const readyMs = median(rounds.map((r) => r.readyMs));
  const start = median(rounds.map((r) => r.instanceStartMs));
  console.log("\nmedian over rounds:");
  console.log(
    `  load step → scale-up decision: ${decision} ms = ${(decision / tick).toFixed(2)} ticks`,
  );
  console.log(`  one instance start → ready (reference): ${Math.round(start)} ms`);
  console.log(
    `  load step → all new instances ready: ${readyMs} ms = ${
      (readyMs / start).toFixed(2)
    } × an instance's start time`,
  );
  console.log(
    `  autoscaler's share (ready time − instance start): ${Math.round(readyMs - start)} ms = ${
      ((readyMs - start) / tick).toFixed(2)
    } ticks`,
  );
}

/** Start-to-ready durations of the instances started since `since`, from `/events`. */
async function instanceStartTimes(base: string, since: number): Promise<number[]> {
  const res = await fetch(`${base}/events?function=sleeper&type=instance.&limit=1000`);
  const events = await res.json() as { time: string; type: string; data?: { instance?: string } }[];
  const started = new Map<string, number>();
  const out: number[] = [];
  for (const e of events) {
    const t = Date.parse(e.time);
    const id = e.data?.instance;
    if (!id || t < since) continue;
    if (e.type === "instance.starting") started.set(id, t);
    if (e.type === "instance.ready" && started.has(id)) out.push(t - started.get(id)!);
  }
  return out;
}

function median(values: number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}
