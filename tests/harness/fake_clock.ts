/**
 * The one test clock: time stands still until the test moves it, and moving it fires the
 * timers that came due, in due order, each at its own time, so a component sees the same
 * sequence of times and callbacks it would in real time, only without the waiting.
 *
 * Between timers `advance` lets the promise work those callbacks started settle (work that
 * waits only on other promises, not on real I/O), so an async autoscaler round finishes
 * before the next tick, as it would in real time.
 */

import { type Clock, sleepOn, type TimerId } from "../../common/clock.ts";

export interface FakeClock extends Clock {
  /** Moves time forward by `ms`, firing every timer due on the way; resolves when done. */
  advance(ms: number): Promise<void>;
  /** Moves time to `at` (wall-clock, as `now()` reads) the same way; never back. */
  advanceTo(at: number): Promise<void>;
  /** Lets pending promise work settle without moving time. */
  settle(): Promise<void>;
  /** Timers waiting to fire. */
  readonly pending: number;
}

interface Timer {
  id: number;
  at: number;
  fire: () => void;
  /** Set for intervals: re-armed this much later after each firing. */
  every?: number;
}

/** Microtask turns given to promise chains between two timers. */
const SETTLE_TURNS = 100;

/**
 * `start` is the wall-clock Unix time the clock shows first (monotonic time starts at 0);
 * the default is a fixed date so runs repeat exactly.
 */
export function createFakeClock(start = Date.UTC(2026, 0, 1)): FakeClock {
  let t = 0;
  let nextId = 1;
  const timers = new Map<TimerId, Timer>();

  function add(fire: () => void, ms: number, every?: number): number {
    const id = nextId++;
    timers.set(id, { id, at: t + Math.max(0, ms), fire, every });
    return id;
  }

  /** The earliest due timer no later than `until`; ties go to the one set first. */
  function nextDue(until: number): Timer | undefined {
    let best: Timer | undefined;
    for (const timer of timers.values()) {
      if (timer.at > until) continue;
      if (!best || timer.at < best.at || (timer.at === best.at && timer.id < best.id)) {
        best = timer;
      }
    }
    return best;
  }

  async function settle() {
    for (let i = 0; i < SETTLE_TURNS; i++) await Promise.resolve();
  }

  async function advanceTo(target: number) {
    await settle();
    for (;;) {
      const timer = nextDue(target);
      if (!timer) break;
      t = Math.max(t, timer.at);
      if (timer.every !== undefined) timer.at = t + Math.max(1, timer.every);
      else timers.delete(timer.id);
      timer.fire();
      await settle();
    }
    t = Math.max(t, target);
  }

  const clock: FakeClock = {
    now: () => start + t,
    monotonic: () => t,
    setTimeout: (fire, ms) => add(fire, ms),
    clearTimeout: (id) => {
      timers.delete(id);
    },
    setInterval: (fire, ms) => add(fire, Math.max(1, ms), Math.max(1, ms)),
    clearInterval: (id) => {
      timers.delete(id);
    },
    sleep: (ms, signal) => sleepOn(clock, ms, signal),
    advance: (ms) => advanceTo(t + ms),
    advanceTo: (at) => advanceTo(at - start),
    settle,
    get pending() {
      return timers.size;
    },
  };
  return clock;
}
