/**
 * The function store of `f2s serve`: Function resources (f2s.opensight.ch/v1alpha1) in one
 * namespace, followed by an informer. Whoever writes them (the API, kubectl, GitOps), every
 * replica sees the same functions. A resource that passes the CRD but not F2S's own
 * validation, or that claims an endpoint an older function has, is not a function: it is
 * kept aside with the reason, which the operator writes to its status. When such an edit
 * hits a function that was valid before, its last valid version keeps serving (as
 * Knative keeps the last ready revision), so a typo in `kubectl edit` takes nothing down.
 * A resource being deleted (finalizer pending) is gone for the store.
 */

import {
  API_VERSION,
  type FieldError,
  formatErrors,
  type FunctionDef,
  type FunctionManifest,
  KIND,
  parseFunction,
  toManifest,
} from "../../common/function.ts";
import { createLogger, type Logger } from "../../common/log.ts";
import type { EventLog } from "../events.ts";
import { conflictOf, type FunctionStore, StoreError, type StoreListener } from "./store.ts";
import { type KubeClient, KubeError, type KubeObject } from "../kube/client.ts";
import { createInformer } from "../kube/informer.ts";
import { FINALIZER, paths } from "../kube/paths.ts";

const LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration";

export interface Problem {
  reason: "InvalidSpec" | "EndpointConflict";
  message: string;
  errors?: FieldError[];
  /** The function's last valid version is still served (the problem is a later edit). */
  lastValidServed?: boolean;
}

export interface KubeFunctionStore extends FunctionStore {
  /** Every Function resource as last seen, served or not, deleted or not. */
  resources(): KubeObject[];
  resource(name: string): KubeObject | undefined;
  /** Why the resource `name` was refused, if it was (its last valid version may still serve). */
  problem(name: string): Problem | undefined;
  /** Any change of a Function resource, status and metadata included. */
  onResource(listener: (name: string) => void): () => void;
  /** After every periodic re-list. */
  onResync(listener: () => void): () => void;
  /** Takes a resource returned by our own write (status, finalizers). */
  remember(resource: KubeObject): void;
}

export interface KubeStoreOptions {
  client: KubeClient;
  namespace: string;
  events: EventLog;
  resyncMs?: number;
  log?: Logger;
}

interface Entry {
  fn: FunctionDef;
  manifest: FunctionManifest;
  key: string;
  /** The resource's uid: a Function deleted and created again is a new one. */
  uid: string | undefined;
}

/** Lists the Functions once (throws when that fails) and follows them from then on. */
export async function createKubeStore(options: KubeStoreOptions): Promise<KubeFunctionStore> {
  const { client, namespace, events } = options;
  const log = options.log ?? createLogger("store.kube", { namespace });
  const informer = createInformer({
    client,
    path: paths.functions(namespace),
    resyncMs: options.resyncMs,
    what: "functions",
    log,
  });
  const listeners = new Set<StoreListener>();
  const resourceListeners = new Set<(name: string) => void>();
  let entries = new Map<string, Entry>();
  let problems = new Map<string, Problem>();

  function recompute() {
    const next = new Map<string, Entry>();
    const nextProblems = new Map<string, Problem>();
    const live = informer.list()
      .filter((r) => !r.metadata.deletionTimestamp)
      .sort((a, b) =>
        String(a.metadata.creationTimestamp).localeCompare(String(b.metadata.creationTimestamp)) ||
        a.metadata.name.localeCompare(b.metadata.name)
      );
    const byEndpoint = new Map<string, string>();
    /** Keeps serving the version valid before this edit, when there is one to keep. */
    const keepLastValid = (name: string, uid: string | undefined, problem: Problem) => {
      const last = entries.get(name);
      if (last && last.uid === uid && !byEndpoint.has(last.fn.endpoint)) {
        byEndpoint.set(last.fn.endpoint, name);
        next.set(name, last);
        problem.lastValidServed = true;
      }
      nextProblems.set(name, problem);
    };
    for (const r of live) {
      const name = r.metadata.name as string;
      const uid = r.metadata.uid as string | undefined;
      const parsed = parseFunction(r);
      if (!parsed.ok) {
        keepLastValid(name, uid, {
          reason: "InvalidSpec",
          message: formatErrors(parsed.errors),
          errors: parsed.errors,
        });
        continue;
      }
      const owner = byEndpoint.get(parsed.fn.endpoint);
      if (owner) {
        keepLastValid(name, uid, {
          reason: "EndpointConflict",
          message: `endpoint "${parsed.fn.endpoint}" is already used by function "${owner}"`,
        });
        continue;
      }
      byEndpoint.set(parsed.fn.endpoint, name);
      next.set(name, {
        fn: parsed.fn,
        manifest: manifestOf(r),
        key: JSON.stringify(parsed.fn),
        uid,
      });
    }
    const before = entries;
    const beforeProblems = problems;
    entries = next;
    problems = nextProblems;
    for (const [name, p] of nextProblems) {
      if (beforeProblems.get(name)?.message === p.message) continue;
      const outcome = p.lastValidServed
        ? "its last valid version keeps serving"
        : "it is not served";
      events.record("function.invalid", `function ${name} was refused (${outcome}): ${p.message}`, {
        function: name,
        data: { reason: p.reason, lastValidServed: p.lastValidServed ?? false },
      });
      log.warn("function refused", {
        function: name,
        reason: p.reason,
        problem: p.message,
        lastValidServed: p.lastValidServed ?? false,
      });
    }
    for (const [name, entry] of next) {
      if (before.get(name)?.key === entry.key) continue;
      for (const l of listeners) l({ type: "put", fn: entry.fn });
    }
    for (const name of before.keys()) {
      if (!next.has(name)) { for (const l of listeners) l({ type: "delete", name }); }
    }
  }

  informer.onChange((change) => {
    recompute();
    const name = change.object.metadata?.name;
    for (const l of resourceListeners) {
      try {
        l(name);
      } catch (e) {
        log.error("resource listener failed", { error: e });
      }
    }
  });

  await informer.start();

  function checkNamespace(manifest: unknown) {
    const given = (manifest as { metadata?: { namespace?: unknown } })?.metadata?.namespace;
    if (given !== undefined && given !== namespace) {
      throw new StoreError(400, "invalid function manifest", [
        {
          path: "metadata.namespace",
          message: `must be "${namespace}" (the namespace F2S watches)`,
        },
      ]);
    }
  }

  function validate(manifest: unknown): FunctionDef {
    const parsed = parseFunction(manifest);
    if (!parsed.ok) throw new StoreError(400, "invalid function manifest", parsed.errors);
    checkNamespace(manifest);
    return { ...parsed.fn, namespace };
  }

  const path = (name?: string) => paths.functions(namespace, name);

  return {
    list: () => [...entries.values()].map((e) => e.fn),
    get: (name) => entries.get(name)?.fn,
    manifest: (name) => entries.get(name)?.manifest,
    async create(manifest) {
      const fn = validate(manifest);
      const conflict = conflictOf(fn, entries.values().map((e) => e.fn));
      if (conflict) throw new StoreError(409, conflict);
      const meta = userMetadata(manifest);
      const body = {
        ...resourceBody(fn),
        metadata: { ...meta, name: fn.name, namespace, finalizers: [FINALIZER] },
      };
      const created = await client.create(path(), body).catch((e) => {
        throw storeErrorOf(e, fn.name);
      });
      informer.remember(created);
      return entries.get(fn.name)?.fn ?? fn;
    },
    async update(name, manifest) {
      let current = informer.get(name);
      if (!current || current.metadata.deletionTimestamp) {
        throw new StoreError(404, `function "${name}" not found`);
      }
      const fn = validate(manifest);
      if (fn.name !== name) {
        throw new StoreError(400, "invalid function manifest", [
          {
            path: "metadata.name",
            message: `must be "${name}" (renaming is not supported; create a new function)`,
          },
        ]);
      }
      const conflict = conflictOf(fn, entries.values().map((e) => e.fn), name);
      if (conflict) throw new StoreError(409, conflict);
      const meta = userMetadata(manifest);
      for (let attempt = 0;; attempt++) {
        const { status: _status, ...rest } = current!;
        const metadata = { ...rest.metadata };
        delete metadata.managedFields;
        if (meta.labels) metadata.labels = meta.labels;
        const body = { ...rest, ...resourceBody(fn), metadata };
        try {
          const updated = await client.replace(path(name), body);
          informer.remember(updated);
          return entries.get(name)?.fn ?? fn;
        } catch (e) {
          // Someone (the operator writing status, kubectl) changed it meanwhile: retry on top.
          if (e instanceof KubeError && e.status === 409 && attempt < 4) {
            current = await client.find(path(name));
            if (!current) throw new StoreError(404, `function "${name}" not found`);
            continue;
          }
          throw storeErrorOf(e, name);
        }
      }
    },
    async delete(name) {
      const current = informer.get(name);
      if (!current) throw new StoreError(404, `function "${name}" not found`);
      if (current.metadata.deletionTimestamp) return;
      const res = await client.delete(path(name), { propagationPolicy: "Background" })
        .catch((e) => {
          throw storeErrorOf(e, name);
        });
      if (res?.metadata?.deletionTimestamp && res.metadata.finalizers?.length) {
        informer.remember(res);
      } else informer.forget(name);
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close: () => informer.stop(),
    resources: () => informer.list(),
    resource: (name) => informer.get(name),
    problem: (name) => problems.get(name),
    onResource(listener) {
      resourceListeners.add(listener);
      return () => resourceListeners.delete(listener);
    },
    onResync: (listener) => informer.onResync(listener),
    remember: (resource) => informer.remember(resource),
  };
}

/** spec and target of the Function resource for `fn`, as F2S normalizes them. */
function resourceBody(fn: FunctionDef): KubeObject {
  const m = toManifest(fn);
  return { apiVersion: API_VERSION, kind: KIND, spec: m.spec, target: m.target };
}

/** Labels and annotations the caller gave (other metadata belongs to Kubernetes). */
function userMetadata(manifest: unknown): { labels?: KubeObject; annotations?: KubeObject } {
  const meta = (manifest as { metadata?: KubeObject })?.metadata ?? {};
  const out: { labels?: KubeObject; annotations?: KubeObject } = {};
  if (meta.labels && typeof meta.labels === "object") out.labels = meta.labels;
  if (meta.annotations && typeof meta.annotations === "object") {
    out.annotations = meta.annotations;
  }
  return out;
}

/** The manifest as stored, without what Kubernetes adds (status, managed fields, ...). */
function manifestOf(r: KubeObject): FunctionManifest {
  const metadata: FunctionManifest["metadata"] = {
    name: r.metadata.name,
    namespace: r.metadata.namespace,
    uid: r.metadata.uid,
  };
  if (r.metadata.labels) metadata.labels = r.metadata.labels;
  const annotations = { ...r.metadata.annotations };
  delete annotations[LAST_APPLIED];
  if (Object.keys(annotations).length) metadata.annotations = annotations;
  return {
    apiVersion: r.apiVersion ?? API_VERSION,
    kind: r.kind ?? KIND,
    metadata,
    spec: structuredClone(r.spec),
    target: structuredClone(r.target),
  };
}

/** A failed write as the API should answer it. */
function storeErrorOf(e: unknown, name: string): StoreError {
  if (!(e instanceof KubeError)) {
    return new StoreError(500, `Kubernetes API unreachable: ${(e as Error).message}`);
  }
  if (e.status === 409 && e.reason === "AlreadyExists") {
    return new StoreError(409, `a function named "${name}" already exists`);
  }
  if (e.status === 409) {
    return new StoreError(409, `function "${name}" was changed at the same time; try again`);
  }
  if (e.status === 404) return new StoreError(404, `function "${name}" not found`);
  if (e.status === 422 || e.status === 400) {
    const details: FieldError[] = e.causes.map((c) => ({
      path: (c.field ?? "").replace(/^\./, ""),
      message: c.message,
    }));
    return new StoreError(400, "invalid function manifest", details.length ? details : undefined);
  }
  if (e.status === 403) {
    return new StoreError(500, `F2S may not write Function resources: ${e.serverMessage}`);
  }
  return new StoreError(500, `Kubernetes API error: ${e.message}`);
}
