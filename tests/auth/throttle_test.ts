/**
 * The sign-in throttle's rules on the fake clock (lockouts grow, end, are per address and
 * user, and are forgotten), and which address counts as the client behind trusted proxies.
 */

import { createSigninThrottle } from "../../control/auth/throttle.ts";
import { clientAddressResolver } from "../../control/auth/client_address.ts";
import { assert, assertEquals } from "./assert.ts";
import { createFakeClock } from "../harness/fake_clock.ts";

function failN(
  throttle: ReturnType<typeof createSigninThrottle>,
  n: number,
  address: string,
  user: string,
): number {
  let refused = 0;
  for (let i = 0; i < n; i++) {
    const a = throttle.admit(address, user);
    if (a.ok) a.done(false);
    else refused++;
  }
  return refused;
}

Deno.test("throttle: lockouts per (address, user) double, end, and never spread to others", async () => {
  const clock = createFakeClock(1_000_000);
  const throttle = createSigninThrottle({ clock });
  assertEquals(failN(throttle, 4, "10.0.0.1", "ana"), 0, "four failures pass");
  assertEquals(failN(throttle, 1, "10.0.0.1", "ana"), 0, "the fifth runs, then locks");
  const locked = throttle.admit("10.0.0.1", "ana");
  assert(!locked.ok && locked.retryAfterMs === 1000, JSON.stringify(locked));
  // Ana from elsewhere, and another user from the same address, are not affected.
  assert(throttle.admit("10.0.0.2", "ana").ok);
  const bob = throttle.admit("10.0.0.1", "bob");
  assert(bob.ok);
  bob.done(true);
  // Each further failure doubles the lockout, up to a minute.
  const waits: number[] = [];
  for (let i = 0; i < 10; i++) {
    await clock.advance(60_000);
    const a = throttle.admit("10.0.0.1", "ana");
    assert(a.ok);
    a.done(false);
    const b = throttle.admit("10.0.0.1", "ana");
    assert(!b.ok);
    waits.push(b.retryAfterMs);
  }
  assertEquals(waits, [2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000, 60000, 60000]);
  // A success clears the pair; quiet time forgets everything.
  await clock.advance(60_000);
  const ok = throttle.admit("10.0.0.1", "ana");
  assert(ok.ok);
  ok.done(true);
  assertEquals(failN(throttle, 4, "10.0.0.1", "ana"), 0);
});

Deno.test("throttle: one address trying many names is locked; at most 2 checks in flight", async () => {
  const clock = createFakeClock(1_000_000);
  const throttle = createSigninThrottle({ clock });
  for (let i = 0; i < 29; i++) assertEquals(failN(throttle, 1, "10.0.0.9", `user-${i}`), 0);
  assertEquals(failN(throttle, 1, "10.0.0.9", "user-29"), 0);
  const next = throttle.admit("10.0.0.9", "someone-new");
  assert(!next.ok, "the address is locked for every name");
  assert(throttle.admit("10.0.0.10", "someone-new").ok, "other addresses are not");
  await clock.advance(16 * 60_000);
  // In flight: a third parallel check from one address is refused at once.
  const a = throttle.admit("10.0.0.9", "x");
  const b = throttle.admit("10.0.0.9", "y");
  const c = throttle.admit("10.0.0.9", "z");
  assert(a.ok && b.ok && !c.ok);
  a.done(true);
  assert(throttle.admit("10.0.0.9", "z").ok);
  // A check that did not run (busy) counts as nothing.
  b.done(false, true);
});

Deno.test("throttle: the tables stay bounded under many addresses", () => {
  const clock = createFakeClock(1_000_000);
  const throttle = createSigninThrottle({ clock, maxEntries: 100 });
  for (let i = 0; i < 10_000; i++) failN(throttle, 1, `10.1.${i >> 8}.${i & 255}`, "ana");
  assert(throttle.size() <= 200, `${throttle.size()} counters held`);
  assert(throttle.admit("10.9.9.9", "ana").ok);
});

Deno.test("client address: X-Forwarded-For only from trusted proxies", () => {
  const headers = (xff?: string) => ({
    get: (name: string) => name === "x-forwarded-for" ? xff ?? null : null,
  });
  const none = clientAddressResolver([]);
  assertEquals(none("10.0.0.5", headers("1.2.3.4")), "10.0.0.5");
  const resolve = clientAddressResolver(["10.0.0.0/8", "fd00::1"]);
  assertEquals(resolve("10.0.0.5", headers("1.2.3.4")), "1.2.3.4");
  // The client may prepend anything; the right-most untrusted entry counts.
  assertEquals(resolve("10.0.0.5", headers("6.6.6.6, 1.2.3.4, 10.0.0.7")), "1.2.3.4");
  assertEquals(resolve("192.168.1.1", headers("1.2.3.4")), "192.168.1.1", "not a trusted proxy");
  assertEquals(resolve("fd00::1", headers("1.2.3.4")), "1.2.3.4");
  assertEquals(resolve("10.0.0.5", headers()), "10.0.0.5");
  assertEquals(resolve("::ffff:10.1.2.3", headers("5.5.5.5")), "5.5.5.5");
});
