/**
 * Assembles asynchronous calls for one control plane: the durable queue (control/async/
 * store.ts), the worker that runs calls through the dispatcher, the scheduler (leader
 * only) and the HTTP routes.
 */

import type { FunctionDef } from "../../common/function.ts";
import { createLogger } from "../../common/log.ts";
import type { Dispatcher } from "../../dispatcher/dispatcher.ts";
import type { AuthGate } from "../api/auth_gate.ts";
import type { EventLog } from "../events.ts";
import { type AsyncApi, createAsyncApi } from "./api.ts";
import type { AsyncConfig } from "./config.ts";
import { startScheduler } from "./scheduler.ts";
import { openCallStore } from "./store.ts";
import { startWorker } from "./worker.ts";

export interface AsyncService {
  api: AsyncApi;
  /** Stops scheduling and taking calls; waits up to `ms` for running ones. */
  stop(ms: number): Promise<void>;
}

export interface AsyncDeps {
  config: AsyncConfig;
  auth: AuthGate;
  dispatcher: Dispatcher;
  functions(): FunctionDef[];
  events: EventLog;
  isLeader?: () => boolean;
}

export function startAsync(deps: AsyncDeps): AsyncService {
  const log = createLogger("async");
  const store = openCallStore(deps.config.path);
  const byName = (name: string) => deps.functions().find((f) => f.name === name);
  const worker = startWorker({
    store,
    config: deps.config,
    resolve: byName,
    dispatch: deps.dispatcher.dispatch,
    events: deps.events,
    log,
  });
  const scheduler = startScheduler({
    store,
    functions: deps.functions,
    isLeader: deps.isLeader ?? (() => true),
    queued: worker.poke,
    log,
  });
  const api = createAsyncApi({
    config: deps.config,
    store,
    auth: deps.auth,
    match: (path) => deps.dispatcher.table.match(path),
    function: byName,
    queued: worker.poke,
  });
  log.info("async queue open", { path: deps.config.path, ...store.counts() });
  return {
    api,
    async stop(ms) {
      scheduler.stop();
      await worker.stop(ms);
      store.close();
    },
  };
}
