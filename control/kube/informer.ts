/**
 * A live copy of one namespaced collection (Functions, Deployments, EndpointSlices, ...):
 * list, then watch from the list's resourceVersion, resuming where a watch ended, listing
 * again when the server answers 410 Gone, and re-listing every resync period so a missed
 * event cannot leave the copy wrong for long. Listeners get every change in order.
 */

import { backoff } from "../../common/backoff.ts";
import { realClock } from "../../common/clock.ts";
import { createLogger, type Logger } from "../../common/log.ts";
import { type KubeClient, KubeError, type KubeObject } from "./client.ts";

export type ChangeType = "added" | "modified" | "deleted";

export interface Change {
  type: ChangeType;
  object: KubeObject;
  /** The copy before this change (modified, deleted). */
  old?: KubeObject;
}

export interface InformerOptions {
  client: KubeClient;
  /** The collection's URL path, e.g. /apis/apps/v1/namespaces/x/deployments. */
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Re-list and tell `onResync` listeners this often (0: never). */
  resyncMs?: number;
  /** For log lines, e.g. "deployments". */
  what: string;
  log?: Logger;
  /** Watch idle guard (ms); the server's watch timeout is kept below it. */
  watchIdleMs?: number;
  /** The jitter of retry pauses, in [0, 1) (default Math.random). */
  random?: () => number;
}

/** The first pause after a failed watch or list, doubled per failure up to the longest. */
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 10_000;

export interface Informer {
  /** Lists once (rejects when that fails, e.g. a missing CRD), then keeps watching. */
  start(): Promise<void>;
  /** Stops watching; resolves once the watch has ended. */
  stop(): Promise<void>;
  get(name: string): KubeObject | undefined;
  list(): KubeObject[];
  onChange(listener: (change: Change) => void): () => void;
  /** Called after every periodic re-list, to look at everything once more. */
  onResync(listener: () => void): () => void;
  /** Takes an object returned by our own write, so readers see it before its event. */
  remember(object: KubeObject): void;
  /** Takes the news that we deleted an object for good. */
  forget(name: string): void;
}

/** etcd revisions are integers; when both are, an older copy never replaces a newer one. */
export function isOlder(candidate: KubeObject, current: KubeObject | undefined): boolean {
  const a = candidate.metadata?.resourceVersion;
  const b = current?.metadata?.resourceVersion;
  if (!a || !b || !/^\d+$/.test(a) || !/^\d+$/.test(b)) return false;
  return BigInt(a) < BigInt(b);
}

export function createInformer(options: InformerOptions): Informer {
  const log = options.log ?? createLogger("kube.informer", { resource: options.what });
  const cache = new Map<string, KubeObject>();
  const changeListeners = new Set<(change: Change) => void>();
  const resyncListeners = new Set<() => void>();
  const stopped = new AbortController();
  let watchAbort: AbortController | undefined;
  let resyncTimer: ReturnType<typeof setInterval> | undefined;
  let resyncWanted = false;
  let loop: Promise<void> = Promise.resolve();
  const query = { labelSelector: options.labelSelector, fieldSelector: options.fieldSelector };

  function emit(change: Change) {
    for (const l of changeListeners) {
      try {
        l(change);
      } catch (e) {
        log.error("change listener failed", { error: e });
      }
    }
  }

  function put(object: KubeObject) {
    const name = object.metadata?.name;
    if (!name) return;
    const old = cache.get(name);
    if (
      old && (isOlder(object, old) ||
        old.metadata?.resourceVersion === object.metadata?.resourceVersion)
    ) return;
    cache.set(name, object);
    emit({ type: old ? "modified" : "added", object, old });
  }

  function remove(object: KubeObject) {
    const name = object.metadata?.name;
    const old = name ? cache.get(name) : undefined;
    if (!old || isOlder(object, old)) return;
    cache.delete(name);
    emit({ type: "deleted", object, old });
  }

  async function list(): Promise<string> {
    const items: KubeObject[] = [];
    let resourceVersion = "";
    let cont: string | undefined;
    do {
      const page = await options.client.request("GET", options.path, {
        query: { ...query, limit: 500, continue: cont },
      });
      items.push(...(page.items ?? []));
      resourceVersion = page.metadata?.resourceVersion ?? "";
      cont = page.metadata?.continue || undefined;
    } while (cont);
    const seen = new Set<string>();
    for (const item of items) {
      seen.add(item.metadata.name);
      put(item);
    }
    for (const [name, old] of [...cache]) {
      if (!seen.has(name)) {
        cache.delete(name);
        emit({ type: "deleted", object: old, old });
      }
    }
    return resourceVersion;
  }

  async function watchLoop(startVersion: string) {
    let resourceVersion = startVersion;
    let failures = 0;
    while (!stopped.signal.aborted) {
      try {
        if (!resourceVersion || resyncWanted) {
          const wasResync = resyncWanted;
          resyncWanted = false;
          resourceVersion = await list();
          if (wasResync) {
            for (const l of resyncListeners) {
              try {
                l();
              } catch (e) {
                log.error("resync listener failed", { error: e });
              }
            }
          }
        }
        watchAbort = new AbortController();
        // A resync asked for during the list: list again before watching.
        if (resyncWanted) continue;
        const signal = AbortSignal.any([stopped.signal, watchAbort.signal]);
        for await (
          const event of options.client.watch(options.path, resourceVersion, {
            query,
            signal,
            idleMs: options.watchIdleMs,
          })
        ) {
          if (event.type === "ERROR") {
            const code = event.object?.code;
            if (code === 410) {
              log.info("watch expired (410 Gone); listing again");
              resourceVersion = "";
              break;
            }
            throw new KubeError(code ?? 500, "WATCH", options.path, event.object);
          }
          const rv = event.object?.metadata?.resourceVersion;
          if (rv) resourceVersion = rv;
          if (event.type === "BOOKMARK") continue;
          if (event.type === "DELETED") remove(event.object);
          else put(event.object);
        }
        failures = 0;
      } catch (e) {
        if (stopped.signal.aborted) return;
        if (resyncWanted) continue;
        if (e instanceof KubeError && e.status === 410) resourceVersion = "";
        // Jittered (common/backoff.ts): replicas and informers that lost the API server at
        // the same moment do not all come back to it at the same moment.
        const retryInMs = Math.round(
          backoff(++failures, RETRY_FIRST_MS, RETRY_MAX_MS, (options.random ?? Math.random)()),
        );
        log.warn("watch failed; retrying", { error: e, retryInMs });
        await realClock.sleep(retryInMs, stopped.signal);
      }
    }
  }

  return {
    async start() {
      const resourceVersion = await list();
      loop = watchLoop(resourceVersion);
      if (options.resyncMs && options.resyncMs > 0) {
        resyncTimer = setInterval(() => {
          resyncWanted = true;
          watchAbort?.abort();
        }, options.resyncMs);
      }
    },
    stop() {
      clearInterval(resyncTimer);
      stopped.abort();
      return loop;
    },
    get: (name) => cache.get(name),
    list: () => [...cache.values()],
    onChange(listener) {
      changeListeners.add(listener);
      return () => changeListeners.delete(listener);
    },
    onResync(listener) {
      resyncListeners.add(listener);
      return () => resyncListeners.delete(listener);
    },
    remember: put,
    forget(name) {
      const old = cache.get(name);
      if (!old) return;
      cache.delete(name);
      emit({ type: "deleted", object: old, old });
    },
  };
}
