/**
 * The Function side of the operator, run by the leader only: puts F2S's finalizer on every
 * Function, and when one is deleted removes its Deployment and Service before letting it go
 * (owner references cannot cross namespaces); writes each Function's status (Ready
 * condition with reason and message, observed generation, ready and desired replicas,
 * invoke URL); and removes Deployments and Services no function wants any more. The
 * Deployments themselves are the runtime's job (runtime.ts), driven by control/follow_store.ts.
 */

import { type Clock, realClock, type TimerId } from "../common/clock.ts";
import { normalizeEndpoint } from "../common/function.ts";
import { createLogger, type Logger } from "../common/log.ts";
import type { EventLog } from "./events.ts";
import { type KubeClient, KubeError, type KubeObject } from "./kube/client.ts";
import { FINALIZER, paths } from "./kube/paths.ts";
import type { KubeRuntime } from "./runtime/kube.ts";
import type { KubeFunctionStore } from "./store/kube.ts";

export interface OperatorOptions {
  client: KubeClient;
  /** Where the Function resources are. */
  namespace: string;
  store: KubeFunctionStore;
  runtime: KubeRuntime;
  events: EventLog;
  isLeader: () => boolean;
  /** Prefix of status.invokeUrl, e.g. https://f2s.example.com ("" gives a path). */
  publicUrl?: string;
  /** Orphaned Deployments younger than this are left alone (the store may lag). */
  orphanGraceMs?: number;
  /** Batching, retries and the orphan grace run on it (default: the real one). */
  clock?: Clock;
  log?: Logger;
}

export interface Operator {
  /** Leadership gained: apply everything, then look at every Function. */
  onStartedLeading(): void;
  /** Resolves when no Function is waiting to be looked at (for tests and shutdown). */
  idle(): Promise<void>;
  stop(): void;
}

export interface FunctionStatus {
  observedGeneration?: number;
  readyReplicas: number;
  replicas: number;
  invokeUrl?: string;
  conditions: {
    type: "Ready";
    status: "True" | "False" | "Unknown";
    reason: string;
    message: string;
    lastTransitionTime: string;
    observedGeneration?: number;
  }[];
}

export function startOperator(options: OperatorOptions): Operator {
  const { client, namespace, store, runtime, events, isLeader } = options;
  const log = options.log ?? createLogger("operator", { namespace });
  const publicUrl = (options.publicUrl ?? "").replace(/\/+$/, "");
  const orphanGraceMs = options.orphanGraceMs ?? 30_000;
  const clock = options.clock ?? realClock;
  const dirty = new Set<string>();
  let timer: TimerId | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;

  function mark(name: string | undefined) {
    if (!name || stopped) return;
    dirty.add(name);
    if (!timer && !running) timer = clock.setTimeout(flush, 20);
  }

  function markAll() {
    for (const r of store.resources()) mark(r.metadata.name);
  }

  function flush() {
    timer = undefined;
    if (running || stopped) return;
    running = (async () => {
      while (dirty.size && !stopped) {
        const names = [...dirty];
        dirty.clear();
        if (!isLeader()) continue;
        await Promise.all(names.map((name) =>
          syncResource(name).catch((e) => {
            log.warn("could not bring the Function resource up to date", {
              function: name,
              error: e,
            });
            // Conflicts resolve with the next watch event; other errors are retried later.
            if (!(e instanceof KubeError && e.status === 409)) {
              clock.setTimeout(() => mark(name), 2_000);
            }
          })
        ));
      }
    })().finally(() => {
      running = undefined;
      if (dirty.size) mark([...dirty][0]);
    });
  }

  /** Brings one Function resource up to date: finalizer, status, and cleanup once deleted. */
  async function syncResource(name: string) {
    const r = store.resource(name);
    if (!r) return;
    const finalizers: string[] = r.metadata.finalizers ?? [];
    if (r.metadata.deletionTimestamp) {
      if (!finalizers.includes(FINALIZER)) return;
      await runtime.remove(name);
      await setFinalizers(r, finalizers.filter((f) => f !== FINALIZER));
      events.record("function.removed", `function ${name}: Deployment and Service removed`, {
        function: name,
      });
      return;
    }
    if (!finalizers.includes(FINALIZER)) {
      await setFinalizers(r, [...finalizers, FINALIZER]);
      return; // the write brings a new version, looked at again
    }
    const previous = (r.status?.conditions ?? []).find((c: KubeObject) => c.type === "Ready");
    const status = functionStatus(r, previous);
    if (!sameStatus(r.status, status)) {
      const written = await client.patch(
        paths.functions(namespace, name, "status"),
        { status },
        "merge",
      );
      store.remember(written);
      const now = status.conditions[0];
      if (now.reason !== previous?.reason || now.status !== previous?.status) {
        // A new chapter of the function's story (Starting, Available, ImagePullBackOff, …)
        // for `kubectl describe fn`.
        events.record("function.status", `Ready=${now.status} (${now.reason}): ${now.message}`, {
          function: name,
          data: { status: now.status, reason: now.reason },
        });
      }
    }
  }

  async function setFinalizers(r: KubeObject, finalizers: string[]) {
    const written = await client.patch(paths.functions(namespace, r.metadata.name), {
      // The resourceVersion makes the patch fail rather than drop someone else's finalizer.
      metadata: { finalizers, resourceVersion: r.metadata.resourceVersion },
    }, "merge");
    store.remember(written);
  }

  function functionStatus(r: KubeObject, previous: KubeObject | undefined): FunctionStatus {
    const name = r.metadata.name as string;
    const generation = r.metadata.generation;
    const fn = store.get(name);
    const problem = store.problem(name);
    const endpoint = fn?.endpoint ??
      (typeof r.spec?.endpoint === "string" ? normalizeEndpoint(r.spec.endpoint) : undefined);
    const ready = runtime.instances(name).filter((i) => i.state === "ready").length;
    const desired = runtime.desiredReplicas(name) ?? 0;
    let condition: { status: "True" | "False" | "Unknown"; reason: string; message: string };
    const dep = runtime.deployment(name);
    const error = runtime.applyError(name);
    if (problem) {
      const message = problem.lastValidServed
        ? `${problem.message} (the last valid version keeps serving)`
        : problem.message;
      condition = { status: "False", reason: problem.reason, message };
    } else if (!fn) {
      condition = { status: "Unknown", reason: "Pending", message: "not looked at yet" };
    } else if (error) {
      condition = { status: "False", reason: "DeployFailed", message: error };
    } else if (!dep) {
      condition = { status: "False", reason: "Deploying", message: "creating the Deployment" };
    } else if (desired === 0) {
      condition = {
        status: "True",
        reason: "ScaledToZero",
        message: "no instance runs; the first request starts one",
      };
    } else if (ready === 0 && runtime.podProblem(name)) {
      const stuck = runtime.podProblem(name)!;
      condition = { status: "False", reason: stuck.reason, message: stuck.message };
    } else if (ready === 0) {
      condition = {
        status: "False",
        reason: "Starting",
        message: `0 of ${desired} instances ready (kubectl get pods -n ${dep.metadata.namespace} ` +
          `-l f2s.opensight.ch/function=${name})`,
      };
    } else if (
      (dep.status?.observedGeneration ?? 0) < (dep.metadata.generation ?? 0) ||
      (dep.status?.updatedReplicas ?? 0) < desired ||
      (dep.status?.replicas ?? 0) > desired
    ) {
      condition = {
        status: "True",
        reason: "RollingOut",
        message: `${ready} of ${desired} instances ready; rolling out`,
      };
    } else {
      condition = {
        status: "True",
        reason: "Available",
        message: `${ready} of ${desired} instances ready`,
      };
    }
    const transition = previous?.status === condition.status && previous?.lastTransitionTime
      ? previous.lastTransitionTime
      : new Date(clock.now()).toISOString().replace(/\.\d+Z$/, "Z");
    return {
      observedGeneration: generation,
      readyReplicas: problem && !problem.lastValidServed ? 0 : ready,
      replicas: problem && !problem.lastValidServed ? 0 : desired,
      invokeUrl: endpoint ? `${publicUrl}/invoke${endpoint}` : undefined,
      conditions: [{
        type: "Ready",
        ...condition,
        lastTransitionTime: transition,
        observedGeneration: generation,
      }],
    };
  }

  async function collectGarbage() {
    if (!isLeader()) return;
    const now = clock.now();
    for (const name of runtime.managedNames()) {
      if (store.get(name)) continue;
      const created = Date.parse(runtime.deployment(name)?.metadata?.creationTimestamp ?? "");
      if (!Number.isNaN(created) && now - created < orphanGraceMs) continue;
      await runtime.removeOrphan(name).catch((e) =>
        log.warn("could not remove orphan", { function: name, error: e })
      );
    }
  }

  const unsubscribe = [
    store.onResource(mark),
    runtime.onChange(mark),
    store.onResync(() => {
      if (!isLeader()) return;
      markAll();
      collectGarbage();
    }),
  ];

  return {
    onStartedLeading() {
      (async () => {
        await runtime.applyWanted(true);
        markAll();
        await collectGarbage();
      })().catch((e) => log.error("taking over failed", { error: e }));
    },
    async idle() {
      while (timer || running || dirty.size) {
        await (running ?? clock.sleep(25));
      }
    },
    stop() {
      stopped = true;
      clock.clearTimeout(timer);
      for (const u of unsubscribe) u();
    },
  };
}

/** Equal apart from when the condition last changed. */
function sameStatus(current: KubeObject | undefined, next: FunctionStatus): boolean {
  if (!current) return false;
  const canonical = (s: KubeObject) =>
    JSON.stringify([
      s.observedGeneration ?? null,
      s.readyReplicas ?? null,
      s.replicas ?? null,
      s.invokeUrl ?? null,
      (s.conditions ?? []).map((c: KubeObject) => [
        c.type,
        c.status,
        c.reason,
        c.message,
        c.observedGeneration ?? null,
      ]),
    ]);
  return canonical(current) === canonical(next);
}
