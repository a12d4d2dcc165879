/**
 * Desired state: follows the function store and tells the runtime what should exist and
 * the dispatcher what can be routed (the local runtime and the Kubernetes operator then
 * move instances and resources toward it, each in its own way). It is the only place where definitions turn into
 * instances; the autoscaler changes replica counts through the runtime afterwards.
 */

import type { FunctionDef } from "../common/function.ts";
import { createLogger } from "../common/log.ts";
import type { Dispatcher } from "../dispatcher/dispatcher.ts";
import type { EventLog } from "./events.ts";
import type { Runtime } from "./runtime/runtime.ts";
import type { FunctionStore } from "./store/store.ts";

export interface StoreFollower {
  /** Stops following the store (instances stay; close the runtime to stop them). */
  stop(): void;
}

/** Replicas for a (re)applied function: what runs now, kept within the new bounds. */
export function replicasFor(fn: FunctionDef, current: number | undefined): number {
  const base = current ?? fn.minReplicas;
  return Math.min(fn.maxReplicas, Math.max(fn.minReplicas, base));
}

export function followStore(deps: {
  store: FunctionStore;
  runtime: Runtime;
  dispatcher: Dispatcher;
  events: EventLog;
}): StoreFollower {
  const log = createLogger("follow-store");
  const { store, runtime, dispatcher, events } = deps;

  const put = (fn: FunctionDef) => {
    dispatcher.setFunction(fn);
    const replicas = replicasFor(fn, runtime.desiredReplicas(fn.name));
    events.record(
      "function.applied",
      `function ${fn.name} applied at ${fn.endpoint} with ${replicas} replicas`,
      {
        function: fn.name,
        data: { endpoint: fn.endpoint, image: fn.image, replicas },
      },
    );
    runtime.apply(fn, replicas).catch((e) => {
      log.error("apply failed", { function: fn.name, error: e });
      events.record("function.error", `could not apply ${fn.name}: ${e}`, { function: fn.name });
    });
  };

  for (const fn of store.list()) put(fn);
  const unsubscribeStore = store.subscribe((event) => {
    if (event.type === "put") put(event.fn);
    else {
      dispatcher.removeFunction(event.name);
      events.record("function.deleted", `function ${event.name} deleted`, { function: event.name });
      runtime.remove(event.name).catch((e) =>
        log.error("remove failed", { function: event.name, error: e })
      );
    }
  });
  return { stop: () => unsubscribeStore() };
}
