/**
 * The control plane's HTTP surface on one port: the REST API (`/functions`, `/config`,
 * `/events`, `/health`), invocations (`/invoke/{endpoint}`), `/metrics`, the OpenAPI
 * document and the web UI. Every error is JSON `{error, details}` with a fitting status.
 */

import { type Clock, realClock } from "../../common/clock.ts";
import { stringify as stringifyYaml } from "yaml";
import {
  formatErrors,
  type FunctionDef,
  parseFunction,
  toManifest,
} from "../../common/function.ts";
import { createLogger } from "../../common/log.ts";
import { type ServerHandler, type ServerRequest, targetParts } from "../../common/http1_server.ts";
import {
  errorAnswer,
  errorResponse,
  headerGetter,
  jsonResponse,
  type PlainAnswer,
  REQUEST_ID_HEADER,
  requestIdFrom,
} from "../../common/protocol.ts";
import { fromResponse, toResponse, webHandler } from "../../common/web_bridge.ts";
import type { Dispatcher } from "../../dispatcher/dispatcher.ts";
import { type Config, redactConfig } from "../config.ts";
import type { EventLog } from "../events.ts";
import type { Metrics } from "../metrics.ts";
import type { Runtime } from "../runtime/runtime.ts";
import { type FunctionStore, StoreError } from "../store/store.ts";
import type { AuthGate, Caller } from "../auth/gate.ts";
import { BodyError, readManifest } from "./body.ts";
import { readyCondition } from "./conditions.ts";
import { invokeRefusal } from "../auth/invoke_refusal.ts";
import {
  endpointRefusal,
  localRefusal,
  redactEnv,
  refRefusal,
  type Refusal,
  warningTexts,
} from "./write_rules.ts";
import type { AsyncApi } from "../async/api.ts";
import openapi from "../../docs/openapi.json" with { type: "json" };

export interface ApiDeps {
  config: Config;
  store: FunctionStore;
  runtime: Runtime;
  dispatcher: Dispatcher;
  events: EventLog;
  metrics: Metrics;
  auth: AuthGate;
  /** Extra health reports (e.g. kafka), merged into GET /health. */
  health?: () => Record<string, unknown>;
  /**
   * Readiness for GET /ready: false (503) while this replica cannot do its work, e.g. it has
   * not reached the Kubernetes API for longer than the renew deadline. Default: ready.
   */
  ready?: () => { ready: boolean; reason?: string };
  /** Serves the UI's files for paths the API does not own. */
  ui?: (req: Request, url: URL) => Promise<Response | undefined>;
  /** Asynchronous calls: `/async/invoke/…`, `/calls/{id}`, `/functions/{name}/calls`. */
  async?: AsyncApi;
  version?: string;
  /** For the uptime in GET /health (default: the real one). */
  clock?: Clock;
}

type Target = { pathname: string; search: string };

/** The control plane's whole port: invocations natively, the rest as web routes. */
export type Handler = ServerHandler;

export function createApiHandler(deps: ApiDeps): Handler {
  const log = createLogger("api");
  const clock = deps.clock ?? realClock;
  const started = clock.now();

  function status(fn: FunctionDef) {
    const instances = deps.runtime.instances(fn.name);
    const readyReplicas = instances.filter((i) => i.state === "ready").length;
    const desiredReplicas = deps.runtime.desiredReplicas(fn.name) ?? 0;
    return {
      readyReplicas,
      replicas: instances.filter((i) => i.state !== "gone" && i.state !== "draining").length,
      desiredReplicas,
      inflight: deps.dispatcher.inflight(fn.name),
      invokeUrl: `/invoke${fn.endpoint}`,
      conditions: [
        readyCondition(readyReplicas, desiredReplicas, deps.runtime.failure?.(fn.name)),
      ],
    };
  }

  /** The manifest and status; env values only for a caller who may update the function. */
  function describe(fn: FunctionDef, caller?: Caller) {
    const manifest = deps.store.manifest(fn.name) ?? toManifest(fn);
    const shown = caller && !deps.auth.can(caller, "functions:update", fn.name)
      ? redactEnv(manifest)
      : manifest;
    // The uid is shown even when the manifest does not carry it (f2s dev makes one up).
    const metadata = fn.uid ? { ...shown.metadata, uid: fn.uid } : shown.metadata;
    return { ...shown, metadata, status: status(fn) };
  }

  /**
   * `/functions/{ref}` takes a name or, as the original F2S's API did, a uid: a ref in
   * UUID form is looked up as a uid first (a name may have that form too), any other ref
   * as a name first.
   */
  function nameOf(ref: string): string {
    if (UID_RE.test(ref) || !deps.store.get(ref)) {
      const byUid = deps.store.list().find((f) => f.uid === ref || f.uid === ref.toLowerCase());
      if (byUid) return byUid.name;
    }
    return ref;
  }

  /**
   * Everything a write checks before the store does (validation, renaming, host-level
   * fields, endpoint ownership): the function and the warnings, or the answer refusing it.
   * Dry runs and real writes share it, so a dry run never disagrees with the write.
   */
  function checkWrite(
    caller: Caller,
    manifest: unknown,
    replacing?: string,
  ): { fn: FunctionDef; warnings: string[] } | Response {
    const parsed = parseFunction(manifest);
    if (!parsed.ok) {
      return storeError(new StoreError(400, "invalid function manifest", parsed.errors));
    }
    if (replacing && parsed.fn.name !== replacing) {
      return storeError(
        new StoreError(400, "invalid function manifest", [
          { path: "metadata.name", message: `must be "${replacing}" (renaming is not supported)` },
        ]),
      );
    }
    // A scoped creator learns nothing about names outside its scope (conflicts, owners).
    if (!replacing && !deps.auth.can(caller, "functions:create", parsed.fn.name)) {
      return forbidden("functions:create", parsed.fn.name);
    }
    const previous = replacing ? deps.store.manifest(replacing) : undefined;
    const refusal = localRefusal(deps.auth, caller, parsed.fn, previous) ??
      refRefusal(deps.auth, caller, parsed.fn, previous) ??
      endpointRefusal(deps.auth, caller, parsed.fn, deps.store.list(), replacing);
    if (refusal) return refused(refusal);
    if (!replacing && deps.store.get(parsed.fn.name)) {
      return errorResponse(409, `a function named "${parsed.fn.name}" already exists`);
    }
    return { fn: parsed.fn, warnings: warningTexts(parsed.warnings) };
  }

  /** A validated manifest, normalized, as a write would store it (the UI's preview). */
  function dryRun(req: Request, fn: FunctionDef, warnings: string[]): Response {
    const clean = toManifest(fn);
    const headers = warningHeaders(warnings);
    if (wantsYaml(req)) {
      const res = yamlResponse(clean);
      for (const [k, v] of Object.entries(headers)) res.headers.append(k, v);
      return res;
    }
    return jsonResponse(withWarnings(clean, warnings), 200, headers);
  }

  function storeError(e: unknown): Response {
    if (e instanceof StoreError) {
      const message = Array.isArray(e.details) && e.details.length > 0
        ? `${e.message}: ${formatErrors(e.details)}`
        : e.message;
      return errorResponse(e.status, message, e.details);
    }
    if (e instanceof BodyError) return errorResponse(e.status, e.message);
    log.error("unexpected error", { error: e });
    return errorResponse(500, "internal error", String(e));
  }

  /**
   * `/invoke/{endpoint}`: the hot path, on the plain request as the server parsed it (no
   * Request or Response objects). It awaits only what it must (an authentication that is
   * not instant, the dispatch itself); every needless await is a microtask per request.
   */
  function invoke(req: ServerRequest, url: Target): PlainAnswer | Promise<PlainAnswer> {
    // Authenticate before anything else, so anonymous callers learn nothing about
    // which endpoints exist.
    const caller = deps.auth.authenticate({
      headers: headerGetter(req.headers),
      peer: req.remoteAddress,
    });
    return caller instanceof Promise
      ? caller.then((c) => invokeAs(c, req, url))
      : invokeAs(caller, req, url);
  }

  function invokeAs(
    caller: Caller | Response,
    req: ServerRequest,
    url: Target,
  ): PlainAnswer | Promise<PlainAnswer> {
    if (caller instanceof Response) return fromResponse(caller);
    const path = url.pathname;
    const method = req.method;
    const match = deps.dispatcher.table.match(path.slice("/invoke".length));
    if (!match) {
      return errorAnswer(404, `no function at endpoint "${path.slice("/invoke".length)}"`);
    }
    const { fn, suffix } = match;
    const refusal = invokeRefusal(deps.auth, caller, fn, method);
    if (refusal) return refusal;
    return deps.dispatcher.dispatch(fn, req, {
      requestId: requestIdFrom(headerGetter(req.headers)),
      suffix,
      search: url.search,
      clientAddress: req.remoteAddress,
      source: "http",
      protocol: "http",
      caller: deps.auth.type === "none" ? undefined : { name: caller.name, group: caller.group },
    });
  }

  async function route(req: Request, url: URL): Promise<Response> {
    const path = url.pathname;
    const method = req.method;

    if (path === "/health" || path === "/healthz") {
      return jsonResponse({
        status: "ok",
        runtime: deps.runtime.kind,
        functions: deps.store.list().length,
        uptimeSeconds: Math.round((clock.now() - started) / 1000),
        version: deps.version,
        ...deps.health?.(),
      });
    }
    if (path === "/ready" || path === "/readyz") {
      const r = deps.ready?.() ?? { ready: true };
      return jsonResponse({ status: r.ready ? "ready" : "not ready", ...r }, r.ready ? 200 : 503);
    }
    if (path === "/metrics" && method === "GET") {
      return new Response(await deps.metrics.registry.metrics(), {
        headers: { "content-type": deps.metrics.registry.contentType },
      });
    }
    if (path === "/docs/openapi.json" && method === "GET") return jsonResponse(openapi);

    const authAnswer = await deps.auth.handle(req, url);
    if (authAnswer) return authAnswer;

    if (path === "/functions" || path === "/functions/") {
      if (method === "GET") {
        const caller = await deps.auth.authenticate(req);
        if (caller instanceof Response) return caller;
        // A caller with list rights scoped to some functions sees just those.
        const visible = deps.store.list().filter((fn) =>
          deps.auth.can(caller, "functions:list", fn.name)
        );
        const scoped = scopedGrant(caller, "functions:list");
        if (visible.length === 0 && !deps.auth.can(caller, "functions:list") && !scoped) {
          return forbidden("functions:list");
        }
        return jsonResponse(visible.map((fn) => describe(fn, caller)));
      }
      if (method === "POST") {
        // A grant scoped to some names (functions:create:orders-*) lets the caller in; the
        // name in the manifest decides.
        const caller = await deps.auth.authenticate(req);
        if (caller instanceof Response) return caller;
        if (
          !deps.auth.can(caller, "functions:create") && !scopedGrant(caller, "functions:create")
        ) {
          return forbidden("functions:create");
        }
        try {
          const manifest = await readManifest(req, deps.config.maxManifestBytes);
          const checked = checkWrite(caller, manifest);
          if (checked instanceof Response) return checked;
          if (isDryRun(url)) return dryRun(req, checked.fn, checked.warnings);
          const fn = await deps.store.create(manifest);
          log.info("function created", { function: fn.name, by: caller.name });
          return jsonResponse(withWarnings(describe(fn), checked.warnings), 201, {
            location: `/functions/${fn.name}`,
            ...warningHeaders(checked.warnings),
          });
        } catch (e) {
          return storeError(e);
        }
      }
      return methodNotAllowed("GET, POST");
    }

    const fnPath = /^\/functions\/([^/]+)\/?$/.exec(path);
    if (fnPath) {
      let name: string;
      try {
        name = nameOf(decodeURIComponent(fnPath[1]));
      } catch {
        return errorResponse(400, "the function name in the path is not valid percent-encoding");
      }
      if (method === "GET") {
        const caller = await deps.auth.require(req, "functions:list", name);
        if (caller instanceof Response) return caller;
        const fn = deps.store.get(name);
        if (!fn) return errorResponse(404, `function "${name}" not found`);
        const { status: _, ...manifest } = describe(fn, caller);
        if (wantsYaml(req)) return yamlResponse(manifest);
        return jsonResponse(describe(fn, caller));
      }
      if (method === "PUT") {
        const caller = await deps.auth.require(req, "functions:update", name);
        if (caller instanceof Response) return caller;
        try {
          const manifest = await readManifest(req, deps.config.maxManifestBytes);
          if (!deps.store.get(name)) return errorResponse(404, `function "${name}" not found`);
          const checked = checkWrite(caller, manifest, name);
          if (checked instanceof Response) return checked;
          if (isDryRun(url)) return dryRun(req, checked.fn, checked.warnings);
          const fn = await deps.store.update(name, manifest);
          log.info("function updated", { function: name, by: caller.name });
          return jsonResponse(
            withWarnings(describe(fn), checked.warnings),
            200,
            warningHeaders(checked.warnings),
          );
        } catch (e) {
          return storeError(e);
        }
      }
      if (method === "DELETE") {
        const caller = await deps.auth.require(req, "functions:delete", name);
        if (caller instanceof Response) return caller;
        try {
          await deps.store.delete(name);
          log.info("function deleted", { function: name, by: caller.name });
          return new Response(null, { status: 204 });
        } catch (e) {
          return storeError(e);
        }
      }
      return methodNotAllowed("GET, PUT, DELETE");
    }

    if (path === "/config" && method === "GET") {
      const caller = await deps.auth.require(req, "settings:view");
      if (caller instanceof Response) return caller;
      return jsonResponse(redactConfig(deps.config));
    }
    if (path === "/events" && method === "GET") {
      const caller = await deps.auth.require(req, "settings:view");
      if (caller instanceof Response) return caller;
      const limit = Number(url.searchParams.get("limit") ?? 200);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
        return errorResponse(400, "query parameter limit must be an integer between 1 and 1000");
      }
      return jsonResponse(deps.events.list({
        function: url.searchParams.get("function") ?? undefined,
        type: url.searchParams.get("type") ?? undefined,
        limit,
      }));
    }

    const calls = await deps.async?.route(req, url);
    if (calls) return calls;

    const ui = await deps.ui?.(req, url);
    if (ui) return ui;
    return errorResponse(404, `no route for ${method} ${path}`);
  }

  const internalError = (url: Target, e: unknown) => {
    // A bug must cost one request, never the control plane.
    log.error("request failed", { path: url.pathname, error: e });
    return errorAnswer(500, "internal error", String(e));
  };

  const web = webHandler((req) => {
    const url = new URL(req.url);
    return route(req, url).catch((e) => toResponse(internalError(url, e))).then((response) => {
      if (!response.headers.has(REQUEST_ID_HEADER)) {
        try {
          response.headers.set(REQUEST_ID_HEADER, requestIdFrom(req.headers));
        } catch {
          // immutable headers (a response passed on as it came): nothing to add then
        }
      }
      return response;
    });
  });

  return (req) => {
    let url: Target;
    try {
      url = targetParts(req.target);
    } catch {
      return errorAnswer(400, "bad request target");
    }
    if (url.pathname.startsWith("/invoke/")) {
      try {
        const answer = invoke(req, url);
        return answer instanceof Promise ? answer.catch((e) => internalError(url, e)) : answer;
      } catch (e) {
        return internalError(url, e);
      }
    }
    if (url.pathname.startsWith("/async/invoke/") && deps.async) {
      return deps.async.submit(req, url).catch((e) => internalError(url, e));
    }
    return web(req);
  };
}

const UID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function isDryRun(url: URL): boolean {
  const v = url.searchParams.get("dryRun");
  return v !== null && v !== "false" && v !== "0";
}

function wantsYaml(req: Request): boolean {
  return /application\/(x-)?yaml/.test(req.headers.get("accept") ?? "");
}

function yamlResponse(value: unknown): Response {
  return new Response(stringifyYaml(value), { headers: { "content-type": "application/yaml" } });
}

function forbidden(privilege: string, functionName?: string): Response {
  const scope = functionName ? ` for function "${functionName}"` : "";
  return errorResponse(403, `missing privilege ${privilege}${scope}`, {
    privilege,
    function: functionName,
  });
}

/** Whether the caller holds `privilege` scoped to some function names. */
function scopedGrant(caller: Caller, privilege: string): boolean {
  return caller.privileges.some((p) => p.startsWith(`${privilege}:`));
}

function refused(r: Refusal): Response {
  return errorResponse(r.status, r.message, r.details);
}

/** Adds `warnings` to an answer's body (only when there are some, like Kubernetes). */
function withWarnings<T extends object>(body: T, warnings: string[]): T & { warnings?: string[] } {
  return warnings.length > 0 ? { ...body, warnings } : body;
}

/** RFC 7234 `Warning: 299 - "..."`, as the Kubernetes API sends them. */
function warningHeaders(warnings: string[]): Record<string, string> {
  if (warnings.length === 0) return {};
  return {
    warning: warnings.map((w) =>
      `299 - "${w.replace(/["\\]/g, "'").replace(/[^\x20-\x7e]/g, "?")}"`
    )
      .join(", "),
  };
}

function methodNotAllowed(allow: string): Response {
  return errorResponse(405, `method not allowed; use ${allow}`, undefined, { allow });
}
