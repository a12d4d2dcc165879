/**
 * Assembles one control plane from its parts: a function store and a runtime (local for
 * `f2s dev`, Kubernetes for `f2s serve`) plus what is the same everywhere: desired state,
 * routing, dispatch, metrics, scaling, the API. Data flows one way: definitions → desired
 * state → instances → routing table → dispatch → metrics → scaling decisions.
 */

import type { Clock } from "../common/clock.ts";
import { createLogger } from "../common/log.ts";
import { createDispatcher, type Dispatcher } from "../dispatcher/dispatcher.ts";
import type { AuthGate } from "./auth/gate.ts";
import { openGate } from "./auth/gate.ts";
import { fromRequest, toResponse } from "../common/web_bridge.ts";
import { createApiHandler, type Handler } from "./api/server.ts";
import type { Config } from "./config.ts";
import type { EventLog } from "./events.ts";
import type { Metrics } from "./metrics.ts";
import type { ConcurrencyTracker } from "./autoscaler/concurrency.ts";
import type { PeerLoads } from "./autoscaler/peers.ts";
import { createScaling } from "./autoscaler/scaling.ts";
import { type KafkaTriggers, startKafkaTriggers } from "./kafka/triggers.ts";
import { followStore } from "./follow_store.ts";
import { type AsyncService, startAsync } from "./async/service.ts";
import type { SharedTicks } from "./async/kube_ticks.ts";
import type { Runtime } from "./runtime/runtime.ts";
import type { FunctionStore } from "./store/store.ts";

export interface Platform {
  handler: Handler;
  dispatcher: Dispatcher;
  /** This replica's load per function (what it reports to the others in `f2s serve`). */
  tracker: ConcurrencyTracker;
  /** Stops taking work, lets in-flight requests finish (up to `graceMs`), stops instances. */
  shutdown(graceMs: number): Promise<void>;
}

export interface PlatformDeps {
  config: Config;
  store: FunctionStore;
  runtime: Runtime;
  events: EventLog;
  metrics: Metrics;
  auth?: AuthGate;
  ui?: (req: Request, url: URL) => Promise<Response | undefined>;
  /** Only the leader's autoscaler acts (leader election in `f2s serve`); default always. */
  isLeader?: () => boolean;
  /** The other control-plane replicas' load, for the local scaling source (`f2s serve`). */
  peers?: PeerLoads;
  /** The schedule ticks fired, shared by the replicas (`f2s serve`: a Lease). */
  scheduleTicks?: SharedTicks;
  /** The async queue's file when config.yaml names none (`f2s dev`: in the functions folder). */
  asyncPath?: string;
  /** Readiness for GET /ready (see ApiDeps); default always ready. */
  ready?: () => { ready: boolean; reason?: string };
  /**
   * The time scaling, dispatch and async calls run on (default: the real one); the runtime
   * is built before the platform and takes its clock itself.
   */
  clock?: Clock;
}

export function createPlatform(deps: PlatformDeps): Platform {
  const log = createLogger("platform");
  const { config, store, runtime, events, metrics } = deps;

  // The autoscaler: fed by the dispatcher's load, wakes functions from zero for held
  // requests, scales through the runtime (see control/autoscaler/).
  const scaling = createScaling({
    config,
    runtime,
    functions: () => store.list(),
    events,
    metrics,
    isLeader: deps.isLeader,
    peers: deps.peers,
    clock: deps.clock,
  });
  const dispatcher = createDispatcher({
    timeouts: config.timeouts,
    wake: scaling.wake,
    onLoad: scaling.onLoad,
    metrics,
    events,
    clock: deps.clock,
  });
  const unsubscribeRuntime = runtime.subscribe((instance) => dispatcher.instanceChanged(instance));
  for (const instance of runtime.instances()) dispatcher.instanceChanged(instance);
  const storeFollower = followStore({ store, runtime, dispatcher, events });
  scaling.start();

  // Kafka triggers invoke through the same dispatcher path as HTTP. They start in the
  // background: a broker that is down must not hold up the API.
  let kafka: KafkaTriggers | undefined;
  const kafkaStarted = startKafkaTriggers({
    config: config.kafka,
    resolve: (ref) => store.list().find((f) => f.name === ref || f.uid === ref),
    invoke: (fn, req, requestId) =>
      dispatcher.dispatch(fn, fromRequest(req), {
        requestId,
        suffix: "",
        search: "",
        source: "kafka",
      })
        .then(toResponse),
    events,
    registry: metrics.registry,
  }).then((k) => (kafka = k)).catch((e) => {
    log.error("kafka triggers could not start", { error: e });
    events.record("kafka.error", `kafka triggers could not start: ${e}`);
    return undefined;
  });

  // Asynchronous calls and schedules run through the same dispatcher (control/async/).
  const asyncCalls: AsyncService = startAsync({
    config: {
      ...config.async,
      path: config.async.path ?? deps.asyncPath ??
        `${Deno.env.get("TMPDIR") ?? "/tmp"}/f2s-async/async.db`,
    },
    auth: deps.auth ?? openGate,
    dispatcher,
    functions: () => store.list(),
    events,
    isLeader: deps.isLeader,
    scheduleTicks: deps.scheduleTicks,
    kafka: config.kafka,
    clock: deps.clock,
  });

  const handler = createApiHandler({
    config,
    store,
    runtime,
    dispatcher,
    events,
    metrics,
    auth: deps.auth ?? openGate,
    ui: deps.ui,
    async: asyncCalls.api,
    ready: deps.ready,
    clock: deps.clock,
    health: () => ({
      kafka: kafka?.health() ??
        { enabled: config.kafka.enabled, connected: false, detail: "starting" },
    }),
  });

  return {
    handler,
    dispatcher,
    tracker: scaling.tracker,
    async shutdown(graceMs) {
      // Kafka first: it finishes and commits the messages in flight while the dispatcher
      // and the instances are still there to serve them.
      await (await kafkaStarted)?.stop();
      await asyncCalls.stop(graceMs);
      scaling.stop();
      storeFollower.stop();
      store.close();
      const drained = await dispatcher.drain(graceMs);
      if (!drained) {
        log.warn("in-flight requests did not finish within the grace period", { graceMs });
      }
      await runtime.close();
      unsubscribeRuntime();
      dispatcher.close();
    },
  };
}
