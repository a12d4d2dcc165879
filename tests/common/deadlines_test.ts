// Coarse deadlines: never early, at most about a tick late, cancellable, and no timer left
// running once none is pending (the test sanitizers would report a leaked interval).

import { createDeadlines, TICK_MS } from "../../common/deadlines.ts";
import { assert, assertEquals } from "../harness/assert.ts";

Deno.test("deadlines: each fires once, not before its time, in order of time", async () => {
  const d = createDeadlines();
  const start = performance.now();
  const fired: [string, number][] = [];
  const done = Promise.withResolvers<void>();
  for (const [name, ms] of [["c", 60], ["a", 0], ["b", 25]] as const) {
    d.after(ms, () => {
      fired.push([name, performance.now() - start]);
      if (fired.length === 3) done.resolve();
    });
  }
  assertEquals(d.pending, 3);
  await done.promise;
  assertEquals(fired.map(([name]) => name), ["a", "b", "c"]);
  const wanted = { a: 0, b: 25, c: 60 };
  for (const [name, at] of fired) {
    const due = wanted[name as keyof typeof wanted];
    assert(at >= due, `${name} fired at ${at.toFixed(1)} ms, before ${due} ms`);
    // Generous: a loaded test machine delays timers, but not by seconds.
    assert(at < due + TICK_MS + 500, `${name} fired at ${at.toFixed(1)} ms, long after ${due}`);
  }
  assertEquals(d.pending, 0);
});

Deno.test("deadlines: a cancelled one never fires; cancelling twice is harmless", async () => {
  const d = createDeadlines();
  let fired = 0;
  const kept = Promise.withResolvers<void>();
  const cancelled = d.after(20, () => fired++);
  d.after(40, () => kept.resolve());
  cancelled.cancel();
  cancelled.cancel();
  assertEquals(d.pending, 1);
  await kept.promise;
  assertEquals(fired, 0);
});

Deno.test("deadlines: a failing callback does not stop the others", async () => {
  const d = createDeadlines();
  const errors: unknown[] = [];
  const onError = (e: ErrorEvent) => {
    e.preventDefault();
    errors.push(e.error);
  };
  globalThis.addEventListener("error", onError);
  try {
    const second = Promise.withResolvers<void>();
    d.after(5, () => {
      throw new Error("boom");
    });
    d.after(5, () => second.resolve());
    await second.promise;
    await new Promise((r) => setTimeout(r, 0));
    assertEquals(errors.map((e) => (e as Error).message), ["boom"]);
  } finally {
    globalThis.removeEventListener("error", onError);
  }
});
