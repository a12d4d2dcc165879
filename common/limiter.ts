/**
 * Bounds how many requests run at once, with a line of waiters behind the bound: the one
 * concurrency limiter of F2S. The dispatcher has one per function, over its instances
 * (each instance's slot takes at most container_concurrency requests); the fizzlet one per
 * mode, over a single slot of --max-inflight. Only this module changes `inflight`, so a
 * slot is counted once when taken and once when given back, whichever way a request ends.
 *
 * The fast path (`tryAcquire`) allocates nothing; only waiting does. Waiters are served
 * first come first served, whenever a slot is given back or `serve` says capacity appeared.
 */

import { type Deadline, type Deadlines, deadlines as sharedDeadlines } from "./deadlines.ts";

/** What a limiter hands out: the requests it holds right now. */
export interface Counted {
  inflight: number;
}

/** Why a wait ended without a slot: its time, its signal, or a reason given to `endWaits`. */
export type NoSlot<E> = "timeout" | "aborted" | { ended: E };

export interface Limiter<S extends Counted, A = undefined, E = never> {
  /** Requests waiting in line. */
  readonly queued: number;
  /** A slot with room right now, counted as taken; undefined when there is none. */
  tryAcquire(arg?: A): S | undefined;
  /**
   * Waits in line for a slot (counted as taken when handed over), or says why not:
   * "timeout" after `timeoutMs` (none: the signal is the only limit), "aborted" when the
   * signal aborts first. "full" at once, without waiting, when the line is at its bound.
   */
  acquire(signal: AbortSignal, timeoutMs?: number): Promise<S | NoSlot<E>> | "full";
  /** Gives a slot back, and hands the room to the longest waiter if there is one. */
  release(slot: S): void;
  /** Capacity appeared other than by `release` (a new instance): serves the line. */
  serve(): void;
  /** Ends every wait with `{ ended: reason }` (the function was removed, could not start). */
  endWaits(reason: E): void;
}

export interface LimiterOptions {
  /** Waiters allowed in line at once (default: no bound). */
  queueMax?: number;
  /** Timer for waits with a timeout (default: the process's shared one). */
  deadlines?: Deadlines;
}

interface Waiter<S, E> {
  settle(outcome: S | NoSlot<E>): void;
}

/**
 * A limiter over the slots `pick` chooses from: `pick(arg)` returns a slot with room (its
 * own rule: least loaded, under a limit, not excluded by `arg`) or undefined. Waiters are
 * served with `pick()` and no argument.
 */
export function createLimiter<S extends Counted, A = undefined, E = never>(
  pick: (arg?: A) => S | undefined,
  options: LimiterOptions = {},
): Limiter<S, A, E> {
  const queueMax = options.queueMax ?? Infinity;
  const timers = options.deadlines ?? sharedDeadlines;
  const line: Waiter<S, E>[] = [];

  function serve() {
    while (line.length > 0) {
      const slot = pick();
      if (!slot) return;
      // Counted now: the waiter resumes later, and the next pick must see the slot taken.
      slot.inflight++;
      line[0].settle(slot);
    }
  }

  return {
    get queued() {
      return line.length;
    },
    tryAcquire(arg) {
      const slot = pick(arg);
      if (slot) slot.inflight++;
      return slot;
    },
    acquire(signal, timeoutMs) {
      if (line.length >= queueMax) return "full";
      if (signal.aborted) return Promise.resolve("aborted");
      return new Promise((resolve) => {
        let timer: Deadline | undefined;
        const waiter: Waiter<S, E> = {
          settle(outcome) {
            const i = line.indexOf(waiter);
            if (i < 0) return; // settled already
            line.splice(i, 1);
            timer?.cancel();
            signal.removeEventListener("abort", onAbort);
            resolve(outcome);
          },
        };
        const onAbort = () => waiter.settle("aborted");
        if (timeoutMs !== undefined) {
          timer = timers.after(Math.max(0, timeoutMs), () => waiter.settle("timeout"));
        }
        signal.addEventListener("abort", onAbort, { once: true });
        line.push(waiter);
      });
    },
    release(slot) {
      slot.inflight--;
      if (line.length > 0) serve();
    },
    serve,
    endWaits(reason) {
      const ended = { ended: reason };
      for (const waiter of [...line]) waiter.settle(ended);
    },
  };
}

/** A limiter of one slot: at most `max` at once, `queueMax` waiting (the fizzlet's). */
export type CountLimiter = Limiter<Counted> & { readonly max: number };

export function createCountLimiter(max: number, queueMax: number): CountLimiter {
  const slot: Counted = { inflight: 0 };
  const limiter = createLimiter(() => (slot.inflight < max ? slot : undefined), { queueMax });
  return Object.assign(limiter, { max });
}
