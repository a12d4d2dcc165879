// The one concurrency limiter (common/limiter.ts): slots are counted once taken and once
// given back, waiters are served first come first served as room appears, and a wait ends
// exactly once: with a slot, its timeout, its signal, a full line, or endWaits.

import { type Counted, createCountLimiter, createLimiter } from "../../common/limiter.ts";
import { createDeadlines } from "../../common/deadlines.ts";
import { assert, assertEquals } from "../harness/assert.ts";

Deno.test("limiter: at most max at once; a freed slot goes to the longest waiter", async () => {
  const l = createCountLimiter(2, 10);
  const a = l.tryAcquire()!;
  const b = l.tryAcquire()!;
  assert(a && b);
  assertEquals(l.tryAcquire(), undefined);
  const order: string[] = [];
  const first = l.acquire(new AbortController().signal);
  const second = l.acquire(new AbortController().signal);
  assert(first !== "full" && second !== "full");
  first.then(() => order.push("first"));
  second.then(() => order.push("second"));
  assertEquals(l.queued, 2);
  l.release(a);
  // The room went to the first waiter: nobody arriving now can take it.
  assertEquals(l.tryAcquire(), undefined);
  const got = await first;
  assertEquals(got, a);
  assertEquals(a.inflight, 2);
  assertEquals(order, ["first"]);
  l.release(b);
  assertEquals(await second, a);
  assertEquals(order, ["first", "second"]);
  l.release(a);
  l.release(a);
  assertEquals(a.inflight, 0);
  assertEquals(l.queued, 0);
});

Deno.test("limiter: a full line refuses at once; an aborted waiter leaves it", async () => {
  const l = createCountLimiter(1, 1);
  const slot = l.tryAcquire()!;
  const abort = new AbortController();
  const waiting = l.acquire(abort.signal);
  assert(waiting !== "full");
  assertEquals(l.acquire(new AbortController().signal), "full");
  abort.abort(new Error("gone"));
  assertEquals(await waiting, "aborted");
  assertEquals(l.queued, 0);
  // The slot given back stays free: the aborted waiter took nothing.
  l.release(slot);
  assertEquals(slot.inflight, 0);
  assert(l.tryAcquire());
  // A signal aborted before the wait ends it at once, and nothing is left in line.
  const pre = new AbortController();
  pre.abort();
  assertEquals(await l.acquire(pre.signal), "aborted");
  assertEquals(l.queued, 0);
});

Deno.test("limiter: a wait times out, not early, and holds no slot after", async () => {
  const deadlines = createDeadlines();
  const slot: Counted = { inflight: 1 };
  const l = createLimiter(() => (slot.inflight < 1 ? slot : undefined), { deadlines });
  const started = performance.now();
  const got = l.acquire(new AbortController().signal, 40);
  assert(got !== "full");
  assertEquals(await got, "timeout");
  assert(performance.now() - started >= 39, "timed out early");
  assertEquals(l.queued, 0);
  assertEquals(deadlines.pending, 0);
  l.release(slot);
  assertEquals(slot.inflight, 0);
});

Deno.test("limiter: over several slots, waiters get the one pick chooses; serve and endWaits", async () => {
  const slots: Counted[] = [];
  const limit = 1;
  const pick = (exclude?: Set<Counted>) =>
    slots.find((s) => s.inflight < limit && !exclude?.has(s));
  const l = createLimiter<Counted, Set<Counted>, "removed">(pick);
  assertEquals(l.tryAcquire(), undefined);
  const one = l.acquire(new AbortController().signal);
  const two = l.acquire(new AbortController().signal);
  const three = l.acquire(new AbortController().signal);
  assert(one !== "full" && two !== "full" && three !== "full");
  // A new slot appears: one waiter gets it, the others keep waiting.
  const s1 = { inflight: 0 };
  slots.push(s1);
  l.serve();
  assertEquals(await one, s1);
  assertEquals(l.queued, 2);
  // An excluded slot is not offered on a retry.
  const s2 = { inflight: 0 };
  slots.push(s2);
  assertEquals(l.tryAcquire(new Set([s2, s1])), undefined);
  l.serve();
  assertEquals(await two, s2);
  l.endWaits("removed");
  assertEquals(await three, { ended: "removed" });
  assertEquals([s1.inflight, s2.inflight], [1, 1]);
});
