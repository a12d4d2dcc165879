// Ten minutes of traffic on the fake clock through the real scaling part (createScaling: the
// concurrency tracker, the local signal and the autoscaler loop on its own interval), fed the
// way the dispatcher feeds it (onLoad per request, wake when nothing is ready, requests held
// until an instance is ready), against a runtime whose instances take a second to start.
// Idle, wake from zero, a ramp, a burst, back to the plateau, idle to zero: every decision is
// checked against the KPA's promises (wake at once, panic within the panic window, no
// scale-down while the burst lasts, no flapping, zero only after the idle timeout), and the
// whole run takes well under a second of real time.

import { assert, assertEquals } from "../harness/assert.ts";
import { createFakeClock } from "../harness/fake_clock.ts";
import { startingRuntime } from "../harness/starting_runtime.ts";
import { createScaling } from "../../control/autoscaler/scaling.ts";
import { configFromObject } from "../../control/config.ts";
import { createEventLog } from "../../control/events.ts";
import { createMetrics } from "../../control/metrics.ts";
import { parseFunction } from "../../common/function.ts";

const START_MS = 1000; // an instance is ready this long after it was asked for
const REQUEST_MS = 1000; // every request takes this long once it has an instance

/** Requests in flight per second at time `s` (seconds into the run). */
function demand(s: number): number {
  if (s < 60) return 0; // idle at zero
  // 25, not 30: a load on a multiple of the target keeps one more (the scale-down dead band).
  if (s < 240) return 1 + 24 * (s - 60) / 180; // ramp 1 → 25
  if (s < 300) return 25; // plateau: 3 instances at target 10
  if (s < 360) return 100; // burst: 10 instances
  if (s < 480) return 25; // back to the plateau
  return 0; // idle again
}

Deno.test("scaling: a 10-minute traffic pattern on the fake clock scales up, panics, settles and goes to zero", async () => {
  const realStart = performance.now();
  const clock = createFakeClock();
  const t0 = clock.now();
  const at = (ms: number) => (ms - t0) / 1000; // seconds into the run, for messages
  const config = configFromObject({}, "defaults", {});
  const a = config.autoscaling; // tick 2 s, stable 60 s, panic 6 s ×2, target 10, idle 60 s
  const fn = parseFunction({
    metadata: { name: "burst" },
    spec: { endpoint: "/burst", method: "ANY" },
    target: { containerImage: "x", minReplicas: 0, maxReplicas: 20 },
  });
  assert(fn.ok);
  const { runtime, scaled: calls } = startingRuntime(clock, { startMs: START_MS });
  await runtime.apply(fn.fn, 0);
  const events = createEventLog();
  const scaling = createScaling({
    config,
    runtime,
    functions: () => [fn.fn],
    events,
    metrics: createMetrics({ processMetrics: false }),
    clock,
  });

  // What the dispatcher does: count the request while held and served, wake a function with
  // nothing ready, hold requests until an instance is ready.
  const ready = () => runtime.instances("burst").some((i) => i.state === "ready");
  const held: number[] = [];
  const waits: number[] = [];
  let arrived = 0, done = 0, lastEnd = 0, firstArrival: number | undefined;
  const serve = (arrivedAt: number) => {
    waits.push(clock.now() - arrivedAt);
    clock.setTimeout(() => {
      scaling.onLoad("burst", -1);
      done++;
      lastEnd = clock.now();
    }, REQUEST_MS);
  };
  runtime.subscribe((i) => {
    if (i.state === "ready") { for (const t of held.splice(0)) serve(t); }
  });
  const arrive = () => {
    arrived++;
    firstArrival ??= clock.now();
    scaling.onLoad("burst", 1);
    if (ready()) return serve(clock.now());
    held.push(clock.now());
    scaling.wake("burst");
  };

  // Arrivals every 100 ms at demand(t) per second; with 1 s requests that is the concurrency.
  let owed = 0;
  const arrivals = clock.setInterval(() => {
    owed += demand(at(clock.now())) / 10;
    for (; owed >= 1; owed--) arrive();
  }, 100);
  scaling.start();
  await clock.advance(600_000);
  scaling.stop();
  clock.clearInterval(arrivals);

  // Every decision, in order, with its reason.
  const reasons = events.list({ type: "scaling.decision" }).map((e) => e.data?.reason);
  const decisions = calls.map(({ name: _, ...c }, i) => ({
    ...c,
    at: at(t0 + c.at),
    reason: reasons[i],
  }));
  const log = JSON.stringify(decisions);
  assertEquals(reasons.length, calls.length, log);

  // Every request was served, none left in flight, none held longer than a start.
  assertEquals(done, arrived);
  assertEquals(scaling.tracker.current("burst"), 0);
  assert(Math.max(...waits) <= START_MS, `a request waited ${Math.max(...waits)} ms`);

  // From zero: the first request wakes the function at once, not at the next tick.
  assertEquals(decisions[0], { at: at(firstArrival!), from: 0, to: 1, reason: "wake" }, log);

  // The ramp only scales up, and reaches 3 instances for the plateau of 25.
  const before = (s: number) => decisions.filter((d) => d.at < s);
  assert(before(300).every((d) => d.to > d.from), `scaled down during the ramp: ${log}`);
  assertEquals(before(300).at(-1)?.to, 3, log);

  // The burst (100 concurrent from 300 s on, over 2× the capacity of 3): panic within the panic
  // window, and the 10 instances it needs within the panic window and one tick.
  const panic = decisions.find((d) => d.at >= 300 && d.reason === "panic");
  assert(panic && panic.at <= 300 + a.panicWindow / 1000, `no panic in time: ${log}`);
  const enough = decisions.find((d) => d.at >= 300 && d.to >= 10);
  assert(enough && enough.at <= 300 + (a.panicWindow + a.tick) / 1000, `too slow: ${log}`);

  // No flapping: up, then down, never back; nothing goes down while the burst lasts, and
  // the count settles back to the plateau's 3 before the traffic stops.
  const firstDown = decisions.findIndex((d) => d.to < d.from);
  assert(firstDown > 0, log);
  assert(decisions.slice(firstDown).every((d) => d.to < d.from), `flapping: ${log}`);
  assert(decisions[firstDown].at >= 360, `scaled down during the burst: ${log}`);
  assertEquals(before(480).at(-1)?.to, 3, log);

  // Zero only after the idle timeout since the last request ended, and within two ticks.
  const idleFrom = at(lastEnd);
  const zero = decisions.at(-1)!;
  assertEquals([zero.to, zero.reason], [0, "idle"], log);
  assert(zero.at >= idleFrom + a.idleTimeout / 1000, `to zero too early: ${log}`);
  assert(zero.at <= idleFrom + (a.idleTimeout + 2 * a.tick) / 1000, `to zero too late: ${log}`);
  assertEquals(runtime.desiredReplicas("burst"), 0);

  const realMs = performance.now() - realStart;
  console.log(
    JSON.stringify({
      realMs: Math.round(realMs),
      requests: arrived,
      decisions: decisions.map((d) => `${d.at}s ${d.from}→${d.to} ${d.reason}`),
    }),
  );
  assert(realMs < 1000, `10 minutes took ${Math.round(realMs)} ms of real time`);
});
