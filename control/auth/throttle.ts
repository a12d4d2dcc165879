/**
 * Throttling password guesses before any hashing is done. Two kinds of counter:
 *
 * - per (client address, user name): after a few failures, a lockout that doubles with
 *   each further failure (1 s, 2 s, 4 s ... at most a minute);
 * - per client address, over every user name: a looser limit against one address trying
 *   many names, with a longer lockout.
 *
 * Nothing is counted per user name alone, so a flood from one address cannot lock the real
 * user out from another. One address may have only a couple of checks in progress, so a
 * burst of parallel guesses can neither slip past the limits before their failures are
 * counted nor fill the hashing queue ahead of other people's sign-ins. Counters are forgotten
 * after a quiet period, and the tables are bounded (the oldest entries go first).
 */

import { type Clock, realClock } from "../../common/clock.ts";

export interface ThrottleOptions {
  clock?: Clock;
  /** Failures of one user name from one address before lockouts start. */
  pairLimit?: number;
  /** Failures from one address (any user name) before lockouts start. */
  addressLimit?: number;
  /** Checks one address may have in progress at once. */
  addressInflight?: number;
  /** The first lockout (ms); each further failure doubles it. */
  baseLockMs?: number;
  maxPairLockMs?: number;
  maxAddressLockMs?: number;
  /** A counter without failures for this long starts over. */
  forgetMs?: number;
  maxEntries?: number;
}

interface Counter {
  failures: number;
  inflight: number;
  lockedUntil: number;
  last: number;
}

export type Admission =
  | { ok: true; done: (success: boolean, uncounted?: boolean) => void }
  | { ok: false; retryAfterMs: number; reason: string };

export interface SigninThrottle {
  /** Whether a password check may run now; `done` must be called with its outcome. */
  admit(address: string, username: string): Admission;
  /** Counters held (pairs and addresses): bounded by `maxEntries` each. */
  size(): number;
}

export function createSigninThrottle(options: ThrottleOptions = {}): SigninThrottle {
  const clock = options.clock ?? realClock;
  const now = () => clock.now();
  const pairLimit = options.pairLimit ?? 5;
  const addressLimit = options.addressLimit ?? 30;
  const addressInflight = options.addressInflight ?? 2;
  const base = options.baseLockMs ?? 1000;
  const maxPair = options.maxPairLockMs ?? 60_000;
  const maxAddress = options.maxAddressLockMs ?? 300_000;
  const forget = options.forgetMs ?? 15 * 60_000;
  const maxEntries = options.maxEntries ?? 10_000;
  const pairs = new Map<string, Counter>();
  const addresses = new Map<string, Counter>();

  function counter(table: Map<string, Counter>, key: string, t: number): Counter {
    let c = table.get(key);
    if (c && c.inflight === 0 && c.lockedUntil <= t && t - c.last > forget) {
      table.delete(key);
      c = undefined;
    }
    if (!c) {
      if (table.size >= maxEntries) evict(table, t);
      c = { failures: 0, inflight: 0, lockedUntil: 0, last: t };
      table.set(key, c);
    }
    return c;
  }

  /** Drops forgotten entries, or else the oldest idle one, to make room. */
  function evict(table: Map<string, Counter>, t: number) {
    for (const [key, c] of table) {
      if (c.inflight === 0 && c.lockedUntil <= t && t - c.last > forget) table.delete(key);
    }
    if (table.size < maxEntries) return;
    for (const [key, c] of table) {
      if (c.inflight === 0) {
        table.delete(key);
        return;
      }
    }
  }

  function fail(c: Counter, limit: number, max: number, t: number) {
    c.failures++;
    c.last = t;
    if (c.failures >= limit) {
      c.lockedUntil = t + Math.min(max, base * 2 ** Math.min(30, c.failures - limit));
    }
  }

  return {
    size: () => pairs.size + addresses.size,
    admit(address, username) {
      const t = now();
      const pair = counter(pairs, `${address}\0${username}`, t);
      const addr = counter(addresses, address, t);
      const wait = Math.max(pair.lockedUntil, addr.lockedUntil) - t;
      if (wait > 0) {
        return { ok: false, retryAfterMs: wait, reason: "too many failed sign-ins" };
      }
      if (addr.inflight >= addressInflight) {
        return { ok: false, retryAfterMs: 1000, reason: "sign-in attempts already in progress" };
      }
      pair.inflight++;
      addr.inflight++;
      let finished = false;
      return {
        ok: true,
        done(success, uncounted = false) {
          if (finished) return;
          finished = true;
          const end = now();
          pair.inflight--;
          addr.inflight--;
          if (uncounted) return;
          if (success) {
            pair.failures = 0;
            pair.lockedUntil = 0;
            pair.last = end;
          } else {
            fail(pair, pairLimit, maxPair, end);
            fail(addr, addressLimit, maxAddress, end);
          }
        },
      };
    },
  };
}
