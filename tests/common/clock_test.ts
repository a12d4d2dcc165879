// The clock: the real one keeps its promises (sleep ends early on abort, timers clear), and
// the fake one fires due timers in order at their own times, re-arms intervals, lets async
// callbacks settle between timers, and drives Deadlines without any real waiting.

import { realClock } from "../../common/clock.ts";
import { createDeadlines, TICK_MS } from "../../common/deadlines.ts";
import { assert, assertEquals } from "../harness/assert.ts";
import { createFakeClock } from "../harness/fake_clock.ts";

Deno.test("clock: real sleep waits, and ends at once when aborted", async () => {
  const started = performance.now();
  await realClock.sleep(30);
  assert(performance.now() - started >= 29, "slept less than asked");
  const stop = new AbortController();
  const long = realClock.sleep(60_000, stop.signal);
  stop.abort();
  await long; // a leaked 60 s timer would fail the test's sanitizer
  await realClock.sleep(10, AbortSignal.abort());
  const wall = realClock.now();
  assert(Math.abs(wall - Date.now()) < 1000, "now() is not Unix time");
});

Deno.test("fake clock: timers fire in due order, each at its own time, ties by order set", async () => {
  const clock = createFakeClock(1_000_000);
  const fired: [string, number][] = [];
  const note = (name: string) => () => fired.push([name, clock.monotonic()]);
  clock.setTimeout(note("c"), 300);
  clock.setTimeout(note("a"), 100);
  clock.setTimeout(note("b1"), 200);
  clock.setTimeout(note("b2"), 200);
  const cleared = clock.setTimeout(note("never"), 150);
  clock.clearTimeout(cleared);
  assertEquals(clock.now(), 1_000_000);
  await clock.advance(250);
  assertEquals(fired, [["a", 100], ["b1", 200], ["b2", 200]]);
  assertEquals(clock.monotonic(), 250);
  assertEquals(clock.now(), 1_000_250);
  await clock.advance(1000);
  assertEquals(fired.at(-1), ["c", 300]);
  assertEquals(clock.pending, 0);
});

Deno.test("fake clock: intervals re-arm, a timer set by a callback fires in the same advance", async () => {
  const clock = createFakeClock();
  const ticks: number[] = [];
  const id = clock.setInterval(() => {
    ticks.push(clock.monotonic());
    if (ticks.length === 2) clock.setTimeout(() => ticks.push(-clock.monotonic()), 5);
  }, 100);
  await clock.advance(350);
  assertEquals(ticks, [100, 200, -205, 300]);
  clock.clearInterval(id);
  await clock.advance(1000);
  assertEquals(ticks.length, 4);
});

Deno.test("fake clock: async work a timer starts finishes before the next timer", async () => {
  const clock = createFakeClock();
  const order: string[] = [];
  clock.setTimeout(async () => {
    for (let i = 0; i < 20; i++) await Promise.resolve();
    order.push("first done");
  }, 10);
  clock.setTimeout(() => order.push("second"), 11);
  // sleep on the fake clock resolves only when time is moved past it
  let slept = false;
  clock.sleep(1000).then(() => slept = true);
  await clock.advance(999);
  assertEquals(order, ["first done", "second"]);
  assertEquals(slept, false);
  await clock.advance(1);
  assertEquals(slept, true);
});

Deno.test("deadlines on the fake clock: never early, at most a tick late", async () => {
  const clock = createFakeClock();
  const d = createDeadlines(clock);
  const fired: number[] = [];
  d.after(25, () => fired.push(clock.monotonic()));
  const cancelled = d.after(30, () => fired.push(-1));
  await clock.advance(24);
  assertEquals(fired, []);
  cancelled.cancel();
  await clock.advance(100);
  assertEquals(fired.length, 1);
  assert(fired[0] >= 25 && fired[0] <= 25 + TICK_MS, `fired at ${fired[0]}`);
  // No deadline pending: its interval timer is gone too.
  assertEquals(clock.pending, 0);
});
