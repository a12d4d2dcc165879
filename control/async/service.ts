/**
 * Assembles asynchronous calls for one control plane: the durable queue (control/async/
 * store.ts), the worker that runs calls through the dispatcher, the scheduler (leader
 * only) and the HTTP routes.
 */

import type { Clock } from "../../common/clock.ts";
import type { FunctionDef } from "../../common/function.ts";
import { createLogger } from "../../common/log.ts";
import type { Dispatcher } from "../../dispatcher/dispatcher.ts";
import type { AuthGate } from "../auth/gate.ts";
import type { EventLog } from "../events.ts";
import { type AsyncApi, createAsyncApi } from "./api.ts";
import type { AsyncConfig } from "./config.ts";
import type { SharedTicks } from "./kube_ticks.ts";
import { startScheduler } from "./scheduler.ts";
import { type CallStore, type NewCall, openCallStore } from "./store.ts";
import { type CallView, openCallView, queuedRecord, recordOf } from "./call_view.ts";
import { publishingStore, startSharedCalls } from "./call_state.ts";
import { errorAnswer, errorResponse } from "../../common/protocol.ts";
import { startWorker } from "./worker.ts";
import { startKafkaQueue } from "./kafka_queue.ts";
import type { KafkaConfig } from "../kafka/config.ts";

export interface AsyncService {
  api: AsyncApi;
  /** Stops scheduling and taking calls; waits up to `ms` for running ones. */
  stop(ms: number): Promise<void>;
}

export interface AsyncDeps {
  config: AsyncConfig & { path: string };
  auth: AuthGate;
  dispatcher: Dispatcher;
  functions(): FunctionDef[];
  events: EventLog;
  isLeader?: () => boolean;
  /** Several replicas (`f2s serve`): the record of fired schedule ticks they share. */
  scheduleTicks?: SharedTicks;
  /** With Kafka enabled, calls go through the shared `f2s-async` topic. */
  kafka?: KafkaConfig;
  /** Call times, retries and schedule ticks run on it (default: the real one). */
  clock?: Clock;
}

export function startAsync(deps: AsyncDeps): AsyncService {
  const log = createLogger("async");
  const kafkaEnabled = deps.kafka?.enabled === true && deps.kafka.brokers.length > 0;
  let store: CallStore;
  let view: CallView | undefined;
  try {
    store = openCallStore(deps.config.path);
    // With Kafka, calls run on any replica: the API reads the view every replica shares.
    if (kafkaEnabled) view = openCallView(deps.config.path);
  } catch (e) {
    // The rest of the platform works without the queue; async routes then answer 503.
    log.error("the async queue cannot be opened; async calls are refused", {
      path: deps.config.path,
      error: e,
    });
    deps.events.record("async.error", `the async queue cannot be opened: ${e}`);
    return { api: unavailableApi(String(e)), stop: () => Promise.resolve() };
  }
  if (kafkaEnabled) {
    // Unfinished calls left by the last process are uncommitted in Kafka, which delivers
    // them again (maybe to another replica): running them here as well would double them.
    const forgotten = store.forgetUnfinished();
    if (forgotten > 0) log.info("unfinished calls left to Kafka's redelivery", { forgotten });
  }
  const shared = view
    ? startSharedCalls({
      kafka: deps.kafka!,
      topic: deps.config.kafkaCallsTopic,
      view,
      retention: deps.config.retention,
      log,
    })
    : undefined;
  const byName = (name: string) => deps.functions().find((f) => f.name === name);
  const waiting = new Map<string, () => void>();
  const settle = (id: string) => {
    waiting.get(id)?.();
    waiting.delete(id);
  };
  const worker = startWorker({
    // The final state is shared before the call's offset is committed: a replica dying
    // after the commit must not leave the call unfinished in every view.
    onFinished: (id) => {
      const call = shared && store.get(id);
      if (!call) return settle(id);
      shared!.publish(recordOf(call))
        .catch((e) =>
          log.warn("a call's final state could not be shared", { callId: id, error: e })
        )
        .finally(() => settle(id));
    },
    store: shared ? publishingStore(store, shared, log) : store,
    config: deps.config,
    resolve: byName,
    dispatch: deps.dispatcher.dispatch,
    events: deps.events,
    log,
    clock: deps.clock,
  });
  const kafka = kafkaEnabled
    ? startKafkaQueue({
      kafka: deps.kafka!,
      topic: deps.config.kafkaTopic,
      store,
      queued: worker.poke,
      // A call redelivered after a crash: if some replica finished it (its final state was
      // shared, its offset not committed) it is not run again; attempts made go on counting.
      before: (id) => {
        const seen = store.get(id) === undefined ? view?.get(id) : undefined;
        if (!seen) return undefined;
        return { finished: seen.finishedAt !== undefined, ...seen };
      },
      finished: (id) =>
        new Promise<void>((resolve) => {
          waiting.set(id, resolve);
          // Finished before we looked (a redelivered call this replica already ran).
          const c = store.get(id);
          if (c?.finishedAt !== undefined) {
            waiting.delete(id);
            resolve();
          }
        }),
      log,
    })
    : undefined;
  const enqueue = kafka && shared
    ? async (call: NewCall) => {
      await kafka.publish(call);
      // In this replica's view at once (a GET right after the 202 finds it); the others
      // learn of it from the topic, or from the runner's records if this one is lost. Only
      // after the call is on its topic: a call that failed to queue (503) is shown nowhere,
      // and a schedule tick queued again after a timeout is not marked as anything else.
      shared.publish(queuedRecord(call)).catch((e) =>
        log.warn("an accepted call's state could not be shared", { callId: call.id, error: e })
      );
    }
    : undefined;
  const scheduler = startScheduler({
    store,
    functions: deps.functions,
    isLeader: deps.isLeader ?? (() => true),
    queued: worker.poke,
    log,
    events: deps.events,
    publish: enqueue,
    shared: deps.scheduleTicks,
    clock: deps.clock,
  });
  const api = createAsyncApi({
    config: deps.config,
    store,
    calls: view,
    loading: shared ? () => !shared.caughtUp() : undefined,
    enqueue: enqueue ?? ((call) => void store.insert(call)),
    auth: deps.auth,
    match: (path) => deps.dispatcher.table.match(path),
    function: byName,
    queued: worker.poke,
    clock: deps.clock,
  });
  log.info("async queue open", { path: deps.config.path, ...store.counts() });
  return {
    api,
    async stop(ms) {
      scheduler.stop();
      // Running calls finish first, while the consumer is still in its group: their final
      // states are shared and their offsets committed, so no other replica runs them again.
      await worker.stop(ms);
      await shared?.flush(5_000);
      await kafka?.stop();
      // Calls consumed but not started stay uncommitted: the group delivers them again.
      if (kafka) store.forgetUnfinished(kafka.pending());
      await shared?.stop();
      view?.close();
      store.close();
    },
  };
}

function unavailableApi(reason: string): AsyncApi {
  const message = "asynchronous calls are unavailable: the queue cannot be opened";
  return {
    submit: () => Promise.resolve(errorAnswer(503, message, reason)),
    route: (_req, url) =>
      Promise.resolve(
        /^\/calls\/|^\/functions\/[^/]+\/calls\/?$/.test(url.pathname)
          ? errorResponse(503, message, reason)
          : undefined,
      ),
  };
}
