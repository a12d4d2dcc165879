/**
 * Leader election over a coordination.k8s.io Lease, the way client-go does it: the holder
 * renews the lease every retry period; the others watch it and take it over once it has not
 * been renewed for its duration, measured on their own clock from when they saw the last
 * renewal (clocks of different machines need not agree). A leader that cannot renew within
 * the renew deadline stops acting before anyone else may start. Stopping gives the lease up,
 * so a rolling update hands over at once instead of after the duration.
 */

import { createLogger, type Logger } from "../../common/log.ts";
import { type KubeClient, KubeError, type KubeObject } from "./client.ts";
import { createInformer } from "./informer.ts";
import { paths } from "./paths.ts";

export interface LeaderElectionOptions {
  client: KubeClient;
  namespace: string;
  /** The Lease's name. */
  name: string;
  /** This replica (pod name); unique among the replicas. */
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  onStartedLeading?: () => void;
  onStoppedLeading?: () => void;
  log?: Logger;
}

export interface LeaderElection {
  /** Starts watching the lease and competing for it (rejects when the lease cannot be read). */
  start(): Promise<void>;
  isLeader(): boolean;
  /** The holder as last seen ("" or undefined: nobody). */
  holder(): string | undefined;
  /** Stops competing; a leader releases the lease. */
  stop(): Promise<void>;
}

/** A MicroTime as the API server parses it (RFC 3339 with microseconds). */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

export function validateTimings(o: {
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}): string | undefined {
  if (o.leaseDurationMs < 1000) return "the lease duration must be at least 1s";
  if (o.renewDeadlineMs >= o.leaseDurationMs) {
    return "the renew deadline must be shorter than the lease duration";
  }
  if (o.retryPeriodMs >= o.renewDeadlineMs) {
    return "the retry period must be shorter than the renew deadline";
  }
  if (o.retryPeriodMs < 100) return "the retry period must be at least 100ms";
  return undefined;
}

export function createLeaderElection(options: LeaderElectionOptions): LeaderElection {
  const { client, namespace, name, identity } = options;
  const log = options.log ?? createLogger("leader", { lease: name, identity });
  const durationSeconds = Math.max(1, Math.ceil(options.leaseDurationMs / 1000));
  const leases = createInformer({
    client,
    path: paths.leases(namespace),
    fieldSelector: `metadata.name=${name}`,
    what: "leases",
    log,
  });
  let leading = false;
  let lastRenew = 0;
  let observed = "";
  let observedAt = 0;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running: Promise<void> | undefined;

  const lease = () => leases.get(name);
  const recordKey = (l: KubeObject | undefined) =>
    JSON.stringify([l?.spec?.holderIdentity, l?.spec?.renewTime, l?.spec?.leaseTransitions]);

  function observe() {
    const key = recordKey(lease());
    if (key !== observed) {
      observed = key;
      observedAt = Date.now();
    }
  }

  function expiresAt(): number {
    const seconds = lease()?.spec?.leaseDurationSeconds ?? durationSeconds;
    return observedAt + seconds * 1000;
  }

  function startLeading() {
    if (leading) return;
    leading = true;
    log.info("became the leader");
    try {
      options.onStartedLeading?.();
    } catch (e) {
      log.error("onStartedLeading failed", { error: e });
    }
  }

  function stopLeading(why: string) {
    if (!leading) return;
    leading = false;
    log.warn("stopped leading", { reason: why });
    try {
      options.onStoppedLeading?.();
    } catch (e) {
      log.error("onStoppedLeading failed", { error: e });
    }
  }

  /** Writes a record naming us; true when the server took it. */
  async function write(current: KubeObject | undefined): Promise<boolean> {
    const now = Date.now();
    const held = current?.spec?.holderIdentity === identity;
    const spec = {
      holderIdentity: identity,
      leaseDurationSeconds: durationSeconds,
      acquireTime: held && current?.spec?.acquireTime ? current.spec.acquireTime : microTime(now),
      renewTime: microTime(now),
      leaseTransitions: (current?.spec?.leaseTransitions ?? 0) + (held || !current ? 0 : 1),
    };
    try {
      const written = current
        ? await client.replace(paths.leases(namespace, name), {
          apiVersion: "coordination.k8s.io/v1",
          kind: "Lease",
          metadata: { ...current.metadata, managedFields: undefined },
          spec,
        })
        : await client.create(paths.leases(namespace), {
          apiVersion: "coordination.k8s.io/v1",
          kind: "Lease",
          metadata: { name, namespace },
          spec,
        });
      leases.remember(written);
      observe();
      lastRenew = now;
      return true;
    } catch (e) {
      // 409: someone else wrote it first; the watch brings their record.
      if (!(e instanceof KubeError && e.status === 409)) {
        log.warn("could not write the lease", { error: e });
      }
      return false;
    }
  }

  async function tick() {
    if (stopped) return;
    observe();
    const current = lease();
    const holder = current?.spec?.holderIdentity;
    if (leading) {
      const takenBy = holder && holder !== identity ? holder : undefined;
      if (takenBy) return stopLeading(`lease taken by ${takenBy}`);
      const renewed = await write(current);
      if (!renewed && Date.now() - lastRenew > options.renewDeadlineMs) {
        stopLeading("renew deadline passed");
      }
    } else if (!current || !holder || holder === identity || Date.now() >= expiresAt()) {
      if (await write(current)) startLeading();
    }
  }

  function schedule() {
    if (stopped) return;
    clearTimeout(timer);
    let wait = options.retryPeriodMs;
    if (!leading && lease()?.spec?.holderIdentity) {
      // Try exactly when the holder's lease runs out, not up to a retry period later.
      wait = Math.max(0, Math.min(wait, expiresAt() - Date.now() + 1));
    }
    timer = setTimeout(run, wait);
  }

  function run() {
    if (running || stopped) return;
    running = tick().catch((e) => log.error("leader election round failed", { error: e }))
      .finally(() => {
        running = undefined;
        schedule();
      });
  }

  leases.onChange(() => {
    observe();
    if (!leading && !stopped) {
      // Released (no holder): compete now; otherwise wait for this record to expire.
      if (!lease()?.spec?.holderIdentity) run();
      else if (!running) schedule();
    }
  });

  return {
    async start() {
      await leases.start();
      observe();
      run();
    },
    isLeader: () => leading && Date.now() - lastRenew < options.renewDeadlineMs,
    holder: () => lease()?.spec?.holderIdentity,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
      const current = lease();
      if (leading && current?.spec?.holderIdentity === identity) {
        const now = microTime(Date.now());
        try {
          await client.replace(paths.leases(namespace, name), {
            apiVersion: "coordination.k8s.io/v1",
            kind: "Lease",
            metadata: { ...current.metadata, managedFields: undefined },
            spec: {
              holderIdentity: "",
              leaseDurationSeconds: 1,
              acquireTime: now,
              renewTime: now,
              leaseTransitions: current.spec.leaseTransitions ?? 0,
            },
          });
          log.info("released the lease");
        } catch (e) {
          log.warn("could not release the lease; it expires by itself", { error: e });
        }
      }
      stopLeading("stopping");
      await leases.stop();
    },
  };
}
