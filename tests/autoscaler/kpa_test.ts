// Table tests of the KPA decision (control/autoscaler/kpa.ts): stable and panic mode,
// bounds, scale to zero after the idle timeout, and the scale-down dead band.

import { assert, assertEquals } from "../harness/assert.ts";
import { decide, type KpaInput, type KpaParams } from "../../control/autoscaler/kpa.ts";

const NOW = 1_000_000;
const PARAMS: KpaParams = {
  targetConcurrency: 10,
  panicThreshold: 2,
  stableWindow: 60_000,
  idleTimeout: 30_000,
  minReplicas: 0,
  maxReplicas: 10,
};

type Over = Omit<Partial<KpaInput>, "params"> & { params?: Partial<KpaParams> };

function input(over: Over): KpaInput {
  return {
    now: NOW,
    stable: 0,
    panic: 0,
    ready: 1,
    current: 1,
    lastActivity: NOW,
    seenSince: NOW - 600_000,
    panicState: undefined,
    ...over,
    params: { ...PARAMS, ...over.params },
  };
}

interface Row {
  name: string;
  in: Over;
  desired: number;
  reason: string;
  panic?: { since: number; peak: number } | undefined;
}

const ROWS: Row[] = [
  // Stable mode: ceil(stable / target).
  { name: "stable load fits one", in: { stable: 7, panic: 7 }, desired: 1, reason: "stable" },
  { name: "stable needs three", in: { stable: 25, panic: 15 }, desired: 3, reason: "stable" },
  {
    name: "float noise above a whole number does not add an instance",
    in: { stable: 20.0000000001, panic: 20, current: 2, ready: 2 },
    desired: 2,
    reason: "stable",
  },
  {
    name: "garbage input counts as no load",
    in: { stable: NaN, panic: -3, current: 2, ready: 2, params: { minReplicas: 1 } },
    desired: 1,
    reason: "min",
  },
  // Panic mode.
  {
    name: "panic demand at twice the capacity panics and follows the panic window",
    in: { stable: 3, panic: 20, ready: 1 },
    desired: 2,
    reason: "panic",
    panic: { since: NOW, peak: 2 },
  },
  {
    name: "just under the threshold stays stable",
    in: { stable: 3, panic: 19.9, ready: 1 },
    desired: 1,
    reason: "stable",
  },
  {
    name: "a big step jumps straight to the demand",
    in: { stable: 10, panic: 95, ready: 1 },
    desired: 10,
    reason: "panic",
    panic: { since: NOW, peak: 10 },
  },
  {
    name: "panic picks the stable window when it asks more",
    in: { stable: 70, panic: 60, ready: 2, current: 2 },
    desired: 7,
    reason: "panic",
    panic: { since: NOW, peak: 7 },
  },
  {
    name: "nothing ready counts as one instance (a cold start does not panic by itself)",
    in: { stable: 1, panic: 15, ready: 0, current: 1 },
    desired: 1,
    reason: "stable",
  },
  {
    name: "no scale-down during panic: holds the peak",
    in: {
      stable: 5,
      panic: 5,
      ready: 6,
      current: 6,
      panicState: { since: NOW - 10_000, peak: 6 },
    },
    desired: 6,
    reason: "panic-hold",
    panic: { since: NOW - 10_000, peak: 6 },
  },
  {
    name: "no scale-down during panic: holds the current count above the peak",
    in: { stable: 5, panic: 5, ready: 4, current: 8, panicState: { since: NOW - 1, peak: 3 } },
    desired: 8,
    reason: "panic-hold",
    panic: { since: NOW - 1, peak: 8 },
  },
  {
    name: "still over the threshold extends the panic",
    in: {
      stable: 10,
      panic: 90,
      ready: 4,
      current: 4,
      panicState: { since: NOW - 50_000, peak: 4 },
    },
    desired: 9,
    reason: "panic",
    panic: { since: NOW, peak: 9 },
  },
  {
    name: "panic ends after a stable window below the threshold",
    in: {
      stable: 15,
      panic: 12,
      ready: 6,
      current: 6,
      panicState: { since: NOW - 60_000, peak: 6 },
    },
    desired: 2,
    reason: "stable",
    panic: undefined,
  },
  {
    name: "panic peak is bounded by maxReplicas",
    in: { stable: 10, panic: 500, ready: 1, params: { maxReplicas: 4 } },
    desired: 4,
    reason: "max",
    panic: { since: NOW, peak: 4 },
  },
  // Bounds.
  {
    name: "maxReplicas caps the stable demand",
    in: { stable: 200, panic: 30, ready: 3, current: 3, params: { maxReplicas: 5 } },
    desired: 5,
    reason: "max",
  },
  {
    name: "minReplicas keeps instances without load",
    in: { stable: 0, panic: 0, ready: 3, current: 3, params: { minReplicas: 2 } },
    desired: 2,
    reason: "min",
  },
  {
    name: "minReplicas 1 never goes to zero, even when idle",
    in: { lastActivity: NOW - 3_600_000, params: { minReplicas: 1 } },
    desired: 1,
    reason: "min",
  },
  // Scale to zero.
  {
    name: "idle for the idle timeout goes to zero",
    in: { lastActivity: NOW - 30_000 },
    desired: 0,
    reason: "idle",
  },
  {
    name: "idle one ms short of the timeout keeps one",
    in: { lastActivity: NOW - 29_999 },
    desired: 1,
    reason: "keep-one",
  },
  {
    name: "a request in flight (last activity now) keeps one without any average",
    in: { lastActivity: NOW, current: 0, ready: 0 },
    desired: 1,
    reason: "keep-one",
  },
  {
    name: "idle goes to zero from several instances, ending a panic",
    in: {
      lastActivity: NOW - 40_000,
      current: 3,
      ready: 3,
      panicState: { since: NOW - 40_000, peak: 3 },
    },
    desired: 0,
    reason: "idle",
    panic: undefined,
  },
  {
    name: "never active: idle time counts from when the function was first seen",
    in: { lastActivity: undefined, seenSince: NOW - 30_000 },
    desired: 0,
    reason: "idle",
  },
  {
    name: "never active and just seen keeps one",
    in: { lastActivity: undefined, seenSince: NOW - 1000 },
    desired: 1,
    reason: "keep-one",
  },
  {
    name: "at zero and never requested stays at zero, however recently first seen",
    in: { lastActivity: undefined, seenSince: NOW, current: 0, ready: 0 },
    desired: 0,
    reason: "idle",
  },
  {
    name: "at zero, a request since (held for a cold start) brings one back",
    in: { lastActivity: NOW - 100, current: 0, ready: 0 },
    desired: 1,
    reason: "keep-one",
  },
  {
    name: "at zero with old demand still in the windows stays at zero",
    in: { stable: 5, panic: 3, lastActivity: NOW - 30_000, current: 0, ready: 0 },
    desired: 0,
    reason: "idle",
  },
  {
    name: "a per-function idle timeout applies",
    in: { lastActivity: NOW - 5000, params: { idleTimeout: 5000 } },
    desired: 0,
    reason: "idle",
  },
  {
    name: "already at zero and idle stays at zero",
    in: { lastActivity: NOW - 60_000, current: 0, ready: 0 },
    desired: 0,
    reason: "idle",
  },
  // The scale-down dead band.
  {
    name: "scale down when the smaller count has 10% of an instance to spare",
    in: { stable: 18.9, panic: 18.9, ready: 3, current: 3 },
    desired: 2,
    reason: "stable",
  },
  {
    name: "no scale down when the smaller count would be nearly full",
    in: { stable: 19.5, panic: 19.5, ready: 3, current: 3 },
    desired: 3,
    reason: "tolerance",
  },
  {
    name: "the dead band never raises the count",
    in: { stable: 9.5, panic: 9.5, ready: 1, current: 1 },
    desired: 1,
    reason: "stable",
  },
  {
    name: "a lower tolerance scales down closer to full",
    in: { stable: 19.5, panic: 19.5, ready: 3, current: 3, params: { scaleDownTolerance: 0.01 } },
    desired: 2,
    reason: "stable",
  },
  {
    name: "the dead band steps down to the count with spare, not below",
    in: { stable: 29.5, panic: 29.5, ready: 6, current: 6 },
    desired: 4,
    reason: "tolerance",
  },
  {
    name: "per-function target and threshold",
    in: { stable: 6, panic: 6, ready: 1, params: { targetConcurrency: 1, panicThreshold: 10 } },
    desired: 6,
    reason: "stable",
  },
];

for (const row of ROWS) {
  Deno.test(`kpa: ${row.name}`, () => {
    const d = decide(input(row.in));
    assertEquals({ desired: d.desired, reason: d.reason }, {
      desired: row.desired,
      reason: row.reason,
    });
    if ("panic" in row) assertEquals(d.panicState, row.panic);
  });
}

Deno.test("kpa: reports demand and idle time it decided on", () => {
  const d = decide(input({ stable: 25, panic: 41, ready: 1, lastActivity: NOW - 1234 }));
  assertEquals([d.wantStable, d.wantPanic, d.idleFor], [3, 5, 1234]);
});

/** A tiny deterministic random generator, so the noise is the same every run. */
function noise(seed: number) {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x / 2147483648;
  };
}

Deno.test("kpa: steady load with noise on a multiple of the target does not oscillate", () => {
  const rand = noise(42);
  let current = 1;
  let panicState: KpaInput["panicState"];
  const seen: number[] = [];
  for (let i = 0; i < 500; i++) {
    // 20 concurrent ± 3%: exactly two instances' worth at target 10.
    const load = 20 * (1 + (rand() - 0.5) * 0.06);
    const d = decide(input({
      now: NOW + i * 2000,
      lastActivity: NOW + i * 2000,
      stable: load,
      panic: load * (1 + (rand() - 0.5) * 0.1),
      ready: current,
      current,
      panicState,
    }));
    panicState = d.panicState;
    current = d.desired;
    seen.push(current);
  }
  // After the first rise it settles and never changes again.
  const changes = seen.filter((v, i) => i > 0 && v !== seen[i - 1]).length;
  assert(changes <= 1, `changed ${changes} times: ${seen.slice(0, 40)}`);
  assertEquals(seen.at(-1), 3);
});

Deno.test("kpa: a load step then silence goes up at once, down to one, then to zero", () => {
  // Replays 2 s ticks of windows fed by an exact load: 40 concurrent from t=10s to t=70s.
  const stableW = 60_000, panicW = 6000, tick = 2000;
  const load = (t: number) => (t >= 10_000 && t < 70_000 ? 40 : 0);
  const avg = (t: number, w: number) => {
    let sum = 0;
    for (let s = t - w; s < t; s += 100) sum += load(s);
    return sum / (w / 100);
  };
  let current = 1;
  let panicState: KpaInput["panicState"];
  let lastActivity: number | undefined;
  const trace: [number, number, string][] = [];
  for (let t = 0; t <= 200_000; t += tick) {
    if (load(t - 1) > 0) lastActivity = t;
    const d = decide({
      now: t,
      stable: avg(t, stableW),
      panic: avg(t, panicW),
      ready: current,
      current,
      lastActivity,
      seenSince: 0,
      panicState,
      params: { ...PARAMS, stableWindow: stableW, idleTimeout: 90_000, maxReplicas: 8 },
    });
    panicState = d.panicState;
    if (d.desired !== current) trace.push([t, d.desired, d.reason]);
    current = d.desired;
  }
  // Up within two ticks of the step, to the demand (4) and no further.
  assert(trace[0][0] <= 14_000, JSON.stringify(trace));
  assertEquals(Math.max(...trace.map((x) => x[1])), 4);
  // Only up while the load lasts.
  const during = trace.filter((x) => x[0] < 70_000).map((x) => x[1]);
  assertEquals(during, [...during].sort((a, b) => a - b));
  // After the load: down as the stable window empties, to one (minReplicas 0 keeps one until
  // the idle timeout), and to zero 90 s after the last request.
  const after = trace.filter((x) => x[0] >= 70_000);
  assertEquals(after.map((x) => x[1]), [...after.map((x) => x[1])].sort((a, b) => b - a));
  assertEquals(after.at(-2)![1], 1);
  assertEquals(after.at(-1), [160_000, 0, "idle"]);
});
