/**
 * Bounds how many requests run at once, with a bounded queue of waiters behind the limit.
 * Callers try `tryEnter()` first (no allocation on the fast path) and only wait when it
 * says no; every successful enter or wait is paired with exactly one `leave()`.
 */

export interface Limiter {
  readonly max: number;
  readonly active: number;
  readonly queued: number;
  /** Takes a slot if one is free right now. */
  tryEnter(): boolean;
  /**
   * Waits for a slot; undefined when the queue is full. The promise rejects with the
   * signal's reason if it aborts first (the waiter then holds no slot).
   */
  wait(signal: AbortSignal): Promise<void> | undefined;
  /** Gives the slot back, handing it straight to the longest waiter if there is one. */
  leave(): void;
}

interface Waiter {
  resolve: () => void;
}

export function createLimiter(max: number, queueMax: number): Limiter {
  let active = 0;
  const waiters: Waiter[] = [];
  return {
    max,
    get active() {
      return active;
    },
    get queued() {
      return waiters.length;
    },
    tryEnter() {
      if (active >= max) return false;
      active++;
      return true;
    },
    wait(signal) {
      if (waiters.length >= queueMax) return undefined;
      return new Promise<void>((resolve, reject) => {
        if (signal.aborted) return reject(signal.reason);
        const onAbort = () => {
          const i = waiters.indexOf(waiter);
          if (i >= 0) waiters.splice(i, 1);
          reject(signal.reason);
        };
        const waiter: Waiter = {
          resolve: () => {
            signal.removeEventListener("abort", onAbort);
            resolve();
          },
        };
        signal.addEventListener("abort", onAbort, { once: true });
        waiters.push(waiter);
      });
    },
    leave() {
      const next = waiters.shift();
      // The slot passes to the waiter as is, so `active` stays the same.
      if (next) next.resolve();
      else active--;
    },
  };
}
