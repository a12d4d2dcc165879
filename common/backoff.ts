/**
 * Jittered exponential back-off for retries against a shared dependency (the Kubernetes API
 * server: the leader election, the informers' watches, load publishing): replicas that lost
 * it at the same moment must not all come back at the same moment.
 */

/** Up to this fraction is added to every pause, so replicas do not move in lockstep. */
export const JITTER = 0.2;

/**
 * `baseMs` doubled for every failure after the first, at most `maxMs`, plus up to JITTER of
 * it (`random` in [0, 1)).
 */
export function backoff(failures: number, baseMs: number, maxMs: number, random: number): number {
  const pause = failures <= 1
    ? baseMs
    : Math.max(baseMs, Math.min(baseMs * 2 ** (failures - 1), maxMs));
  return pause * (1 + JITTER * random);
}
