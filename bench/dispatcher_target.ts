/**
 * The dispatcher's hot path on its own, for `deno task bench dispatcher`: the real API
 * handler, dispatcher and reconciler, with one function whose only instance (in the memory
 * runtime) is the given backend URL; no autoscaler, async calls or Kafka.
 *
 *   deno run -A bench/dispatcher_target.ts PORT BACKEND_URL
 */

import { serveHttp1 } from "../common/http1_server.ts";
import { createApiHandler } from "../control/api/server.ts";
import { openGate } from "../control/auth/gate.ts";
import { configFromObject } from "../control/config.ts";
import { createEventLog } from "../control/events.ts";
import { createMetrics } from "../control/metrics.ts";
import { followStore } from "../control/follow_store.ts";
import { createMemoryRuntime } from "../control/runtime/memory.ts";
import { createMemoryStore } from "../control/store/memory.ts";
import { createDispatcher } from "../dispatcher/dispatcher.ts";

const [port, backend] = Deno.args;
const config = configFromObject({}, "bench", {});
const events = createEventLog();
const metrics = createMetrics();
const store = createMemoryStore({
  functions: [{
    metadata: { name: "static" },
    spec: { endpoint: "/static", method: "ANY" },
    target: { containerImage: "bench", minReplicas: 1, maxReplicas: 1 },
  }],
});
const runtime = createMemoryRuntime({ app: () => ({ url: backend }), events });
const dispatcher = createDispatcher({ timeouts: config.timeouts, wake: () => {}, metrics, events });
runtime.subscribe((instance) => dispatcher.instanceChanged(instance));
followStore({ store, runtime, dispatcher, events });
const handler = createApiHandler({
  config,
  store,
  runtime,
  dispatcher,
  events,
  metrics,
  auth: openGate,
});
serveHttp1({ hostname: "127.0.0.1", port: Number(port) }, handler);
console.log("ready");
