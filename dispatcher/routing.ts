/**
 * The routing table: which functions exist under which endpoint, and which of their
 * instances are ready right now. It changes only through events (a function applied or
 * removed, an instance ready, draining or gone, an instance that just failed suspended by
 * the dispatcher) and answers lookups on the hot path in O(number of ready instances of
 * one function).
 */

import type { FunctionDef } from "../common/function.ts";
import type { Counted } from "../common/limiter.ts";
import type { Instance } from "./needs.ts";

/**
 * A ready instance and the requests the dispatcher has outstanding on it (`inflight`,
 * changed only by the function's limiter, common/limiter.ts).
 */
export interface Slot extends Counted {
  instance: Instance;
}

export interface RoutingTable {
  setFunction(fn: FunctionDef): void;
  removeFunction(name: string): void;
  /** The function whose endpoint is the longest prefix of `path`, and the rest of the path. */
  match(path: string): { fn: FunctionDef; suffix: string } | undefined;
  byName(name: string): FunctionDef | undefined;
  functions(): FunctionDef[];
  /** Applies an instance event; returns true when the function gained a ready slot. */
  updateInstance(instance: Instance): boolean;
  /** The ready slot with the fewest outstanding requests under `limit` (0 = no limit). */
  pick(name: string, limit: number, exclude?: Set<string>): Slot | undefined;
  ready(name: string): Slot[];
  /**
   * Takes a ready instance out of the table at once (it just failed), keeping its slot so
   * requests still on it count down; false when it was not ready (or already suspended).
   */
  suspend(name: string, id: string): boolean;
  /** Puts a suspended instance back; true when it was suspended. */
  reinstate(name: string, id: string): boolean;
  isSuspended(name: string, id: string): boolean;
  /** How many instances of the function are suspended. */
  suspended(name: string): number;
}

export function createRoutingTable(): RoutingTable {
  const byEndpoint = new Map<string, FunctionDef>();
  const byName = new Map<string, FunctionDef>();
  const slots = new Map<string, Slot[]>();
  /** Per function: the slots of suspended instances, by instance id. */
  const aside = new Map<string, Map<string, Slot>>();
  let rr = 0;

  const reinstate = (name: string, id: string): boolean => {
    const slot = aside.get(name)?.get(id);
    if (!slot) return false;
    aside.get(name)!.delete(id);
    const list = slots.get(name) ?? [];
    list.push(slot);
    slots.set(name, list);
    return true;
  };

  return {
    setFunction(fn) {
      const previous = byName.get(fn.name);
      if (previous && previous.endpoint !== fn.endpoint) byEndpoint.delete(previous.endpoint);
      byName.set(fn.name, fn);
      byEndpoint.set(fn.endpoint, fn);
    },
    removeFunction(name) {
      const fn = byName.get(name);
      if (!fn) return;
      byName.delete(name);
      if (byEndpoint.get(fn.endpoint)?.name === name) byEndpoint.delete(fn.endpoint);
      slots.delete(name);
      aside.delete(name);
    },
    match(path) {
      // Try "/a/b/c", then "/a/b", then "/a": endpoints may have several segments.
      let candidate = path.length > 1 ? path.replace(/\/+$/, "") : path;
      while (candidate.length > 0) {
        const fn = byEndpoint.get(candidate);
        if (fn) return { fn, suffix: path.slice(candidate.length) };
        const cut = candidate.lastIndexOf("/");
        if (cut <= 0) break;
        candidate = candidate.slice(0, cut);
      }
      return undefined;
    },
    byName: (name) => byName.get(name),
    functions: () => [...byName.values()],
    updateInstance(instance) {
      const held = aside.get(instance.function)?.get(instance.id);
      if (held) {
        // The runtime's word ends a suspension: ready again rejoins, anything else leaves.
        held.instance = instance;
        if (instance.state === "ready") return reinstate(instance.function, instance.id);
        aside.get(instance.function)!.delete(instance.id);
        return false;
      }
      const list = slots.get(instance.function) ?? [];
      const index = list.findIndex((s) => s.instance.id === instance.id);
      if (instance.state === "ready") {
        if (index >= 0) {
          list[index].instance = instance;
          return false;
        }
        list.push({ instance, inflight: 0 });
        slots.set(instance.function, list);
        return true;
      }
      // starting, draining and gone instances get no new requests.
      if (index >= 0) list.splice(index, 1);
      return false;
    },
    pick(name, limit, exclude) {
      const list = slots.get(name);
      if (!list || list.length === 0) return undefined;
      let best: Slot | undefined;
      // Start at a rotating offset so equal loads spread instead of piling on the first.
      const n = list.length;
      const start = rr++ % n;
      for (let i = 0; i < n; i++) {
        const slot = list[(start + i) % n];
        if (limit > 0 && slot.inflight >= limit) continue;
        if (exclude?.has(slot.instance.id)) continue;
        if (!best || slot.inflight < best.inflight) best = slot;
      }
      return best;
    },
    ready: (name) => slots.get(name) ?? [],
    suspend(name, id) {
      const list = slots.get(name);
      const index = list?.findIndex((s) => s.instance.id === id) ?? -1;
      if (!list || index < 0) return false;
      const [slot] = list.splice(index, 1);
      let set = aside.get(name);
      if (!set) aside.set(name, set = new Map());
      set.set(id, slot);
      return true;
    },
    reinstate,
    isSuspended: (name, id) => aside.get(name)?.has(id) ?? false,
    suspended: (name) => aside.get(name)?.size ?? 0,
  };
}
