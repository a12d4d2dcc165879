/**
 * The one model of time: every component that reads the time or waits takes a `Clock`, so
 * the assembled platform can run on a test clock (tests/harness/fake_clock.ts) that moves
 * when a test says so, and a 10-minute scaling scenario runs in milliseconds.
 *
 * Two readings, as Go's time.Time carries both: `now()` is wall-clock Unix time (for what
 * is compared with other machines: Lease renew times, Prometheus timestamps, stored call
 * times) and `monotonic()` never goes back (for durations and deadlines, which a wall-clock
 * step must not cut short or stretch). A fake clock advances both together.
 */

/** A timer as the clock hands it out (opaque: each clock has its own); pass it back to clear it. */
export type TimerId = unknown;

type RealTimer = ReturnType<typeof setTimeout>;

export interface Clock {
  /** Wall-clock Unix time in ms. */
  now(): number;
  /** Milliseconds on a clock that never goes back; only differences mean anything. */
  monotonic(): number;
  /** Calls `fire` once, no sooner than `ms` from now. */
  setTimeout(fire: () => void, ms: number): TimerId;
  clearTimeout(id: TimerId | undefined): void;
  /** Calls `fire` every `ms` until cleared. */
  setInterval(fire: () => void, ms: number): TimerId;
  clearInterval(id: TimerId | undefined): void;
  /** Resolves after `ms`, or at once (without throwing) when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** Sleep on any clock's timers: what both the real and the fake clock offer. */
export function sleepOn(
  clock: Pick<Clock, "setTimeout" | "clearTimeout">,
  ms: number,
  signal?: AbortSignal,
): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clock.clearTimeout(id);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const id = clock.setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** The process's real time: Date.now, performance.now and the runtime's timers. */
export const realClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimeout: (fire, ms) => setTimeout(fire, ms),
  clearTimeout: (id) => clearTimeout(id as RealTimer),
  setInterval: (fire, ms) => setInterval(fire, ms),
  clearInterval: (id) => clearInterval(id as RealTimer),
  sleep: (ms, signal) => sleepOn(realClock, ms, signal),
};
