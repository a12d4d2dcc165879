/**
 * How the `f2s serve` replicas learn each other's load (see autoscaler/peers.ts for why):
 * each replica writes its report as one annotation, `load.f2s.opensight.ch/<replica>`, on a
 * shared Lease (`<lease name>-load`) beside the leader's, and every replica watches that
 * Lease. Through the API server, because that is the one thing every replica reaches: no
 * pod-to-pod traffic, no DNS or Service routing, and RBAC can name the one object.
 *
 * A report is written when a function gets its first request in flight (at once, so the
 * leader learns of new load within one round trip), every `publishMs` while anything is in
 * flight or changed, and as a heartbeat otherwise. Merge patches touch only the writer's own
 * annotation, so replicas never conflict. Failed writes back off (jittered, exponential).
 * The leader removes the annotations of replicas that stopped reporting; a replica that
 * stops removes its own.
 */

import { type Clock, realClock, type TimerId } from "../../common/clock.ts";
import { createLogger, type Logger } from "../../common/log.ts";
import type { ConcurrencyTracker } from "./concurrency.ts";
import { loadReport, parseLoadReport, type PeerLoads } from "./peers.ts";
import { type KubeClient, KubeError } from "../kube/client.ts";
import { backoff } from "../../common/backoff.ts";
import { leaseInformer } from "../kube/leader.ts";
import { annotationKey, paths } from "../kube/paths.ts";

export const LOAD_ANNOTATION_PREFIX = "load.f2s.opensight.ch/";

export interface LoadExchangeOptions {
  client: KubeClient;
  namespace: string;
  /** The shared Lease's name. */
  name: string;
  identity: string;
  tracker: ConcurrencyTracker;
  peers: PeerLoads;
  isLeader: () => boolean;
  /** A report ages out after this long (ms); a heartbeat is written every third of it. */
  staleMs: number;
  /** Reports while busy at most this often (ms); default 1000. */
  publishMs?: number;
  /** Must be the clock of `tracker` (default: the real one). */
  clock?: Clock;
  log?: Logger;
}

export interface LoadExchange {
  start(): Promise<void>;
  /** Reports written and failed (for tests and logs). */
  stats(): { written: number; failed: number };
  stop(): Promise<void>;
}

export function startLoadExchange(options: LoadExchangeOptions): LoadExchange {
  const { client, namespace, name, tracker, peers } = options;
  const log = options.log ?? createLogger("load", { lease: name });
  const clock = options.clock ?? realClock;
  const publishMs = options.publishMs ?? 1000;
  const heartbeatMs = options.staleMs / 3;
  const own = LOAD_ANNOTATION_PREFIX + annotationKey(options.identity);
  const lease = leaseInformer(client, namespace, name, log);
  let seq = 0;
  let lastPublishAt = 0;
  let retryAt = 0;
  let failures = 0;
  let written = 0;
  let failed = 0;
  let lastGcAt = 0;
  let published: Record<string, [number, number, number | null]> = {};
  let inFlightWrite: Promise<void> | undefined;
  let timer: TimerId;

  /** Everyone else's reports into `peers`; replicas whose annotation is gone are dropped. */
  function ingest() {
    const now = clock.now();
    const annotations: Record<string, string> = lease.get(name)?.metadata?.annotations ?? {};
    const present = new Set<string>();
    for (const [key, value] of Object.entries(annotations)) {
      if (!key.startsWith(LOAD_ANNOTATION_PREFIX) || key === own) continue;
      const peer = key.slice(LOAD_ANNOTATION_PREFIX.length);
      present.add(peer);
      const report = parseLoadReport(value);
      if (report) peers.record(peer, report, now);
    }
    for (const peer of peers.lastSeen().keys()) if (!present.has(peer)) peers.forget(peer);
  }

  function due(now: number, fns: typeof published): boolean {
    if (now - lastPublishAt >= heartbeatMs) return true;
    let changed = false;
    for (const [fn, [inflight, total]] of Object.entries(fns)) {
      // New load: tell the leader now, before it decides a function is idle.
      if (inflight > 0 && !((published[fn]?.[0] ?? 0) > 0)) return true;
      if (inflight > 0 || published[fn]?.[1] !== total) changed = true;
    }
    if (Object.keys(published).some((fn) => !(fn in fns))) changed = true;
    return changed && now - lastPublishAt >= publishMs;
  }

  async function patch(annotations: Record<string, string | null>) {
    const path = paths.leases(namespace, name);
    try {
      lease.remember(
        await client.request("PATCH", path, {
          body: { metadata: { annotations } },
          contentType: "application/merge-patch+json",
          timeoutMs: 5_000,
        }),
      );
    } catch (e) {
      if (!(e instanceof KubeError && e.status === 404)) throw e;
      // First report ever: create the shared Lease (a 409 means another replica just did).
      lease.remember(
        await client.request("POST", paths.leases(namespace), {
          body: {
            apiVersion: "coordination.k8s.io/v1",
            kind: "Lease",
            metadata: { name, namespace, annotations },
            spec: {},
          },
          timeoutMs: 5_000,
        }),
      );
    }
  }

  async function publish(now: number) {
    const report = loadReport(tracker, ++seq, now);
    try {
      await patch({ [own]: JSON.stringify(report) });
      published = report.fns;
      lastPublishAt = now;
      failures = 0;
      written++;
    } catch (e) {
      failures++;
      failed++;
      retryAt = now + backoff(failures, publishMs, heartbeatMs, Math.random());
      log.warn("could not publish this replica's load", {
        failures,
        retryInMs: Math.round(retryAt - now),
        error: e,
      });
    }
  }

  /** The leader removes reports that stopped coming (their replica is gone). */
  async function collectGarbage(now: number) {
    if (!options.isLeader() || now - lastGcAt < heartbeatMs) return;
    lastGcAt = now;
    const gone: Record<string, null> = {};
    for (const [peer, seen] of peers.lastSeen()) {
      if (now - seen > 2 * options.staleMs) gone[LOAD_ANNOTATION_PREFIX + peer] = null;
    }
    if (Object.keys(gone).length === 0) return;
    try {
      await patch(gone);
      log.info("removed the load reports of replicas that stopped", {
        replicas: Object.keys(gone),
      });
    } catch (e) {
      log.warn("could not remove stale load reports", { error: e });
    }
  }

  function step() {
    if (inFlightWrite) return;
    const now = clock.now();
    if (now < retryAt) return;
    const fns = loadReport(tracker, seq, now).fns;
    inFlightWrite = (async () => {
      if (due(now, fns)) await publish(now);
      await collectGarbage(now);
    })().finally(() => inFlightWrite = undefined);
  }

  lease.onChange(ingest);

  return {
    async start() {
      await lease.start();
      ingest();
      step();
      timer = clock.setInterval(step, Math.min(100, publishMs));
    },
    stats: () => ({ written, failed }),
    async stop() {
      clock.clearInterval(timer);
      await inFlightWrite;
      if (written > 0) {
        await patch({ [own]: null }).catch((e) =>
          log.warn("could not remove this replica's load report", { error: e })
        );
      }
      await lease.stop();
    },
  };
}
