/**
 * The dispatcher's hot path on its own, for `deno task bench dispatcher`: the real API
 * handler and dispatcher with one function whose only instance is the given backend URL.
 *
 *   deno run -A bench/dispatcher_target.ts PORT BACKEND_URL
 */

import { parseFunction } from "../common/function.ts";
import { serveHttp1 } from "../common/http1_server.ts";
import { createApiHandler } from "../control/api/server.ts";
import { openGate } from "../control/auth/gate.ts";
import { configFromObject } from "../control/config.ts";
import { createEventLog } from "../control/events.ts";
import { createMetrics } from "../control/metrics.ts";
import type { Runtime } from "../control/runtime/runtime.ts";
import type { FunctionStore } from "../control/store/store.ts";
import { createDispatcher } from "../dispatcher/dispatcher.ts";

const [port, backend] = Deno.args;
const parsed = parseFunction({
  metadata: { name: "static" },
  spec: { endpoint: "/static", method: "ANY" },
  target: { containerImage: "bench", minReplicas: 1 },
});
if (!parsed.ok) throw new Error("bad bench function");
const fn = parsed.fn;
const config = configFromObject({}, "bench", {});
const events = createEventLog();
const metrics = createMetrics();
const dispatcher = createDispatcher({ timeouts: config.timeouts, wake: () => {}, metrics, events });
dispatcher.setFunction(fn);
dispatcher.instanceChanged({ id: "backend", function: "static", url: backend, state: "ready" });
const runtime: Runtime = {
  kind: "local",
  apply: () => Promise.resolve(),
  scale: () => Promise.resolve(),
  remove: () => Promise.resolve(),
  desiredReplicas: () => 1,
  instances: () => [],
  subscribe: () => () => {},
  close: () => Promise.resolve(),
};
const store: FunctionStore = {
  list: () => [fn],
  get: () => fn,
  manifest: () => undefined,
  create: () => Promise.reject(new Error("read-only")),
  update: () => Promise.reject(new Error("read-only")),
  delete: () => Promise.reject(new Error("read-only")),
  subscribe: () => () => {},
  close: () => {},
};
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
