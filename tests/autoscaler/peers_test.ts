// The other replicas' load (control/autoscaler/peers.ts) on a clock the test moves: two
// replicas' trackers, one's reports carried to the other as the Lease annotation would carry
// them (text), and the real autoscaler deciding on the sum. The cluster test
// (tests/kube/ha_test.ts) runs the same with two `f2s serve` processes.

import { assert, assertEquals } from "../harness/assert.ts";
import { createAutoscaler } from "../../control/autoscaler/autoscaler.ts";
import { createConcurrencyTracker } from "../../control/autoscaler/concurrency.ts";
import {
  createPeerLoads,
  loadReport,
  parseLoadReport,
  replicasSignal,
} from "../../control/autoscaler/peers.ts";
import type { AutoscalingConfig } from "../../control/config.ts";
import { createEventLog } from "../../control/events.ts";
import { createMetrics } from "../../control/metrics.ts";
import { parseFunction } from "../../common/function.ts";
import { countingRuntime } from "./replicas.ts";
import { createFakeClock, type FakeClock } from "../harness/fake_clock.ts";

function assertAlmostEquals(actual: number, expected: number, epsilon: number) {
  assert(Math.abs(actual - expected) <= epsilon, `${actual} is not ${expected} ± ${epsilon}`);
}

const clock = () => createFakeClock(1_000_000);

/** Replica B's tracker, reported to A's peer view every `everyMs`, as text. */
function pair(c: FakeClock, staleMs = 15_000) {
  const b = createConcurrencyTracker(c);
  const peers = createPeerLoads({ staleMs });
  let seq = 0;
  const report = () =>
    peers.record("b", parseLoadReport(JSON.stringify(loadReport(b, ++seq, c.now())))!, c.now());
  return { b, peers, report };
}

Deno.test("peers: a peer's integral gives its exact average, short requests included", async () => {
  const c = clock();
  const { b, peers, report } = pair(c);
  // 100 requests of 10 ms each per second on B for 10 s: concurrency 1 on average. B reports
  // at once when a function gets its first request in flight, then every second.
  for (let s = 0; s < 10; s++) {
    for (let i = 0; i < 100; i++) {
      b.change("f", 1);
      if (s === 0 && i === 0) report();
      await c.advance(10);
      b.change("f", -1);
    }
    report();
  }
  assertAlmostEquals(peers.average("f", 6_000, c.now()), 1, 1e-9);
  assertAlmostEquals(peers.average("f", 60_000, c.now()), 10 / 60, 1e-9);
  assertEquals(peers.inflight("f", c.now()), 0);
  assertEquals(peers.lastActivity("f", c.now()), c.now());
  // Between reports a request in flight is carried forward.
  b.change("f", 1);
  report();
  await c.advance(500);
  assertAlmostEquals(peers.average("f", 500, c.now()), 1, 1e-9);
  assertEquals(peers.lastActivity("f", c.now()), c.now(), "in flight: active now");
});

Deno.test("peers: a peer that stops reporting stops counting; a restart starts over", async () => {
  const c = clock();
  const { b, peers, report } = pair(c, 15_000);
  b.change("f", 2);
  report();
  await c.advance(1_000);
  report();
  await c.advance(15_000);
  assertEquals(peers.inflight("f", c.now()), 2);
  assertEquals(peers.fresh(c.now()), ["b"]);
  await c.advance(1);
  assertEquals(peers.inflight("f", c.now()), 0);
  assertEquals(peers.average("f", 6_000, c.now()), 0);
  assertEquals(peers.lastActivity("f", c.now()), undefined);
  assertEquals(peers.fresh(c.now()), []);
  // Same name, smaller integral: a new process; its history is not subtracted from the old.
  peers.record("b", { seq: 99, fns: { f: [0, 5, 0] } }, c.now());
  await c.advance(1_000);
  assertEquals(peers.average("f", 6_000, c.now()), 0);
  peers.forget("b");
  assertEquals(peers.lastSeen().size, 0);
});

Deno.test("peers: malformed reports are refused, field by field", () => {
  assertEquals(parseLoadReport("nope"), undefined);
  assertEquals(parseLoadReport('{"fns":{}}'), undefined);
  assertEquals(
    parseLoadReport(
      '{"seq":1,"fns":{"ok":[1,2,null],"neg":[-1,2,3],"nan":["x",1,1],"short":[1,2]}}',
    ),
    { seq: 1, fns: { ok: [1, 2, null] } },
  );
});

const CONFIG: AutoscalingConfig = {
  tick: 1000,
  stableWindow: 60_000,
  panicWindow: 6_000,
  panicThreshold: 2,
  targetConcurrency: 1,
  idleTimeout: 15_000,
  source: "local",
};

Deno.test("peers: the leader never scales to zero what another replica serves", async () => {
  const c = clock();
  const a = createConcurrencyTracker(c);
  const { b, peers, report } = pair(c);
  const fn = parseFunction({
    metadata: { name: "slowfn" },
    spec: { endpoint: "/slowfn", method: "GET" },
    target: { containerImage: "x", minReplicas: 0, maxReplicas: 5 },
  });
  assert(fn.ok);
  const runtime = countingRuntime();
  runtime.add("slowfn", 1);
  const events = createEventLog();
  const scaler = createAutoscaler({
    runtime,
    functions: () => [fn.fn],
    signal: replicasSignal(a, peers, c),
    config: CONFIG,
    events,
    metrics: createMetrics({ processMetrics: false }),
    clock: c,
  });
  // One request per second of 2 s each, all on B, for 75 s; B reports every second.
  const ends: number[] = [];
  const second = async (request: boolean) => {
    if (request) {
      b.change("slowfn", 1);
      ends.push(c.now() + 2_000);
    }
    for (let ms = 0; ms < 1_000; ms += 250) {
      await c.advance(250);
      while (ends.length && ends[0] <= c.now()) {
        ends.shift();
        b.change("slowfn", -1);
      }
    }
    report();
    await scaler.tick();
  };
  for (let s = 0; s < 75; s++) await second(true);
  const downs = () =>
    events.list({ type: "scaling.decision" }).filter((e) => e.data?.direction === "down");
  assertEquals(downs(), [], "no scale-down while B serves");
  // Two requests in flight on average, at target 1: the leader scaled up on B's load alone.
  assertEquals(runtime.desiredReplicas("slowfn"), 2);
  // The trickle stops: after the idle timeout, down to zero.
  for (let s = 0; s < 40; s++) await second(false);
  assertEquals(runtime.desiredReplicas("slowfn"), 0);
  const zero = downs().filter((e) => e.data?.to === 0);
  assertEquals(zero.length, 1);
  assert((zero[0].data!.idleForMs as number) >= 15_000);
});
