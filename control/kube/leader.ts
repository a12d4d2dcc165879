/**
 * Leader election over a coordination.k8s.io Lease, the way client-go does it: the holder
 * renews the lease every retry period; the others watch it and take it over once it has not
 * been renewed for its duration, measured on their own clock from when they saw the last
 * renewal (clocks of different machines need not agree). A leader that cannot renew within
 * the renew deadline stops acting before anyone else may start. Stopping gives the lease up,
 * so a rolling update hands over at once instead of after the duration.
 *
 * Every request to the API is paced by `planNext` (pure, unit-tested with any clock): never
 * two writes less than a retry period apart, and after failures a jittered exponential
 * back-off, so an unreachable API or a revoked token costs a handful of requests, not a spin.
 * The time of the last answer from the API (`lastContact`) tells readiness.
 */

import { backoff, JITTER } from "../../common/backoff.ts";
import { type Clock, realClock, type TimerId } from "../../common/clock.ts";
import { createLogger, type Logger } from "../../common/log.ts";
import { type KubeClient, KubeError, type KubeObject } from "./client.ts";
import { createInformer, type Informer } from "./informer.ts";
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
  /** Longest pause between attempts after failures (default: half the lease duration). */
  maxBackoffMs?: number;
  onStartedLeading?: () => void;
  onStoppedLeading?: () => void;
  log?: Logger;
  /** Its `now()` is wall-clock: renew times are compared across replicas (default: real). */
  clock?: Clock;
  /** The jitter between retries (default Math.random). */
  random?: () => number;
}

export interface LeaderElection {
  /** Starts watching the lease and competing for it (rejects when the lease cannot be read). */
  start(): Promise<void>;
  isLeader(): boolean;
  /** The holder as last seen ("" or undefined: nobody). */
  holder(): string | undefined;
  /** When this replica last got an answer from the API server (0: never). */
  lastContact(): number;
  /** Whether the API answered within the renew deadline (readiness). */
  apiReachable(): boolean;
  /** Requests sent for the lease (writes and reads) and how many of them failed. */
  attempts(): { sent: number; failed: number };
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

export interface ElectionTimings {
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  /** Default: half the lease duration. */
  maxBackoffMs?: number;
}

/** What the election knows when it plans its next request. */
export interface ElectionState {
  leading: boolean;
  /** Failed requests in a row (a 409 is an answer, not a failure). */
  failures: number;
  /** When the last request was sent (undefined: never). */
  lastAttemptAt?: number;
  /** When the API last answered. */
  lastContact: number;
  /** Someone else holds the lease: when it runs out as this replica measures it. */
  heldUntil?: number;
}

/** The pause a request must keep from the previous one: a retry period, more after failures. */
export function pauseAfter(failures: number, t: ElectionTimings, random: number): number {
  return backoff(failures, t.retryPeriodMs, t.maxBackoffMs ?? t.leaseDurationMs / 2, random);
}

/**
 * When to look again (absolute time) and what to do then: write the lease (renew, or
 * acquire one that is free, ours or expired) or read it (a follower that heard nothing from
 * the API for half the renew deadline checks it can still reach it). A leader
 * that keeps failing still retries every retry period (it has a deadline to meet); anyone
 * else backs off exponentially.
 */
export function planNext(
  s: ElectionState,
  now: number,
  t: ElectionTimings,
  random: number,
): { at: number; action: "write" | "read" } {
  const pause = pauseAfter(s.leading ? Math.min(s.failures, 1) : s.failures, t, random);
  const earliest = s.lastAttemptAt === undefined ? now : Math.max(now, s.lastAttemptAt + pause);
  if (s.leading || s.heldUntil === undefined) return { at: earliest, action: "write" };
  if (s.heldUntil <= earliest) return { at: earliest, action: "write" };
  // No read just before the lease runs out: it would delay the write that takes it over.
  const probeAt = Math.max(earliest, s.lastContact + t.renewDeadlineMs / 2);
  if (probeAt + t.retryPeriodMs * (1 + JITTER) <= s.heldUntil) {
    return { at: probeAt, action: "read" };
  }
  return { at: s.heldUntil, action: "write" };
}

/** Watches the one Lease `name` (RBAC may allow no other). */
export function leaseInformer(
  client: KubeClient,
  namespace: string,
  name: string,
  log: Logger,
): Informer {
  return createInformer({
    client,
    path: paths.leases(namespace),
    fieldSelector: `metadata.name=${name}`,
    what: "leases",
    log,
  });
}

export function createLeaderElection(options: LeaderElectionOptions): LeaderElection {
  const { client, namespace, name, identity } = options;
  const clock = options.clock ?? realClock;
  const random = options.random ?? Math.random;
  const log = options.log ?? createLogger("leader", { lease: name, identity });
  const durationSeconds = Math.max(1, Math.ceil(options.leaseDurationMs / 1000));
  // A request that hangs must not outlive the time the leader has to renew.
  const requestTimeoutMs = Math.max(1000, options.renewDeadlineMs / 2);
  const leases = leaseInformer(client, namespace, name, log);
  let leading = false;
  let lastRenew = 0;
  let observed = "";
  let observedAt = 0;
  let failures = 0;
  let lastAttemptAt: number | undefined;
  let lastContact = 0;
  let sent = 0;
  let failed = 0;
  let stopped = false;
  let timer: TimerId;
  let deadlineTimer: TimerId;
  let running: Promise<void> | undefined;

  const lease = () => leases.get(name);
  const recordKey = (l: KubeObject | undefined) =>
    JSON.stringify([l?.spec?.holderIdentity, l?.spec?.renewTime, l?.spec?.leaseTransitions]);

  function observe() {
    const key = recordKey(lease());
    if (key !== observed) {
      observed = key;
      observedAt = clock.now();
    }
  }

  /** When someone else's lease runs out; undefined when it is free or ours. */
  function heldUntil(): number | undefined {
    const l = lease();
    const holder = l?.spec?.holderIdentity;
    if (!holder || holder === identity) return undefined;
    const seconds = l?.spec?.leaseDurationSeconds ?? durationSeconds;
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
    clock.clearTimeout(deadlineTimer);
    if (!leading) return;
    leading = false;
    log.warn("stopped leading", { reason: why });
    try {
      options.onStoppedLeading?.();
    } catch (e) {
      log.error("onStoppedLeading failed", { error: e });
    }
  }

  /** The leader stops acting at the renew deadline even while a request still hangs. */
  function armDeadline() {
    clock.clearTimeout(deadlineTimer);
    deadlineTimer = clock.setTimeout(() => {
      if (leading && clock.now() - lastRenew >= options.renewDeadlineMs) {
        stopLeading("renew deadline passed");
      }
    }, options.renewDeadlineMs + 1);
  }

  function failedAttempt(op: string, e: unknown) {
    failures++;
    failed++;
    const retryInMs = Math.round(
      planNext(state(), clock.now(), options, random()).at - clock.now(),
    );
    log.warn("lease attempt failed", { op, failures, retryInMs, error: e });
  }

  /** Writes a record naming us; true when the server took it. */
  async function write(current: KubeObject | undefined): Promise<boolean> {
    const now = clock.now();
    lastAttemptAt = now;
    sent++;
    const held = current?.spec?.holderIdentity === identity;
    const spec = {
      holderIdentity: identity,
      leaseDurationSeconds: durationSeconds,
      acquireTime: held && current?.spec?.acquireTime ? current.spec.acquireTime : microTime(now),
      renewTime: microTime(now),
      leaseTransitions: (current?.spec?.leaseTransitions ?? 0) + (held || !current ? 0 : 1),
    };
    const body = {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: current ? { ...current.metadata, managedFields: undefined } : { name, namespace },
      spec,
    };
    try {
      const written = current
        ? await client.request("PUT", paths.leases(namespace, name), {
          body,
          timeoutMs: requestTimeoutMs,
        })
        : await client.request("POST", paths.leases(namespace), {
          body,
          timeoutMs: requestTimeoutMs,
        });
      leases.remember(written);
      observe();
      lastRenew = now;
      lastContact = clock.now();
      failures = 0;
      return true;
    } catch (e) {
      // 409: someone else wrote it first (an answer: the API is there); the watch brings
      // their record.
      if (e instanceof KubeError && e.status === 409) {
        lastContact = clock.now();
        failures = 0;
      } else {
        failedAttempt(current ? "renew" : "create", e);
      }
      return false;
    }
  }

  /** Reads the lease: proof the API is reachable when the watch has been quiet. */
  async function read() {
    lastAttemptAt = clock.now();
    sent++;
    try {
      const found = await client.request("GET", paths.leases(namespace, name), {
        timeoutMs: requestTimeoutMs,
      });
      leases.remember(found);
      observe();
      lastContact = clock.now();
      failures = 0;
    } catch (e) {
      if (e instanceof KubeError && e.status === 404) {
        lastContact = clock.now();
        failures = 0;
        leases.forget(name);
      } else {
        failedAttempt("read", e);
      }
    }
  }

  function state(): ElectionState {
    return { leading, failures, lastAttemptAt, lastContact, heldUntil: heldUntil() };
  }

  async function tick() {
    if (stopped) return;
    observe();
    const current = lease();
    const holder = current?.spec?.holderIdentity;
    if (leading && holder && holder !== identity) return stopLeading(`lease taken by ${holder}`);
    const plan = planNext(state(), clock.now(), options, random());
    if (plan.at > clock.now()) return;
    if (plan.action === "read") return await read();
    if (leading) {
      if (await write(current)) armDeadline();
      else if (clock.now() - lastRenew >= options.renewDeadlineMs) {
        stopLeading("renew deadline passed");
      }
    } else if (await write(current)) {
      armDeadline();
      startLeading();
    }
  }

  function schedule() {
    if (stopped) return;
    clock.clearTimeout(timer);
    const plan = planNext(state(), clock.now(), options, random());
    timer = clock.setTimeout(run, Math.max(0, plan.at - clock.now()));
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
    lastContact = clock.now();
    observe();
    // A new record (released, renewed, taken) changes when to look next.
    if (!stopped && !running) schedule();
  });

  return {
    async start() {
      await leases.start();
      lastContact = clock.now();
      observe();
      run();
    },
    isLeader: () => leading && clock.now() - lastRenew < options.renewDeadlineMs,
    holder: () => lease()?.spec?.holderIdentity,
    lastContact: () => lastContact,
    apiReachable: () => clock.now() - lastContact <= options.renewDeadlineMs,
    attempts: () => ({ sent, failed }),
    async stop() {
      stopped = true;
      clock.clearTimeout(timer);
      await running;
      const current = lease();
      if (leading && current?.spec?.holderIdentity === identity) {
        const now = microTime(clock.now());
        try {
          await client.request("PUT", paths.leases(namespace, name), {
            body: {
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
            },
            timeoutMs: requestTimeoutMs,
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
