/**
 * How a runtime that keeps its own instances (local processes, in-memory servers) moves one
 * function toward its desired count: how many to start, which to stop. Kept apart from
 * either runtime so both roll out and scale down the same way: instances of an older
 * definition serve until as many of the current one are ready; a scale-down stops the
 * ones not ready first, then the newest.
 */

import type { FunctionDef } from "../../common/function.ts";
import type { InstanceState } from "./runtime.ts";

/** What such a runtime keeps per applied function. */
export interface Desired {
  fn: FunctionDef;
  desired: number;
  /** Goes up with every changed definition; instances of older ones are replaced. */
  generation: number;
}

/**
 * Records `fn` with `replicas` (a new function gets `fresh()`); true when the definition
 * changed, so its instances are to be replaced.
 */
export function applyDesired<D extends Desired>(
  functions: Map<string, D>,
  fn: FunctionDef,
  replicas: number,
  fresh: () => D,
): boolean {
  const st = functions.get(fn.name);
  if (!st) {
    functions.set(fn.name, fresh());
    return false;
  }
  st.desired = replicas;
  if (JSON.stringify(st.fn) === JSON.stringify(fn)) return false;
  st.fn = fn;
  st.generation++;
  return true;
}

/**
 * runtime.scale for both local runtimes: sets the replica count of an applied function and
 * has `match` bring its instances to it; an unknown function is a rejection.
 */
export function scaleDesired(
  functions: Map<string, Desired>,
  name: string,
  replicas: number,
  match: (name: string) => void,
): Promise<void> {
  const st = functions.get(name);
  if (!st) return Promise.reject(new Error(`function "${name}" is not applied`));
  st.desired = Math.max(0, replicas);
  match(name);
  return Promise.resolve();
}

export interface Planned {
  id: string;
  state: InstanceState;
  /** The definition's generation the instance runs. */
  generation: number;
}

export function planInstances<I extends Planned>(
  running: I[],
  desired: number,
  generation: number,
): { start: number; stop: I[] } {
  const current = running.filter((i) => i.generation === generation);
  const old = running.filter((i) => i.generation !== generation);
  const stop: I[] = [];
  if (current.length > desired) {
    const order = [...current].sort((a, b) =>
      (a.state === "ready" ? 1 : 0) - (b.state === "ready" ? 1 : 0) || b.id.localeCompare(a.id)
    );
    stop.push(...order.slice(0, current.length - desired));
  }
  if (old.length > 0 && current.filter((i) => i.state === "ready").length >= desired) {
    stop.push(...old);
  }
  return { start: Math.max(0, desired - current.length), stop };
}
