/**
 * Coarse deadlines for per-request timeouts on the hot path (request_timeout,
 * http_timeout, idle pooled connections): one interval timer serves all of them.
 *
 * Why not a setTimeout each: in Deno a setTimeout/clearTimeout pair per request cost about
 * a tenth of the dispatcher's CPU in `deno task bench dispatcher`; adding to and deleting
 * from a Set is far cheaper. A deadline fires at most one tick (10 ms) late, never early,
 * and the timer runs only while a deadline is pending, so idle processes and tests are
 * left with no timer behind. It runs on a `Clock` (common/clock.ts): its monotonic reading,
 * so a wall-clock step neither fires deadlines early nor holds them back, and its intervals,
 * so a test clock drives it too.
 */

import { type Clock, realClock, type TimerId } from "./clock.ts";

export const TICK_MS = 10;

export interface Deadline {
  /** Forgets the deadline; does nothing once it fired or was cancelled. */
  cancel(): void;
}

export interface Deadlines {
  /** Calls `fire` once, no sooner than `ms` from now, unless cancelled first. */
  after(ms: number, fire: () => void): Deadline;
  /** Deadlines pending (for tests and diagnostics). */
  readonly pending: number;
}

interface Entry extends Deadline {
  fire: () => void;
  bucket: Set<Entry> | undefined;
}

export function createDeadlines(clock: Clock = realClock): Deadlines {
  const now = () => clock.monotonic();
  // Buckets by tick number: a deadline at time t waits in bucket ceil(t / TICK_MS).
  const buckets = new Map<number, Set<Entry>>();
  let pending = 0;
  let timer: TimerId | undefined;
  let done = 0; // the last tick whose bucket has fired

  function stopIfIdle() {
    if (pending === 0 && timer !== undefined) {
      clock.clearInterval(timer);
      timer = undefined;
    }
  }

  function tick() {
    const current = Math.floor(now() / TICK_MS);
    while (done < current) {
      done++;
      const bucket = buckets.get(done);
      if (!bucket) continue;
      buckets.delete(done);
      for (const entry of bucket) {
        entry.bucket = undefined;
        pending--;
        try {
          entry.fire();
        } catch (e) {
          // One failing callback must not keep the others from firing.
          queueMicrotask(() => {
            throw e;
          });
        }
      }
    }
    stopIfIdle();
  }

  function cancel(this: Entry) {
    const bucket = this.bucket;
    if (!bucket) return;
    this.bucket = undefined;
    bucket.delete(this);
    pending--;
    stopIfIdle();
  }

  return {
    after(ms, fire) {
      if (timer === undefined) {
        done = Math.floor(now() / TICK_MS);
        timer = clock.setInterval(tick, TICK_MS);
      }
      const at = Math.max(done + 1, Math.ceil((now() + Math.max(0, ms)) / TICK_MS));
      let bucket = buckets.get(at);
      if (!bucket) buckets.set(at, bucket = new Set());
      const entry: Entry = { fire, bucket, cancel };
      bucket.add(entry);
      pending++;
      return entry;
    },
    get pending() {
      return pending;
    },
  };
}

/** The process's shared deadlines. */
export const deadlines: Deadlines = createDeadlines();
