/**
 * The autoscaler's local signal: how many requests for each function are in flight (served
 * or held) as this control plane's dispatcher sees them, and their time-weighted average over
 * a window.
 *
 * Per function it keeps the running integral of concurrency over time (request-ms) and a
 * ring of that integral's value at every whole second. The average over a window is then
 * (integral now − integral at the window's start) / window, with the start interpolated
 * inside its second: O(1) per change and per query, whatever the request rate.
 *
 * Given `metrics`, it also exports the integral as `f2s_concurrency_seconds_total` and the
 * last activity as `f2s_last_activity_timestamp_seconds`, brought up to date at every scrape,
 * which is what the Prometheus signal reads (see signal.ts).
 */

import { type Clock, realClock } from "../../common/clock.ts";
import type { Metrics } from "../metrics.ts";

export interface ConcurrencyTracker {
  /** +1 when a request for `fn` arrives (also while it is held), -1 when it is done. */
  change(fn: string, delta: number): void;
  /** Requests in flight for `fn` right now. */
  current(fn: string): number;
  /** Time-weighted average concurrency of `fn` over the last `windowMs`. */
  average(fn: string, windowMs: number): number;
  /** The integral of `fn`'s concurrency since it was first seen (request-ms), up to now. */
  total(fn: string): number;
  /** Now while `fn` has a request in flight, else when its last one finished. */
  lastActivity(fn: string): number | undefined;
  /** Drops everything known about `fn` (it was removed). */
  forget(fn: string): void;
  /** Functions with any history. */
  functions(): string[];
}

export interface TrackerOptions {
  /** History kept for averages (ms); longer windows see only this much. Default 1 hour. */
  retentionMs?: number;
  /** Export the integral and last activity as Prometheus metrics. */
  metrics?: Metrics;
}

const BUCKET_MS = 1000;

interface Series {
  current: number;
  /** Integral of concurrency (request-ms) up to `at`. */
  integral: number;
  at: number;
  /** When the function was first seen: before it, concurrency was 0. */
  since: number;
  /** Integral at second boundaries: ring[s % size] for second index s in [first, last]. */
  ring: Float64Array;
  first: number;
  last: number;
  /** Integral already added to the exported counter. */
  exported: number;
  lastActivity: number | undefined;
}

/**
 * Times are the clock's wall-clock `now()`: the autoscaler compares last activity with its
 * own `now()`, and the exported last activity is a Unix timestamp other replicas compare.
 */
export function createConcurrencyTracker(
  clock: Clock = realClock,
  options: TrackerOptions = {},
): ConcurrencyTracker {
  const now = () => clock.now();
  const size = Math.ceil((options.retentionMs ?? 3_600_000) / BUCKET_MS) + 2;
  const series = new Map<string, Series>();

  function get(fn: string, t: number): Series {
    let s = series.get(fn);
    if (!s) {
      const second = Math.floor(t / BUCKET_MS);
      s = {
        current: 0,
        integral: 0,
        at: t,
        since: t,
        ring: new Float64Array(size),
        first: second + 1,
        last: second,
        exported: 0,
        lastActivity: undefined,
      };
      series.set(fn, s);
    }
    return s;
  }

  /** Brings the integral and the second boundaries up to time `t`. */
  function advance(s: Series, t: number) {
    if (t <= s.at) return;
    const target = Math.floor(t / BUCKET_MS);
    // Boundaries older than the ring would be overwritten at once: skip straight past them.
    let next = Math.max(s.last + 1, target - size + 1);
    for (; next <= target; next++) {
      const boundary = next * BUCKET_MS;
      s.ring[next % size] = s.integral + s.current * (boundary - s.at);
    }
    if (target > s.last) {
      s.last = target;
      s.first = Math.max(s.first, target - size + 1);
    }
    s.integral += s.current * (t - s.at);
    s.at = t;
  }

  /** The integral at a past time `t` (≤ s.at). */
  function integralAt(s: Series, t: number): number {
    if (t <= s.since) return 0;
    const second = Math.floor(t / BUCKET_MS);
    const lower = second >= s.first ? { t: second * BUCKET_MS, v: s.ring[second % size] } : (
      // Before the first boundary kept: from creation (integral 0) if it is that recent.
      s.first === Math.floor(s.since / BUCKET_MS) + 1 ? { t: s.since, v: 0 } : undefined
    );
    const upperSecond = second + 1;
    const upper = upperSecond <= s.last
      ? { t: upperSecond * BUCKET_MS, v: s.ring[upperSecond % size] }
      : { t: s.at, v: s.integral };
    if (!lower) {
      // Older than the history kept: the oldest boundary is the best estimate there is.
      return s.first <= s.last ? s.ring[s.first % size] : 0;
    }
    if (upper.t <= lower.t) return lower.v;
    return lower.v + (upper.v - lower.v) * (t - lower.t) / (upper.t - lower.t);
  }

  function flush() {
    const m = options.metrics;
    if (!m) return;
    const t = now();
    for (const [fn, s] of series) {
      advance(s, t);
      const delta = s.integral - s.exported;
      if (delta > 0) m.concurrencySeconds.inc({ function: fn }, delta / 1000);
      else m.concurrencySeconds.inc({ function: fn }, 0);
      s.exported = s.integral;
      const active = s.current > 0 ? t : s.lastActivity;
      if (active !== undefined) {
        m.lastActivity.set({ function: fn }, active / 1000);
      }
    }
  }
  options.metrics?.onCollect(flush);

  return {
    change(fn, delta) {
      const t = now();
      const s = get(fn, t);
      advance(s, t);
      s.current = Math.max(0, s.current + delta);
      s.lastActivity = t;
    },
    current: (fn) => series.get(fn)?.current ?? 0,
    average(fn, windowMs) {
      const s = series.get(fn);
      if (!s || windowMs <= 0) return s?.current ?? 0;
      const t = now();
      advance(s, t);
      const start = t - windowMs;
      return (s.integral - integralAt(s, start)) / windowMs;
    },
    total(fn) {
      const s = series.get(fn);
      if (!s) return 0;
      advance(s, now());
      return s.integral;
    },
    lastActivity(fn) {
      const s = series.get(fn);
      if (!s) return undefined;
      return s.current > 0 ? now() : s.lastActivity;
    },
    forget(fn) {
      series.delete(fn);
      options.metrics?.concurrencySeconds.remove({ function: fn });
      options.metrics?.lastActivity.remove({ function: fn });
    },
    functions: () => [...series.keys()],
  };
}
