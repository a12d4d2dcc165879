/**
 * The whole control plane in the test's own process: control/platform.ts assembled with the
 * memory runtime and store, its API called through the handler the HTTP/1.1 server runs
 * (`asFetch`), instances answering with the test's handlers on loopback. What `f2s dev`
 * does, minus processes and files, so a test of it takes milliseconds.
 */

import { asFetch } from "../../common/web_bridge.ts";
import { createAuth } from "../../control/auth/auth.ts";
import { parseConfig } from "../../control/config.ts";
import { createEventLog, type EventLog } from "../../control/events.ts";
import { createMetrics } from "../../control/metrics.ts";
import { createPlatform, type Platform } from "../../control/platform.ts";
import {
  createMemoryRuntime,
  type MemoryApp,
  type MemoryRuntime,
} from "../../control/runtime/memory.ts";
import type { FunctionDef } from "../../common/function.ts";
import type { Instance } from "../../control/runtime/runtime.ts";
import { createMemoryStore } from "../../control/store/memory.ts";
import type { FunctionStore } from "../../control/store/store.ts";

export interface MemoryPlatform {
  platform: Platform;
  /** The API as a fetch function (bare paths allowed: `api("/functions")`). */
  api: (input: Request | string | URL, init?: RequestInit) => Promise<Response>;
  runtime: MemoryRuntime;
  store: FunctionStore;
  events: EventLog;
  stop(): Promise<void>;
}

export interface MemoryPlatformOptions {
  /** The app of a function's instances (asked at every start); default: `echo`. */
  app?: (fn: FunctionDef) => MemoryApp | undefined;
  /** config.yaml text (default: none, i.e. the defaults; no auth). */
  config?: string;
  /** Manifests stored before the platform starts. */
  functions?: unknown[];
}

/** Answers with what it got: method, path with query, body, caller (as JSON). */
export const echo = {
  handler: async (req: Request, instance: Instance): Promise<Response> => {
    const url = new URL(req.url);
    return Response.json({
      instance: instance.id,
      method: req.method,
      path: url.pathname + url.search,
      body: await req.text(),
      caller: req.headers.get("x-f2s-caller"),
      authorization: req.headers.get("authorization"),
    });
  },
};

export async function startMemoryPlatform(
  options: MemoryPlatformOptions = {},
): Promise<MemoryPlatform> {
  const dir = await Deno.makeTempDir({ prefix: "f2s-memory-" });
  const config = parseConfig(options.config ?? "", "test config", {});
  const events = createEventLog();
  const runtime = createMemoryRuntime({ app: options.app ?? (() => echo), events });
  const store = createMemoryStore({ functions: options.functions, check: runtime.check });
  const platform = createPlatform({
    config,
    store,
    runtime,
    events,
    metrics: createMetrics({ processMetrics: false }),
    auth: await createAuth(config.auth),
    asyncPath: `${dir}/async.db`,
  });
  return {
    platform,
    api: asFetch(platform.handler),
    runtime,
    store,
    events,
    async stop() {
      await platform.shutdown(1000);
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** A Function manifest with the test's endpoint and replica bounds. */
export function manifest(
  name: string,
  target: Record<string, unknown> = {},
  spec: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    apiVersion: "f2s.opensight.ch/v1alpha1",
    kind: "Function",
    metadata: { name },
    spec: { endpoint: `/${name}`, method: "ANY", ...spec },
    target: { containerImage: `test/${name}`, minReplicas: 0, maxReplicas: 2, ...target },
  };
}

/** JSON request options. */
export function json(method: string, body: unknown, headers: Record<string, string> = {}) {
  return {
    method,
    body: JSON.stringify(body),
    headers: { "content-type": "application/json", ...headers },
  };
}
