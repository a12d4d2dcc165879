/**
 * The platform's events about a function (scaling decisions, deploy failures, rollouts,
 * status changes) as Kubernetes Events (core v1) on its Function resource, so
 * `kubectl describe fn NAME` and `kubectl get events` tell the story, not just the memory of
 * the replica that acted.
 *
 * Only the replica that acted writes: scaling decisions and errors come from whichever
 * replica made them (the leader, or a follower waking a function from zero); the rest
 * (applied, invalid, status) every replica sees, so only the leader writes those. Repeats of
 * the same reason and message within ten minutes raise the count of one Event, as
 * client-go's recorder does; each function may write a burst of 25 Events, then one per
 * ten seconds. Writing is best effort: a failure drops the event and pauses writing
 * (doubling, up to a minute) rather than retrying against an API that does not answer.
 */

import { type Clock, realClock } from "../../common/clock.ts";
import { createLogger, type Logger } from "../../common/log.ts";
import type { EventLog, PlatformEvent } from "../events.ts";
import type { KubeClient, KubeObject } from "./client.ts";
import { API_GROUP } from "../../common/function.ts";
import { FUNCTION_VERSION } from "./paths.ts";

export const EVENT_SOURCE = "f2s";

interface Mapping {
  reason: string;
  warning: boolean;
  /** Written by any replica that records it (it acted); otherwise by the leader only. */
  anyReplica?: boolean;
}

/** Platform events that become Kubernetes Events as they are. */
const FIXED: Record<string, Mapping> = {
  "scaling.error": { reason: "ScalingFailed", warning: true, anyReplica: true },
  "scaling.panic": { reason: "PanicMode", warning: false },
  "function.applied": { reason: "Applied", warning: false },
  "function.invalid": { reason: "Invalid", warning: true },
  "function.error": { reason: "DeployFailed", warning: true },
  "function.drift": { reason: "DriftRepaired", warning: false },
  "function.removed": { reason: "Removed", warning: false },
};

/** Ready=False reasons that are a normal step on the way, not a failure. */
const ON_THE_WAY = ["Starting", "Deploying", "Pending"];

/** Which platform events become Kubernetes Events, and as what. */
export function kubeEventFor(e: PlatformEvent): Mapping | undefined {
  const d = e.data ?? {};
  if (e.type === "scaling.decision") {
    return {
      reason: d.direction === "down" ? "ScaledDown" : "ScaledUp",
      warning: false,
      anyReplica: true,
    };
  }
  if (e.type === "function.status") {
    const reason = String(d.reason ?? "StatusChanged");
    return { reason, warning: d.status === "False" && !ON_THE_WAY.includes(reason) };
  }
  return FIXED[e.type];
}

export interface KubeEventsOptions {
  client: KubeClient;
  /** The Functions' namespace (Events live beside the object they are about). */
  namespace: string;
  events: EventLog;
  /** The Function resource (for its uid), undefined when unknown. */
  resource: (name: string) => KubeObject | undefined;
  identity: string;
  isLeader: () => boolean;
  clock?: Clock;
  log?: Logger;
}

export interface KubeEvents {
  stats(): { written: number; dropped: number };
  stop(): void;
}

const DEDUP_MS = 10 * 60_000;
const BURST = 25;
const REFILL_MS = 10_000;

export function startKubeEvents(options: KubeEventsOptions): KubeEvents {
  const { client, namespace, identity } = options;
  const clock = options.clock ?? realClock;
  const now = () => clock.now();
  const log = options.log ?? createLogger("kube-events", { namespace });
  const recent = new Map<string, { name: string; count: number; first: string; at: number }>();
  const buckets = new Map<string, { tokens: number; at: number }>();
  let pausedUntil = 0;
  let pauseMs = 0;
  let written = 0;
  let dropped = 0;
  let queue: Promise<void> = Promise.resolve();
  let pending = 0;

  function allowed(fn: string, t: number): boolean {
    const b = buckets.get(fn) ?? { tokens: BURST, at: t };
    b.tokens = Math.min(BURST, b.tokens + (t - b.at) / REFILL_MS);
    b.at = t;
    buckets.set(fn, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  async function write(e: PlatformEvent, m: Mapping) {
    const fn = e.function!;
    const t = now();
    const stamp = new Date(t).toISOString().replace(/\.\d+Z$/, "Z");
    const key = `${fn}\n${m.reason}\n${e.message}`;
    const seen = recent.get(key);
    const base = `/api/v1/namespaces/${encodeURIComponent(namespace)}/events`;
    if (seen && t - seen.at < DEDUP_MS) {
      seen.count++;
      seen.at = t;
      await client.request("PATCH", `${base}/${seen.name}`, {
        body: { count: seen.count, lastTimestamp: stamp },
        contentType: "application/merge-patch+json",
        timeoutMs: 5_000,
      });
      return;
    }
    const resource = options.resource(fn);
    const name = `${fn}.${t.toString(16)}${Math.floor(Math.random() * 0xfff).toString(16)}`;
    await client.request("POST", base, {
      body: {
        apiVersion: "v1",
        kind: "Event",
        metadata: { name, namespace },
        involvedObject: {
          apiVersion: `${API_GROUP}/${FUNCTION_VERSION}`,
          kind: "Function",
          name: fn,
          namespace,
          uid: resource?.metadata?.uid,
          resourceVersion: resource?.metadata?.resourceVersion,
        },
        reason: m.reason,
        // The API server refuses messages over 1 kB.
        message: e.message.length > 1000 ? `${e.message.slice(0, 997)}...` : e.message,
        type: m.warning ? "Warning" : "Normal",
        count: 1,
        firstTimestamp: stamp,
        lastTimestamp: stamp,
        source: { component: EVENT_SOURCE, host: identity },
        reportingComponent: `${API_GROUP}/${EVENT_SOURCE}`,
        reportingInstance: identity,
        action: e.type,
      },
      timeoutMs: 5_000,
    });
    recent.set(key, { name, count: 1, first: stamp, at: t });
    for (const [k, v] of recent) if (t - v.at >= DEDUP_MS) recent.delete(k);
  }

  const unsubscribe = options.events.subscribe((e) => {
    if (!e.function) return;
    const m = kubeEventFor(e);
    if (!m || (!m.anyReplica && !options.isLeader())) return;
    const t = now();
    if (t < pausedUntil || pending >= 100 || !allowed(e.function, t)) {
      dropped++;
      return;
    }
    pending++;
    queue = queue.then(() => write(e, m)).then(
      () => {
        written++;
        pauseMs = 0;
      },
      (err) => {
        dropped++;
        pauseMs = Math.min(Math.max(1_000, pauseMs * 2), 60_000);
        pausedUntil = now() + pauseMs;
        log.warn("could not write a Kubernetes Event; pausing", {
          function: e.function,
          reason: m.reason,
          pauseMs,
          error: err,
        });
      },
    ).finally(() => pending--);
  });

  return {
    stats: () => ({ written, dropped }),
    stop: unsubscribe,
  };
}
