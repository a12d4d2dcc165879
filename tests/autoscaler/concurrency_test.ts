// The local concurrency signal (control/autoscaler/concurrency.ts) on a clock the test moves:
// time-weighted averages over windows, last activity, history limits and the exported
// Prometheus metrics.

import { assert, assertEquals } from "../harness/assert.ts";
import { createConcurrencyTracker } from "../../control/autoscaler/concurrency.ts";
import { createMetrics } from "../../control/metrics.ts";
import { createFakeClock } from "../harness/fake_clock.ts";

const clock = createFakeClock;

function near(actual: number, expected: number, tolerance = 1e-9) {
  assert(
    Math.abs(actual - expected) <= tolerance,
    `expected ${expected} ± ${tolerance}, got ${actual}`,
  );
}

Deno.test("tracker: constant concurrency averages to itself over any window", async () => {
  const c = clock(1000);
  const t = createConcurrencyTracker(c);
  for (let i = 0; i < 3; i++) t.change("a", 1);
  await c.advance(10_000);
  near(t.average("a", 10_000), 3);
  near(t.average("a", 5_000), 3);
  near(t.average("a", 1_500), 3);
  assertEquals(t.current("a"), 3);
});

Deno.test("tracker: a step shows fully in a short window and partly in a long one", async () => {
  const c = clock(0);
  const t = createConcurrencyTracker(c);
  t.change("a", 0); // first seen at 0 with nothing in flight
  await c.advanceTo(5000);
  for (let i = 0; i < 4; i++) t.change("a", 1);
  await c.advanceTo(10_000);
  near(t.average("a", 10_000), 2);
  near(t.average("a", 2_000), 4);
  near(t.average("a", 6_000), 4 * 5 / 6);
  // Windows reaching before the function was first seen count that time as zero.
  near(t.average("a", 20_000), 1);
});

Deno.test("tracker: requests shorter than a second are weighted by their duration", async () => {
  const c = clock(0);
  const t = createConcurrencyTracker(c);
  t.change("a", 0);
  // One 100 ms request every second for 10 s: 10% busy.
  for (let s = 0; s < 10; s++) {
    await c.advanceTo(s * 1000 + 250);
    t.change("a", 1);
    await c.advanceTo(s * 1000 + 350);
    t.change("a", -1);
  }
  await c.advanceTo(10_000);
  near(t.average("a", 10_000), 0.1);
  near(t.average("a", 5_000), 0.1);
  // A window starting inside a second is interpolated: off by at most that second's share.
  near(t.average("a", 4_500), 0.1, 0.1 * 1000 / 4500);
});

Deno.test("tracker: many overlapping changes keep an exact integral", async () => {
  const c = clock(0);
  const t = createConcurrencyTracker(c);
  t.change("a", 0);
  // 2000 requests of 300 ms, one starting every 10 ms: concurrency 30 once it has ramped up.
  const ends: number[] = [];
  for (let i = 0; i < 2000; i++) {
    const start = i * 10;
    while (ends.length > 0 && ends[0] <= start) {
      await c.advanceTo(ends.shift()!);
      t.change("a", -1);
    }
    await c.advanceTo(start);
    t.change("a", 1);
    ends.push(start + 300);
  }
  assertEquals(t.current("a"), 30);
  await c.advanceTo(20_000);
  near(t.average("a", 10_000), 30, 1e-6);
});

Deno.test("tracker: last activity is now while busy and the end of the last request after", async () => {
  const c = clock(100);
  const t = createConcurrencyTracker(c);
  assertEquals(t.lastActivity("a"), undefined);
  t.change("a", 1);
  await c.advanceTo(5000);
  assertEquals(t.lastActivity("a"), 5000);
  await c.advanceTo(6000);
  t.change("a", -1);
  await c.advanceTo(60_000);
  assertEquals(t.lastActivity("a"), 6000);
  assertEquals(t.functions(), ["a"]);
});

Deno.test("tracker: functions are independent and forget drops one", async () => {
  const c = clock(0);
  const t = createConcurrencyTracker(c);
  t.change("a", 2);
  t.change("b", 1);
  await c.advanceTo(4000);
  near(t.average("a", 4000), 2);
  near(t.average("b", 4000), 1);
  t.forget("a");
  assertEquals(t.average("a", 4000), 0);
  assertEquals(t.lastActivity("a"), undefined);
  assertEquals(t.functions(), ["b"]);
});

Deno.test("tracker: long quiet gaps and windows past the history kept", async () => {
  const c = clock(0);
  const t = createConcurrencyTracker(c, { retentionMs: 10_000 });
  t.change("a", 2);
  await c.advanceTo(100_000); // nothing changed for far longer than the ring
  near(t.average("a", 5000), 2);
  near(t.average("a", 10_000), 2);
  t.change("a", -2);
  await c.advanceTo(103_000);
  near(t.average("a", 6000), 1);
  // Older than the history kept: the oldest boundary bounds the window, never a crash.
  const long = t.average("a", 60_000);
  assert(long >= 0 && long <= 2, `got ${long}`);
  assertEquals(t.current("a"), 0);
});

Deno.test("tracker: a negative count is clamped at zero", async () => {
  const c = clock(0);
  const t = createConcurrencyTracker(c);
  t.change("a", -1);
  await c.advanceTo(2000);
  assertEquals(t.current("a"), 0);
  assertEquals(t.average("a", 2000), 0);
});

Deno.test("tracker: exports the integral and last activity at every scrape", async () => {
  const c = clock(1_700_000_000_000);
  const metrics = createMetrics({ processMetrics: false });
  const t = createConcurrencyTracker(c, { metrics });
  const value = async (name: string) => {
    const text = await metrics.registry.metrics();
    const m = new RegExp(`^${name}\\{function="a"\\} (\\S+)$`, "m").exec(text);
    return m ? Number(m[1]) : undefined;
  };
  t.change("a", 3);
  await c.advance(2000);
  near((await value("f2s_concurrency_seconds_total"))!, 6);
  assertEquals(await value("f2s_last_activity_timestamp_seconds"), 1_700_000_002);
  await c.advance(500);
  t.change("a", -3);
  await c.advance(10_000);
  // The integral keeps what it had (7.5 request-seconds) and activity stays at the end.
  near((await value("f2s_concurrency_seconds_total"))!, 7.5);
  assertEquals(await value("f2s_last_activity_timestamp_seconds"), 1_700_000_002.5);
  t.forget("a");
  assertEquals(await value("f2s_concurrency_seconds_total"), undefined);
});
