/**
 * Polling with a deadline, for everything the tests wait on: a process to answer, a pod to
 * turn ready, a broker to elect leaders. A check that throws is retried; its last error
 * is part of the timeout's message.
 */

async function poll<T>(
  what: string,
  check: () => T | Promise<T>,
  done: (value: T) => boolean,
  timeoutMs: number,
  intervalMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (done(value)) return value;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  const why = last === undefined ? "" : `: ${(last as Error)?.message ?? last}`;
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
}

/** Polls `check` until it returns something truthy, and returns that. */
export function waitFor<T>(
  what: string,
  check: () => T | Promise<T>,
  timeoutMs = 15_000,
  intervalMs = 50,
): Promise<NonNullable<T>> {
  return poll(what, check, (v) => Boolean(v), timeoutMs, intervalMs) as Promise<NonNullable<T>>;
}

/** Polls `check` until it returns a value other than undefined, and returns that. */
export function eventually<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 60_000,
  intervalMs = 100,
): Promise<T> {
  return poll(what, check, (v) => v !== undefined, timeoutMs, intervalMs) as Promise<T>;
}
