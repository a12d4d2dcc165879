/**
 * The last schedule tick fired per function, shared by the `f2s serve` replicas: one Lease
 * (`<lease name>-schedules`) beside the leader's, one annotation per scheduled function,
 * `tick.f2s.opensight.ch/<function>`. Every write is a PUT carrying the resourceVersion it
 * was computed from, so it is a compare-and-swap: of two replicas that both believe they
 * lead (an old leader that has not yet noticed), only one moves a tick forward; the other
 * gets 409, reads the record again and sees the tick already taken. That, not the leader
 * election, is what keeps a tick from being fired twice.
 */

import type { Logger } from "../../common/log.ts";
import { type KubeClient, KubeError, type KubeObject } from "../kube/client.ts";
import { annotationKey, paths } from "../kube/paths.ts";

export const TICK_ANNOTATION_PREFIX = "tick.f2s.opensight.ch/";

/** A compare-and-swap record of the last tick per function (epoch ms). */
export interface SharedTicks {
  /** The record as last read or written; read from the API when not known. */
  current(): Promise<Map<string, number>>;
  /**
   * Moves ticks (null: drops a function's record) if nobody wrote since `current()`.
   * False when someone did: the next `current()` reads the record again.
   */
  advance(changes: Map<string, number | null>): Promise<boolean>;
  /** Forgets what was read (a new term as leader starts from the API's record). */
  invalidate(): void;
}

export interface KubeTicksOptions {
  client: KubeClient;
  namespace: string;
  /** The Lease's name. */
  name: string;
  log: Logger;
}

const REQUEST_TIMEOUT_MS = 5_000;

interface TickValue {
  function: string;
  tick: string;
}

/** Function → last tick from the Lease's annotations (unreadable values are ignored). */
export function ticksOf(lease: KubeObject | undefined): Map<string, number> {
  const out = new Map<string, number>();
  for (const [key, value] of Object.entries(lease?.metadata?.annotations ?? {})) {
    if (!key.startsWith(TICK_ANNOTATION_PREFIX)) continue;
    try {
      const v = JSON.parse(String(value)) as TickValue;
      const tick = Date.parse(v.tick);
      if (typeof v.function === "string" && Number.isFinite(tick)) out.set(v.function, tick);
    } catch {
      // Not ours or damaged: the function starts again at its next tick.
    }
  }
  return out;
}

export function createKubeTicks(o: KubeTicksOptions): SharedTicks {
  const path = paths.leases(o.namespace, o.name);
  // undefined: not read; null: read, the Lease does not exist yet.
  let lease: KubeObject | null | undefined;

  async function read(): Promise<KubeObject | null> {
    lease = await o.client.request("GET", path, { timeoutMs: REQUEST_TIMEOUT_MS }).catch((e) => {
      if (e instanceof KubeError && e.status === 404) return null;
      throw e;
    });
    return lease;
  }

  return {
    async current() {
      return ticksOf((lease === undefined ? await read() : lease) ?? undefined);
    },
    async advance(changes) {
      const base = lease === undefined ? await read() : lease;
      const annotations: Record<string, string> = { ...base?.metadata?.annotations };
      for (const [fn, tick] of changes) {
        const key = TICK_ANNOTATION_PREFIX + annotationKey(fn);
        if (tick === null) delete annotations[key];
        else {
          annotations[key] = JSON.stringify(
            { function: fn, tick: new Date(tick).toISOString() } satisfies TickValue,
          );
        }
      }
      try {
        lease = base
          // PUT with the resourceVersion read: the compare-and-swap.
          ? await o.client.request("PUT", path, {
            body: {
              apiVersion: "coordination.k8s.io/v1",
              kind: "Lease",
              metadata: { ...base.metadata, annotations, managedFields: undefined },
              spec: base.spec ?? {},
            },
            timeoutMs: REQUEST_TIMEOUT_MS,
          })
          // First schedule ever: creating is a compare-and-swap as well (409 if it exists).
          : await o.client.request("POST", paths.leases(o.namespace), {
            body: {
              apiVersion: "coordination.k8s.io/v1",
              kind: "Lease",
              metadata: { name: o.name, namespace: o.namespace, annotations },
              spec: {},
            },
            timeoutMs: REQUEST_TIMEOUT_MS,
          });
        return true;
      } catch (e) {
        lease = undefined;
        if (e instanceof KubeError && (e.status === 409 || e.status === 404)) {
          o.log.info("the schedule record changed meanwhile; reading it again", {
            lease: o.name,
            status: e.status,
          });
          return false;
        }
        // A write that timed out may still have been applied: read before the next try.
        throw e;
      }
    },
    invalidate() {
      lease = undefined;
    },
  };
}
