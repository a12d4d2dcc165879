/**
 * The Kubernetes runtime of `f2s serve`: a function is a Deployment and a Service in the
 * containers namespace, written by server-side apply (field manager `f2s`), scaled through
 * the Deployment's scale subresource, and its instances are the endpoints of its Service's
 * EndpointSlices, pushed to subscribers as the watch reports them.
 *
 * Every replica of the control plane runs this runtime, but only the leader writes: on the
 * others `apply` and `remove` only remember what is wanted, so a new leader can apply it all
 * (`applyWanted`). `scale` is allowed everywhere, because waking a function from zero for a
 * held request is urgent and idempotent. The leader also puts back Deployments and Services
 * that someone changed or deleted (drift).
 *
 * A function with no ready instance whose pods are stuck (wrong image, crash loop,
 * unschedulable) or whose Deployment cannot be created has a start failure, reported as the
 * local runtime does: `failure(name)` for its status and a "gone" event carrying it, which
 * fails held requests at once (not for unschedulable pods: a node may yet be added). The event is repeated while the failure lasts, because pods
 * stay stuck without news: a request held later must not wait out scaling_timeout.
 */

import { type Clock, realClock } from "../../common/clock.ts";
import type { FunctionDef } from "../../common/function.ts";
import { createLogger, type Logger } from "../../common/log.ts";
import type { EventLog } from "../events.ts";
import { replicasFor } from "../follow_store.ts";
import type { Instance, InstanceListener, Runtime, StartFailure } from "./runtime.ts";
import { type KubeClient, KubeError, type KubeObject, resourcePath } from "../kube/client.ts";
import { instancesFromSlices, sliceFunction } from "./kube_endpoints.ts";
import { createInformer, type Informer } from "../kube/informer.ts";
import {
  deploymentFingerprint,
  deploymentFor,
  FIELD_MANAGER,
  FUNCTION_LABEL,
  MANAGED_SELECTOR,
  serviceFingerprint,
  serviceFor,
  SPEC_HASH_ANNOTATION,
  withSpecHash,
} from "../kube/manifests.ts";
import { paths } from "../kube/paths.ts";
import { type PodProblem, podProblem } from "../kube/pod_problems.ts";

export interface KubeRuntime extends Runtime {
  /** The function's Deployment as last seen. */
  deployment(name: string): KubeObject | undefined;
  /** Names of the functions that have a Deployment or a Service managed by F2S. */
  managedNames(): string[];
  /** The last error applying `name`, until an apply succeeds. */
  applyError(name: string): string | undefined;
  /** Why the function's pods do not start (wrong image, crash loop), if they are stuck. */
  podProblem(name: string): PodProblem | undefined;
  /** Called when a function's Deployment or instances change (for its status). */
  onChange(listener: (name: string) => void): () => void;
  /**
   * Leader only: applies every function this replica knows (`force`), or only those whose
   * Deployment or Service is missing or differs from what F2S wants.
   */
  applyWanted(force: boolean): Promise<void>;
  /** Leader only: deletes what F2S manages for `name` although no function wants it. */
  removeOrphan(name: string): Promise<void>;
}

export interface KubeRuntimeOptions {
  client: KubeClient;
  /** Where Deployments and Services go (f2s-containers). */
  namespace: string;
  events: EventLog;
  /** Whether this replica may write (leader election); default always. */
  isLeader?: () => boolean;
  resyncMs?: number;
  /** How often a lasting start failure is announced again to held requests (default 1 s). */
  failureRepeatMs?: number;
  /** Pending scale counts, drift windows and repeats run on it (default: the real one). */
  clock?: Clock;
  log?: Logger;
}

interface Wanted {
  fn: FunctionDef;
  replicas: number;
}

const PENDING_SCALE_MS = 5_000;
const DRIFT_LIMIT = 5;
const DRIFT_WINDOW_MS = 60_000;

export async function createKubeRuntime(options: KubeRuntimeOptions): Promise<KubeRuntime> {
  const { client, namespace, events } = options;
  const log = options.log ?? createLogger("runtime.kube", { namespace });
  const isLeader = options.isLeader ?? (() => true);
  const clock = options.clock ?? realClock;
  const wanted = new Map<string, Wanted>();
  const pendingScale = new Map<string, { replicas: number; until: number }>();
  const errors = new Map<string, string>();
  const queues = new Map<string, Promise<unknown>>();
  const drift = new Map<string, number[]>();
  const instances = new Map<string, Map<string, Instance>>();
  const listeners = new Set<InstanceListener>();
  const changeListeners = new Set<(name: string) => void>();
  /** Current start failures, with the stuck pod's name as the failing instance. */
  const failures = new Map<string, { failure: StartFailure; id: string }>();

  const informer = (path: string, what: string, labelSelector?: string): Informer =>
    createInformer({
      client,
      path,
      labelSelector,
      resyncMs: options.resyncMs,
      what,
      log: log.with({ resource: what }),
    });
  const deployments = informer(paths.deployments(namespace), "deployments", MANAGED_SELECTOR);
  const services = informer(paths.services(namespace), "services", MANAGED_SELECTOR);
  // EndpointSlices carry their Service's labels, so the same selector finds ours.
  const slices = informer(paths.endpointSlices(namespace), "endpointslices", MANAGED_SELECTOR);
  // Pods only to say why they do not start; the instances come from the EndpointSlices.
  const pods = informer(
    resourcePath({ version: "v1", plural: "pods", namespace }),
    "pods",
    MANAGED_SELECTOR,
  );
  let podsWatched = false;

  function changed(name: string) {
    checkFailure(name);
    for (const l of changeListeners) {
      try {
        l(name);
      } catch (e) {
        log.error("change listener failed", { error: e });
      }
    }
  }

  /** One write at a time per function, in call order. */
  function serialized<T>(name: string, work: () => Promise<T>): Promise<T> {
    const next = (queues.get(name) ?? Promise.resolve()).then(work, work);
    const settled = next.catch(() => {});
    queues.set(name, settled);
    settled.then(() => {
      if (queues.get(name) === settled) queues.delete(name);
    });
    return next;
  }

  function desiredReplicas(name: string): number | undefined {
    const pending = pendingScale.get(name);
    if (pending && clock.monotonic() < pending.until) return pending.replicas;
    const d = deployments.get(name);
    if (d) return d.spec?.replicas ?? 1;
    return undefined;
  }

  async function applyNow(name: string): Promise<void> {
    const w = wanted.get(name);
    if (!w || !isLeader()) return;
    const live = desiredReplicas(name);
    const replicas = live === undefined ? w.replicas : replicasFor(w.fn, live);
    const { deployment, service } = await withSpecHash(
      deploymentFor(w.fn, namespace, replicas),
      serviceFor(w.fn, namespace),
    );
    try {
      services.remember(
        await applyObject(paths.services(namespace, name), service, serviceFingerprint),
      );
      deployments.remember(
        await applyObject(paths.deployments(namespace, name), deployment, deploymentFingerprint),
      );
      if (errors.delete(name)) changed(name);
    } catch (e) {
      const message = e instanceof KubeError ? e.serverMessage : (e as Error).message;
      const first = errors.get(name) !== message;
      errors.set(name, message);
      if (first) {
        events.record("function.error", `could not deploy ${name}: ${message}`, { function: name });
        changed(name);
      }
      throw e;
    }
  }

  /**
   * Server-side applies `desired`; when fields someone else added survive the apply (apply
   * only takes back fields it owns or that conflict), replaces the object outright.
   */
  async function applyObject(
    path: string,
    desired: KubeObject,
    fingerprint: (o: KubeObject) => string,
  ): Promise<KubeObject> {
    let live = await client.apply(path, desired, FIELD_MANAGER);
    for (let attempt = 0; fingerprint(live) !== fingerprint(desired); attempt++) {
      try {
        live = await client.request("PUT", path, {
          body: {
            ...desired,
            metadata: { ...desired.metadata, resourceVersion: live.metadata.resourceVersion },
          },
          query: { fieldManager: FIELD_MANAGER },
        });
      } catch (e) {
        // The controllers write status all the time: take the latest version and retry.
        if (!(e instanceof KubeError && e.status === 409) || attempt >= 4) throw e;
        live = await client.get(path);
      }
    }
    return live;
  }

  /** Whether the live Deployment and Service are what F2S would apply now. */
  function upToDate(w: Wanted): boolean {
    const d = deployments.get(w.fn.name);
    const s = services.get(w.fn.name);
    if (!d || !s || d.metadata.deletionTimestamp || s.metadata.deletionTimestamp) return false;
    return deploymentFingerprint(d) === deploymentFingerprint(deploymentFor(w.fn, namespace, 0)) &&
      serviceFingerprint(s) === serviceFingerprint(serviceFor(w.fn, namespace));
  }

  /** Leader: someone changed or deleted what F2S applied; put it back (rate limited). */
  function correctDrift(name: string, what: string) {
    const w = wanted.get(name);
    // While our own apply is queued or running, the live object is expected to lag.
    if (!w || !isLeader() || queues.has(name) || upToDate(w)) return;
    const now = clock.monotonic();
    const recent = (drift.get(name) ?? []).filter((t) => now - t < DRIFT_WINDOW_MS);
    if (recent.length >= DRIFT_LIMIT) {
      if (recent.length === DRIFT_LIMIT) {
        log.error("drift keeps coming back; not correcting for a while", { function: name });
        events.record(
          "function.error",
          `${what} of ${name} keeps being changed by someone else; F2S stops correcting it for a minute`,
          { function: name },
        );
        recent.push(now);
        drift.set(name, recent);
      }
      return;
    }
    recent.push(now);
    drift.set(name, recent);
    events.record(
      "function.drift",
      `${what} of ${name} was changed outside F2S; applying it again`,
      {
        function: name,
      },
    );
    log.info("correcting drift", { function: name, what });
    serialized(name, () => applyNow(name)).catch((e) =>
      log.error("drift correction failed", { function: name, error: e })
    );
  }

  function notify(inst: Instance) {
    for (const l of listeners) {
      try {
        l({ ...inst });
      } catch (e) {
        log.error("instance listener failed", { error: e });
      }
    }
  }

  /** Why the current version's pods are stuck; an older version's do not count (a fix rolls out). */
  function stuckPods(name: string): PodProblem | undefined {
    const hash = deployments.get(name)?.metadata?.annotations?.[SPEC_HASH_ANNOTATION];
    return podProblem(
      pods.list().filter((p) =>
        p.metadata?.labels?.[FUNCTION_LABEL] === name &&
        (!hash || p.metadata?.annotations?.[SPEC_HASH_ANNOTATION] === hash)
      ),
    );
  }

  /** Sets or clears `name`'s start failure; a new one is announced at once. */
  function checkFailure(name: string) {
    const ready = [...(instances.get(name)?.values() ?? [])].some((i) => i.state === "ready");
    // An apply error counts only with no Deployment at all: an existing one may still start pods.
    const error = deployments.get(name) ? undefined : errors.get(name);
    const problem = ready
      ? undefined
      : error
      ? { reason: "DeployFailed", message: `could not deploy: ${error}`, pod: undefined }
      : stuckPods(name);
    const before = failures.get(name);
    if (!problem) {
      failures.delete(name);
      return;
    }
    if (before?.failure.reason === problem.reason && before.failure.message === problem.message) {
      return;
    }
    const at = before?.failure.reason === problem.reason
      ? before.failure.at
      : new Date(clock.now()).toISOString();
    const now = {
      failure: { reason: problem.reason, message: problem.message, at },
      id: problem.pod ?? `${name}/deployment`,
    };
    failures.set(name, now);
    announce(name, now);
  }

  function announce(name: string, { failure, id }: { failure: StartFailure; id: string }) {
    // A pod waiting for a node is shown, but requests keep waiting: a node autoscaler may
    // add one within scaling_timeout, and then they succeed.
    if (failure.reason === "Unschedulable") return;
    notify({ id, function: name, url: "", state: "gone", failure });
  }

  function refreshInstances(name: string) {
    const before = instances.get(name) ?? new Map<string, Instance>();
    const after = instancesFromSlices(name, slices.list());
    const emit = (inst: Instance) => {
      if (inst.state === "ready" || inst.state === "gone") {
        events.record(
          `instance.${inst.state}`,
          `instance ${inst.id} of ${name} ${
            inst.state === "ready" ? `ready at ${inst.url}` : "gone"
          }`,
          { function: name, data: { instance: inst.id, url: inst.url } },
        );
      }
      notify(inst);
    };
    if (after.size) instances.set(name, after);
    else instances.delete(name);
    for (const [id, inst] of after) {
      const old = before.get(id);
      if (!old || old.state !== inst.state || old.url !== inst.url) emit(inst);
    }
    for (const [id, old] of before) if (!after.has(id)) emit({ ...old, state: "gone" });
    changed(name);
  }

  slices.onChange((change) => {
    const names = new Set([sliceFunction(change.object), sliceFunction(change.old)]);
    for (const name of names) if (name) refreshInstances(name);
  });

  deployments.onChange((change) => {
    const name = change.object.metadata.name as string;
    const pending = pendingScale.get(name);
    if (pending && change.type !== "deleted" && change.object.spec?.replicas === pending.replicas) {
      pendingScale.delete(name);
    }
    changed(name);
    if (!isLeader() || !wanted.has(name)) return;
    const specChanged = change.type !== "modified" ||
      change.old?.metadata?.generation !== change.object.metadata?.generation;
    if (specChanged) correctDrift(name, "the Deployment");
  });
  services.onChange((change) => {
    const name = change.object.metadata.name as string;
    if (isLeader() && wanted.has(name)) correctDrift(name, "the Service");
  });
  const onResync = () => {
    if (isLeader()) {
      runtime.applyWanted(false).catch((e) => log.error("resync failed", { error: e }));
    }
  };
  deployments.onResync(onResync);

  await Promise.all([deployments.start(), services.start(), slices.start()]);
  try {
    await pods.start();
    podsWatched = true;
  } catch (e) {
    // An older chart's RBAC: everything works, a wrong image just shows as Starting.
    log.warn("cannot watch pods; stuck pods show only as Starting", { error: e });
  }
  pods.onChange((change) => {
    const name = change.object?.metadata?.labels?.[FUNCTION_LABEL];
    if (name) changed(name);
  });
  const initial = new Set(slices.list().map(sliceFunction).filter((n): n is string => !!n));
  for (const name of initial) refreshInstances(name);
  for (const pod of pods.list()) {
    const name = pod.metadata?.labels?.[FUNCTION_LABEL];
    if (name && !failures.has(name)) checkFailure(name);
  }
  const repeat = clock.setInterval(() => {
    for (const [name, f] of failures) announce(name, f);
  }, options.failureRepeatMs ?? 1_000);

  const runtime: KubeRuntime = {
    kind: "kubernetes",
    async apply(fn, replicas) {
      wanted.set(fn.name, { fn, replicas });
      if (!isLeader()) return;
      await serialized(fn.name, () => applyNow(fn.name));
    },
    async scale(name, replicas) {
      pendingScale.set(name, { replicas, until: clock.monotonic() + PENDING_SCALE_MS });
      changed(name);
      try {
        await client.request("PATCH", paths.deployments(namespace, name, "scale"), {
          body: { spec: { replicas } },
          contentType: "application/merge-patch+json",
          query: { fieldManager: FIELD_MANAGER },
        });
      } catch (e) {
        const w = wanted.get(name);
        if (e instanceof KubeError && e.status === 404 && w && isLeader()) {
          // Not there (deleted behind our back): create it with the count asked for.
          w.replicas = replicas;
          await serialized(name, () => applyNow(name));
          return;
        }
        pendingScale.delete(name);
        throw e;
      }
    },
    async remove(name) {
      wanted.delete(name);
      pendingScale.delete(name);
      errors.delete(name);
      drift.delete(name);
      failures.delete(name);
      if (!isLeader()) return;
      await serialized(name, () => deleteObjects(name));
    },
    desiredReplicas,
    failure: (name) => failures.get(name)?.failure,
    instances(name) {
      if (name !== undefined) return [...(instances.get(name)?.values() ?? [])];
      return [...instances.values()].flatMap((m) => [...m.values()]);
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async close() {
      clock.clearInterval(repeat);
      await Promise.all([
        deployments.stop(),
        services.stop(),
        slices.stop(),
        podsWatched ? pods.stop() : undefined,
      ]);
    },
    deployment: (name) => deployments.get(name),
    managedNames: () => [
      ...new Set([...deployments.list(), ...services.list()].map((o) => o.metadata.name)),
    ],
    applyError: (name) => errors.get(name),
    podProblem: stuckPods,
    onChange(listener) {
      changeListeners.add(listener);
      return () => changeListeners.delete(listener);
    },
    async applyWanted(force) {
      if (!isLeader()) return;
      const work = [...wanted.values()]
        .filter((w) => force || !upToDate(w))
        .map((w) =>
          serialized(w.fn.name, () => applyNow(w.fn.name)).catch((e) =>
            log.error("apply failed", { function: w.fn.name, error: e })
          )
        );
      await Promise.all(work);
    },
    async removeOrphan(name) {
      if (!isLeader() || wanted.has(name)) return;
      events.record(
        "function.orphan",
        `removing Deployment and Service of unknown function ${name}`,
        {
          function: name,
        },
      );
      await serialized(name, () => deleteObjects(name));
    },
  };

  async function deleteObjects(name: string) {
    // Background: the Deployment goes now, the garbage collector stops its pods after it.
    await client.delete(paths.deployments(namespace, name), { propagationPolicy: "Background" });
    await client.delete(paths.services(namespace, name));
    deployments.forget(name);
    services.forget(name);
    changed(name);
  }

  return runtime;
}
