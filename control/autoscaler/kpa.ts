/**
 * The scaling decision for one function, as a pure function of what was measured: Knative's
 * KPA scheme.
 *
 * - Stable mode: desired = ceil(average concurrency over the stable window / target per
 *   instance), bounded by min/max replicas.
 * - Panic mode starts when the panic window's demand reaches `panicThreshold` times the
 *   ready capacity: desired follows the larger of the two windows at once and never goes
 *   down; it ends once the demand has stayed below the threshold for a whole stable window.
 * - Scale to zero only with minReplicas 0, after `idleTimeout` without any request in flight;
 *   until then at least one instance stays.
 *
 * Scaling down has a small dead band (`scaleDownTolerance`): the smaller count must fit the
 * load with that fraction to spare, so a steady load sitting on a multiple of the target
 * does not flip between two counts on measurement noise.
 */

export interface KpaParams {
  /** Concurrent requests one instance should serve. */
  targetConcurrency: number;
  /** Panic when panic-window demand ≥ this multiple of ready capacity (Knative: 2). */
  panicThreshold: number;
  stableWindow: number;
  idleTimeout: number;
  minReplicas: number;
  maxReplicas: number;
  /** Fraction of one instance's target kept free before scaling down (default 0.1). */
  scaleDownTolerance?: number;
}

export interface PanicState {
  /** When demand was last over the threshold (ms). */
  since: number;
  /** Highest desired count seen during this panic: the floor until it ends. */
  peak: number;
}

export interface KpaInput {
  now: number;
  /** Average concurrency over the stable window. */
  stable: number;
  /** Average concurrency over the panic window. */
  panic: number;
  ready: number;
  /** Instances currently desired (what the runtime was last asked for). */
  current: number;
  /** Now while requests are in flight, else when the last one finished; undefined if never. */
  lastActivity: number | undefined;
  /** When the autoscaler first saw the function: idle time of running instances counts from
   * here at the latest. */
  seenSince: number;
  panicState: PanicState | undefined;
  params: KpaParams;
}

/**
 * Why the count is what it is:
 * - stable / panic: follows that window's demand;
 * - panic-hold: panic mode keeps the panic's peak (no scale-down until it ends);
 * - tolerance: demand fell a little but not enough to free an instance;
 * - idle: no request for the idle timeout, so to zero;
 * - keep-one: minReplicas 0 but requests came within the idle timeout;
 * - min / max: the bounds cut the demand.
 */
export type KpaReason =
  | "stable"
  | "panic"
  | "panic-hold"
  | "tolerance"
  | "idle"
  | "keep-one"
  | "min"
  | "max";

export interface KpaDecision {
  desired: number;
  panicState: PanicState | undefined;
  reason: KpaReason;
  /** Demand in instances before bounds: stable and panic window. */
  wantStable: number;
  wantPanic: number;
  /** Milliseconds since the last activity (or since first seen). */
  idleFor: number;
}

export const DEFAULT_SCALE_DOWN_TOLERANCE = 0.1;

export function decide(input: KpaInput): KpaDecision {
  const p = input.params;
  const target = p.targetConcurrency > 0 ? p.targetConcurrency : 1;
  const min = Math.max(0, Math.floor(p.minReplicas));
  const max = Math.max(min, Math.floor(p.maxReplicas));
  const stable = nonNegative(input.stable);
  const panic = nonNegative(input.panic);
  const wantStable = instancesFor(stable, target);
  const wantPanic = instancesFor(panic, target);
  // Running instances count as seen from when the autoscaler first saw them, so an unused
  // function still idles to zero; at zero only a request brings it back.
  const lastSeen = input.current > 0
    ? Math.max(input.lastActivity ?? -Infinity, input.seenSince)
    : input.lastActivity ?? -Infinity;
  const idleFor = Math.max(0, input.now - lastSeen);
  const base = { wantStable, wantPanic, idleFor };

  // Knative counts a function with nothing ready as one instance, so the first requests
  // after a cold start do not put it in panic on their own.
  const capacity = Math.max(1, input.ready) * target;
  const overThreshold = panic / capacity >= p.panicThreshold;
  let panicState = input.panicState;
  if (overThreshold) {
    panicState = { since: input.now, peak: panicState?.peak ?? 0 };
  } else if (panicState && input.now - panicState.since >= p.stableWindow) {
    panicState = undefined;
  }

  if (min === 0 && idleFor >= p.idleTimeout && !overThreshold) {
    return { ...base, desired: 0, panicState: undefined, reason: "idle" };
  }

  let desired: number;
  let reason: KpaReason;
  if (panicState) {
    desired = Math.max(wantStable, wantPanic);
    reason = "panic";
    // No scale-down while panicking: the floor is what runs now and the panic's peak.
    const floor = Math.max(panicState.peak, input.current);
    if (desired < floor) {
      desired = floor;
      reason = "panic-hold";
    }
    panicState = { ...panicState, peak: Math.max(panicState.peak, desired) };
  } else {
    desired = wantStable;
    reason = "stable";
    if (desired > 0 && desired < input.current) {
      const tolerance = p.scaleDownTolerance ?? DEFAULT_SCALE_DOWN_TOLERANCE;
      // The smaller count must carry the load with `tolerance` of one instance to spare.
      const withSpare = instancesFor(stable + tolerance * target, target);
      if (withSpare > desired) {
        desired = Math.min(withSpare, input.current);
        reason = "tolerance";
      }
    }
  }

  if (desired < 1 && min === 0) {
    desired = 1;
    reason = "keep-one";
  }
  if (desired < min) {
    desired = min;
    reason = "min";
  } else if (desired > max) {
    desired = max;
    reason = "max";
  }
  if (panicState) panicState = { ...panicState, peak: Math.min(panicState.peak, max) };
  return { ...base, desired, panicState, reason };
}

/** Instances needed for `concurrency`, ignoring float noise just above a whole number. */
function instancesFor(concurrency: number, target: number): number {
  return Math.max(0, Math.ceil(concurrency / target - 1e-9));
}

function nonNegative(v: number): number {
  return Number.isFinite(v) && v > 0 ? v : 0;
}
