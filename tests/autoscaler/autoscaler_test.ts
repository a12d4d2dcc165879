// The autoscaler loop (control/autoscaler/autoscaler.ts) on a clock the test moves, with the
// local tracker as signal and a runtime that only counts instances: the decision log and
// metrics, leadership, wake from zero, the idle guard, signal failures and settings.

import { assert, assertEquals } from "../harness/assert.ts";
import { createAutoscaler, scalingParams } from "../../control/autoscaler/autoscaler.ts";
import { createConcurrencyTracker } from "../../control/autoscaler/concurrency.ts";
import { type ConcurrencySignal, localSignal } from "../../control/autoscaler/signal.ts";
import type { AutoscalingConfig } from "../../control/config.ts";
import { createEventLog } from "../../control/events.ts";
import { createMetrics } from "../../control/metrics.ts";
import { type FunctionDef, parseFunction } from "../../common/function.ts";
import { countingRuntime } from "./replicas.ts";
import { createFakeClock } from "../harness/fake_clock.ts";

const CONFIG: AutoscalingConfig = {
  tick: 2000,
  stableWindow: 60_000,
  panicWindow: 6000,
  panicThreshold: 2,
  targetConcurrency: 10,
  idleTimeout: 30_000,
  source: "local",
};

function fnDef(name: string, target: Record<string, unknown> = {}): FunctionDef {
  const r = parseFunction({
    metadata: { name },
    spec: { endpoint: `/${name}`, method: "GET" },
    target: { containerImage: name, minReplicas: 0, maxReplicas: 10, ...target },
  });
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.fn;
}

function setup(
  options: {
    fns?: FunctionDef[];
    replicas?: number;
    leader?: () => boolean;
    signal?: ConcurrencySignal;
  } = {},
) {
  const clock = createFakeClock();
  const tracker = createConcurrencyTracker(clock);
  const runtime = countingRuntime();
  const fns = options.fns ?? [fnDef("hello")];
  for (const f of fns) runtime.add(f.name, options.replicas ?? 1);
  const events = createEventLog();
  const metrics = createMetrics({ processMetrics: false });
  const scaler = createAutoscaler({
    runtime,
    functions: () => fns,
    signal: options.signal ?? localSignal(tracker),
    config: CONFIG,
    events,
    metrics,
    clock,
    isLeader: options.leader,
  });
  const metric = async (name: string, labels: string) => {
    const text = await metrics.registry.metrics();
    const line = text.split("\n").find((l) => l.startsWith(`${name}{${labels}} `));
    return line === undefined ? undefined : Number(line.split(" ")[1]);
  };
  return { clock, tracker, runtime, events, metrics, scaler, metric, fns };
}

Deno.test("autoscaler: a decision is logged as an event and counted, with its inputs", async () => {
  const s = setup();
  s.tracker.change("hello", 15);
  await s.clock.advance(60_000);
  await s.scaler.tick();
  assertEquals(s.runtime.calls, [{ name: "hello", replicas: 2 }]);
  const [event] = s.events.list({ type: "scaling.decision" });
  assertEquals(event.function, "hello");
  assertEquals(event.data, {
    from: 1,
    to: 2,
    reason: "stable",
    direction: "up",
    source: "local",
    stableConcurrency: 15,
    panicConcurrency: 15,
    stableWindowMs: 60_000,
    panicWindowMs: 6000,
    targetConcurrency: 10,
    panicThreshold: 2,
    minReplicas: 0,
    maxReplicas: 10,
    ready: 1,
    panic: false,
    idleForMs: 0,
    idleTimeoutMs: 30_000,
  });
  assert(event.message.includes("1 → 2"), event.message);
  assert(event.message.includes("15 concurrent over 60s"), event.message);
  assertEquals(await s.metric("f2s_scaling_decisions_total", 'function="hello",direction="up"'), 1);
  assertEquals(await s.metric("f2s_desired_instances", 'function="hello"'), 2);
  assertEquals(
    await s.metric("f2s_autoscaler_observed_concurrency", 'function="hello",window="stable"'),
    15,
  );
  assertEquals(s.scaler.explain("hello")?.to, 2);
  // Same load next tick: nothing to decide, nothing logged.
  await s.clock.advance(2000);
  await s.scaler.tick();
  assertEquals(s.runtime.calls.length, 1);
  assertEquals(s.events.list({ type: "scaling.decision" }).length, 1);
});

Deno.test("autoscaler: a load step panics within one tick and the panic is logged", async () => {
  const s = setup();
  await s.clock.advance(60_000);
  await s.scaler.tick();
  s.tracker.change("hello", 60);
  await s.clock.advance(2000);
  await s.scaler.tick();
  // 60 over 2 s of a 6 s panic window = 20 = twice the capacity of one instance at 10.
  assertEquals(s.runtime.desiredReplicas("hello"), 2);
  await s.clock.advance(2000);
  await s.scaler.tick();
  assertEquals(s.runtime.desiredReplicas("hello"), 4);
  const panic = s.events.list({ type: "scaling.panic" });
  assertEquals(panic.length, 1);
  assert(panic[0].message.includes("entered panic mode"), panic[0].message);
  assertEquals(await s.metric("f2s_autoscaler_panic", 'function="hello"'), 1);
  assertEquals(s.events.list({ type: "scaling.decision" }).map((e) => e.data?.reason), [
    "panic",
    "panic",
  ]);
});

Deno.test("autoscaler: only the leader acts, and a new leader starts afresh", async () => {
  let leader = false;
  const s = setup({ leader: () => leader });
  s.tracker.change("hello", 50);
  await s.clock.advance(10_000);
  await s.scaler.tick();
  assertEquals(s.runtime.calls, []);
  assertEquals(s.events.list(), []);
  leader = true;
  await s.scaler.tick();
  assertEquals(s.runtime.desiredReplicas("hello"), 5);
});

Deno.test("autoscaler: wake scales from zero at once, once", async () => {
  const s = setup({ replicas: 0 });
  s.tracker.change("hello", 1); // the held request
  s.scaler.wake("hello");
  s.scaler.wake("hello");
  assertEquals(s.runtime.calls, [{ name: "hello", replicas: 1 }]);
  const [event] = s.events.list({ type: "scaling.decision" });
  assertEquals([event.data?.from, event.data?.to, event.data?.reason], [0, 1, "wake"]);
  assertEquals(await s.metric("f2s_scaling_decisions_total", 'function="hello",direction="up"'), 1);
  // Waking an unknown function or one that has instances does nothing.
  s.scaler.wake("nobody");
  assertEquals(s.runtime.calls.length, 1);
  // The next tick keeps it: a request is in flight.
  await s.clock.advance(120_000);
  await s.scaler.tick();
  assertEquals(s.runtime.desiredReplicas("hello"), 1);
});

Deno.test("autoscaler: wake honours minReplicas and per-function settings", () => {
  const s = setup({ fns: [fnDef("big", { minReplicas: 2, maxReplicas: 5 })], replicas: 0 });
  s.scaler.wake("big");
  assertEquals(s.runtime.calls, [{ name: "big", replicas: 2 }]);
});

Deno.test("autoscaler: never to zero with a request in flight, and not before the idle timeout", async () => {
  const s = setup();
  // A request that runs for ten minutes: the averages say little, it is still in flight.
  s.tracker.change("hello", 1);
  for (let i = 0; i < 300; i++) {
    await s.clock.advance(2000);
    await s.scaler.tick();
  }
  assertEquals(s.runtime.calls, []);
  s.tracker.change("hello", -1);
  const done = s.clock.now();
  while (s.clock.now() - done < 30_000 - 2000) {
    await s.clock.advance(2000);
    await s.scaler.tick();
    assertEquals(s.runtime.desiredReplicas("hello"), 1, `at ${s.clock.now() - done} ms idle`);
  }
  await s.clock.advanceTo(done + 30_000);
  await s.scaler.tick();
  assertEquals(s.runtime.calls, [{ name: "hello", replicas: 0 }]);
  const last = s.events.list({ type: "scaling.decision" }).at(-1)!;
  assertEquals([last.data?.reason, last.data?.idleForMs], ["idle", 30_000]);
});

Deno.test("autoscaler: a wake during the idle period keeps the function up", async () => {
  const s = setup({ replicas: 0 });
  s.scaler.wake("hello"); // the request was dispatched elsewhere, not through this tracker
  await s.clock.advance(29_000);
  await s.scaler.tick();
  assertEquals(s.runtime.desiredReplicas("hello"), 1);
  await s.clock.advance(1000);
  await s.scaler.tick();
  assertEquals(s.runtime.desiredReplicas("hello"), 0);
});

Deno.test("autoscaler: a failing signal keeps the count and says so once", async () => {
  let fail = true;
  const tracker = createConcurrencyTracker(createFakeClock());
  const inner = localSignal(tracker);
  const signal: ConcurrencySignal = {
    source: "prometheus",
    average: (fn, w) =>
      fail ? Promise.reject(new Error("connection refused")) : inner.average(fn, w),
    lastActivity: (fn) => inner.lastActivity(fn),
  };
  const s = setup({ signal, replicas: 3 });
  for (let i = 0; i < 5; i++) {
    await s.clock.advance(2000);
    await s.scaler.tick();
  }
  assertEquals(s.runtime.calls, []);
  const errors = s.events.list({ type: "scaling.error" });
  assertEquals(errors.length, 1);
  assert(errors[0].message.includes("keeping 3 instances"), errors[0].message);
  assert(errors[0].message.includes("connection refused"), errors[0].message);
  fail = false;
  await s.clock.advance(120_000);
  await s.scaler.tick();
  assertEquals(s.runtime.desiredReplicas("hello"), 0);
});

Deno.test("autoscaler: a failing scale call is logged as an event", async () => {
  const s = setup();
  s.runtime.scale = () => Promise.reject(new Error("quota exceeded"));
  s.tracker.change("hello", 30);
  await s.clock.advance(60_000);
  await s.scaler.tick();
  const [error] = s.events.list({ type: "scaling.error" });
  assert(error.message.includes("could not scale hello to 3: quota exceeded"), error.message);
});

Deno.test("autoscaler: start ticks on the configured interval and stop ends it", async () => {
  const s = setup();
  s.scaler.start();
  s.scaler.start();
  assertEquals(s.clock.pending, 1);
  s.tracker.change("hello", 40);
  await s.clock.advance(1999);
  assertEquals(s.runtime.calls, [], "no round before the first tick");
  // Only the interval's rounds run here: panic scales up within a few of them.
  await s.clock.advance(60_000);
  assertEquals(s.runtime.desiredReplicas("hello"), 4);
  s.scaler.stop();
  assertEquals(s.clock.pending, 0);
  s.tracker.change("hello", -40);
  await s.clock.advance(600_000);
  assertEquals(s.runtime.desiredReplicas("hello"), 4, "stopped: no more rounds");
});

Deno.test("autoscaler: removed functions are forgotten, unapplied ones skipped", async () => {
  const fns = [fnDef("a"), fnDef("b")];
  const s = setup({ fns });
  s.tracker.change("a", 20);
  await s.clock.advance(60_000);
  await s.scaler.tick();
  assertEquals(await s.metric("f2s_desired_instances", 'function="a"'), 2);
  fns.splice(0, 1);
  await s.scaler.tick();
  assertEquals(await s.metric("f2s_desired_instances", 'function="a"'), undefined);
  assertEquals(s.scaler.explain("a"), undefined);
  // Listed but never applied to the runtime: nothing to do, no error.
  fns.push(fnDef("c"));
  await s.scaler.tick();
  assertEquals(s.events.list({ type: "scaling.error" }), []);
});

Deno.test("autoscaler: per-function settings override the global ones", () => {
  const plain = scalingParams(fnDef("a"), CONFIG);
  assertEquals(plain, {
    targetConcurrency: 10,
    idleTimeout: 30_000,
    stableWindow: 60_000,
    panicWindow: 6000,
    panicThreshold: 2,
    minReplicas: 0,
    maxReplicas: 10,
  });
  const own = scalingParams(
    fnDef("b", {
      minReplicas: 1,
      maxReplicas: 3,
      scaling: {
        targetConcurrency: 2,
        idleTimeout: "5s",
        stableWindow: "20s",
        panicWindow: "2s",
        panicThreshold: 3,
      },
    }),
    { ...CONFIG, targetConcurrency: 50 },
  );
  assertEquals(own, {
    targetConcurrency: 2,
    idleTimeout: 5000,
    stableWindow: 20_000,
    panicWindow: 2000,
    panicThreshold: 3,
    minReplicas: 1,
    maxReplicas: 3,
  });
  // The global target applies when the function does not set its own.
  assertEquals(
    scalingParams(fnDef("c"), { ...CONFIG, targetConcurrency: 50 }).targetConcurrency,
    50,
  );
});
