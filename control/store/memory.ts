/**
 * A function store held in memory: the same validation, conflicts and change events as the
 * folder and Kubernetes stores, without a folder to watch or an API server to ask. For
 * in-process tests of the platform, the API and the reconciler, and for the bench.
 */

import {
  type FieldError,
  type FunctionDef,
  type FunctionManifest,
  parseFunction,
  toManifest,
} from "../../common/function.ts";
import { devUid } from "./folder.ts";
import { conflictOf, type FunctionStore, StoreError, type StoreListener } from "./store.ts";

export interface MemoryStoreOptions {
  /** Manifests stored from the start (invalid or clashing ones throw). */
  functions?: unknown[];
  /** Problems that keep a function from running (the runtime's check): writes get 400. */
  check?: (fn: FunctionDef) => FieldError[];
}

interface Entry {
  fn: FunctionDef;
  manifest: FunctionManifest;
}

export function createMemoryStore(options: MemoryStoreOptions = {}): FunctionStore {
  const entries = new Map<string, Entry>();
  const listeners = new Set<StoreListener>();

  function validate(manifest: unknown): Entry {
    const parsed = parseFunction(manifest);
    if (!parsed.ok) throw new StoreError(400, "invalid function manifest", parsed.errors);
    // Every function has a uid, derived from its name as under `f2s dev`.
    const fn = { ...parsed.fn, uid: parsed.fn.uid ?? devUid(parsed.fn.namespace, parsed.fn.name) };
    const problems = options.check?.(fn) ?? [];
    if (problems.length > 0) throw new StoreError(400, "function cannot run here", problems);
    return { fn, manifest: toManifest(parsed.fn) };
  }

  function put(entry: Entry, replacing?: string) {
    const conflict = conflictOf(entry.fn, [...entries.values()].map((e) => e.fn), replacing);
    if (conflict) throw new StoreError(409, conflict);
    const before = entries.get(entry.fn.name);
    entries.set(entry.fn.name, entry);
    // An unchanged definition is no change (as the folder store's rescan sees it).
    if (before && JSON.stringify(before.fn) === JSON.stringify(entry.fn)) return;
    for (const l of [...listeners]) l({ type: "put", fn: entry.fn });
  }

  for (const manifest of options.functions ?? []) put(validate(manifest));

  return {
    list: () => [...entries.values()].map((e) => e.fn),
    get: (name) => entries.get(name)?.fn,
    manifest: (name) => entries.get(name)?.manifest,
    create(manifest) {
      try {
        const entry = validate(manifest);
        put(entry);
        return Promise.resolve(entry.fn);
      } catch (e) {
        return Promise.reject(e);
      }
    },
    update(name, manifest) {
      try {
        if (!entries.has(name)) throw new StoreError(404, `function "${name}" not found`);
        const entry = validate(manifest);
        if (entry.fn.name !== name) {
          throw new StoreError(400, "invalid function manifest", [
            {
              path: "metadata.name",
              message: `must be "${name}" (renaming is not supported; create a new function)`,
            },
          ]);
        }
        put(entry, name);
        return Promise.resolve(entry.fn);
      } catch (e) {
        return Promise.reject(e);
      }
    },
    delete(name) {
      if (!entries.delete(name)) {
        return Promise.reject(new StoreError(404, `function "${name}" not found`));
      }
      for (const l of [...listeners]) l({ type: "delete", name });
      return Promise.resolve();
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      listeners.clear();
    },
  };
}
