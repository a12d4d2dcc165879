/**
 * The routing table: which functions exist under which endpoint, and which of their
 * instances are ready right now. It changes only through events (a function applied or
 * removed, an instance ready, draining or gone) and answers lookups on the hot path in
 * O(number of ready instances of one function).
 */

import type { FunctionDef } from "../common/function.ts";
import type { Instance } from "../control/runtime/runtime.ts";

/** A ready instance and the requests the dispatcher has outstanding on it. */
export interface Slot {
  instance: Instance;
  inflight: number;
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
}

export function createRoutingTable(): RoutingTable {
  const byEndpoint = new Map<string, FunctionDef>();
  const byName = new Map<string, FunctionDef>();
  const slots = new Map<string, Slot[]>();
  let rr = 0;

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
  };
}
