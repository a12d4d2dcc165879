/**
 * The leader election's pacing (`planNext`), driven by a simulated clock: how many requests
 * an unreachable API gets, when a leader steps down, how soon a replica takes over once the
 * API is back, and that no two requests are ever closer than a retry period. The cluster
 * test (ha_test.ts) checks the same against a real API server.
 */

import { JITTER } from "../../common/backoff.ts";
import {
  type ElectionState,
  type ElectionTimings,
  pauseAfter,
  planNext,
} from "../../control/kube/leader.ts";
import { assert, assertEquals } from "../harness/assert.ts";

const T: ElectionTimings = {
  leaseDurationMs: 15_000,
  renewDeadlineMs: 10_000,
  retryPeriodMs: 2_000,
};

/** A seeded random number generator, so a failure can be replayed. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

interface Outcome {
  attemptsWhileDown: number;
  steppedDownAt?: number;
  leaderAgainAt?: number;
  gaps: number[];
}

/**
 * One replica that leads from time 0 while the API is unreachable in [downFrom, downUntil):
 * every request then fails, every other one succeeds.
 */
function simulateOutage(downFrom: number, downUntil: number, random: () => number): Outcome {
  const s: ElectionState = { leading: true, failures: 0, lastAttemptAt: 0, lastContact: 0 };
  let lastRenew = 0;
  const out: Outcome = { attemptsWhileDown: 0, gaps: [] };
  let now = 0;
  let previous = 0;
  while (now < downUntil + 60_000) {
    const plan = planNext(s, now, T, random());
    // The deadline timer fires even when no request is due.
    if (s.leading && plan.at >= lastRenew + T.renewDeadlineMs) {
      now = Math.max(now, lastRenew + T.renewDeadlineMs);
      s.leading = false;
      out.steppedDownAt ??= now;
      continue;
    }
    now = plan.at;
    out.gaps.push(now - previous);
    previous = now;
    s.lastAttemptAt = now;
    const down = now >= downFrom && now < downUntil;
    if (down) {
      out.attemptsWhileDown++;
      s.failures++;
      if (s.leading && now - lastRenew >= T.renewDeadlineMs) {
        s.leading = false;
        out.steppedDownAt ??= now;
      }
      continue;
    }
    s.failures = 0;
    s.lastContact = now;
    if (plan.action === "write") {
      lastRenew = now;
      if (!s.leading && now >= downUntil) {
        out.leaderAgainAt ??= now;
      }
      s.leading = true;
    }
  }
  return out;
}

Deno.test("kube leader: 30 s without the API costs a handful of requests, not a spin", () => {
  for (let seed = 1; seed <= 200; seed++) {
    const o = simulateOutage(1_000, 31_000, rng(seed));
    assert(o.attemptsWhileDown <= 20, `seed ${seed}: ${o.attemptsWhileDown} attempts`);
    assert(o.attemptsWhileDown >= 5, `seed ${seed}: it kept trying (${o.attemptsWhileDown})`);
    // The leader stops acting at the renew deadline after its last renewal (at 0).
    assertEquals(o.steppedDownAt, T.renewDeadlineMs, `seed ${seed}`);
    const takeover = o.leaderAgainAt! - 31_000;
    assert(
      takeover >= 0 && takeover <= T.leaseDurationMs + T.retryPeriodMs,
      `seed ${seed}: leads again ${takeover} ms after the API is back`,
    );
    for (const gap of o.gaps.slice(1)) {
      assert(gap >= T.retryPeriodMs, `seed ${seed}: two requests ${gap} ms apart`);
    }
  }
});

Deno.test("kube leader: back-off grows with jitter up to half the lease duration", () => {
  assertEquals(pauseAfter(0, T, 0), 2_000);
  assertEquals(pauseAfter(1, T, 0), 2_000);
  assertEquals(pauseAfter(2, T, 0), 4_000);
  assertEquals(pauseAfter(3, T, 0), 7_500);
  assertEquals(pauseAfter(30, T, 0), 7_500);
  assertEquals(pauseAfter(0, T, 1), 2_000 * (1 + JITTER));
  assertEquals(pauseAfter(30, T, 1), 7_500 * (1 + JITTER));
  assertEquals(pauseAfter(5, { ...T, maxBackoffMs: 3_000 }, 0), 3_000);
  // A leader in trouble keeps trying every retry period: it has a deadline to meet.
  const leader = planNext(
    { leading: true, failures: 4, lastAttemptAt: 1_000, lastContact: 0 },
    1_000,
    T,
    0,
  );
  assertEquals(leader, { at: 3_000, action: "write" });
  const follower = planNext(
    { leading: false, failures: 4, lastAttemptAt: 1_000, lastContact: 0 },
    1_000,
    T,
    0,
  );
  assertEquals(follower, { at: 8_500, action: "write" });
});

Deno.test("kube leader: a follower waits for the lease to run out, checking the API meanwhile", () => {
  // Someone else renewed at 0 (as this replica saw it); nothing since.
  const s: ElectionState = { leading: false, failures: 0, lastContact: 0, heldUntil: 15_000 };
  const steps: { at: number; action: string }[] = [];
  let now = 0;
  for (let i = 0; i < 10; i++) {
    const plan = planNext(s, now, T, 0.5);
    steps.push(plan);
    now = plan.at;
    s.lastAttemptAt = now;
    s.lastContact = now;
    if (plan.action === "write") break;
  }
  assertEquals(steps.map((p) => p.action), ["read", "read", "write"]);
  assertEquals(steps.at(-1)!.at, 15_000, "it writes exactly when the lease runs out");
  // A lease that was released (no holder) is taken at once, but not sooner than a retry
  // period after the previous request.
  assertEquals(planNext({ ...s, heldUntil: undefined, lastAttemptAt: 14_000 }, 15_000, T, 0), {
    at: 16_000,
    action: "write",
  });
  assertEquals(planNext({ ...s, heldUntil: undefined, lastAttemptAt: 0 }, 15_000, T, 0), {
    at: 15_000,
    action: "write",
  });
});

Deno.test("kube leader: no two requests closer than the retry period, whatever the state", () => {
  const random = rng(7);
  for (let i = 0; i < 5_000; i++) {
    const now = Math.floor(random() * 100_000);
    const s: ElectionState = {
      leading: random() < 0.5,
      failures: Math.floor(random() * 8),
      lastAttemptAt: now - Math.floor(random() * 20_000),
      lastContact: now - Math.floor(random() * 20_000),
      heldUntil: random() < 0.5 ? undefined : now + Math.floor(random() * 30_000) - 10_000,
    };
    const plan = planNext(s, now, T, random());
    assert(plan.at >= now, "never in the past");
    assert(plan.at >= s.lastAttemptAt! + T.retryPeriodMs, JSON.stringify({ s, plan }));
  }
});
