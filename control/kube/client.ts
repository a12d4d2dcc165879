/**
 * The Kubernetes API calls F2S makes: JSON requests on raw paths, server-side apply, status
 * and scale subresources, and watches read as a stream of JSON lines with bookmarks and an
 * idle guard. It knows nothing about F2S; control/kube's store, runtime, informers and leader
 * election are built on it.
 *
 * Connection and authentication are @kubernetes/client-node's: for each request its
 * KubeConfig (connection.ts) gives the headers (bearer token, exec plugin, basic auth, `as`)
 * and the TLS settings (CA, client certificate, tls-server-name, insecure-skip-tls-verify),
 * and its undici dispatcher (with proxy-url) carries the request. This layer stays because
 * the library's typed APIs want one generated class per resource and a model per object,
 * while F2S works on paths and plain JSON (one call for a Function, a Deployment or a
 * Lease), and its Watch has no idle guard, no bookmarks option and no way to resume: a watch
 * that silently stops delivering would leave an informer stale forever. The dispatcher is
 * kept while the TLS material stays the same, so connections are reused.
 */

import { HttpMethod, RequestContext } from "@kubernetes/client-node";
import { Buffer } from "node:buffer";
import type { RequestOptions as HttpsOptions } from "node:https";
import { Agent, type Dispatcher } from "undici";
import { type Connection, ConnectionError, resolveConnection } from "./connection.ts";
import { CredentialError } from "./credentials.ts";

// deno-lint-ignore no-explicit-any
export type KubeObject = Record<string, any>;

export interface WatchEvent {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: KubeObject;
}

export interface Cause {
  field?: string;
  message: string;
}

/** A failed API call: HTTP status, Kubernetes reason, the server's message and causes. */
export class KubeError extends Error {
  readonly reason: string;
  readonly causes: Cause[];
  /** The server's Retry-After, when it sent one. */
  retryAfterMs?: number;
  constructor(
    readonly status: number,
    readonly method: string,
    readonly path: string,
    readonly body: KubeObject | string,
  ) {
    const message = typeof body === "string" ? body.slice(0, 300) : body.message ?? body.reason;
    super(`${method} ${path.replace(/\?.*$/, "")}: ${status} ${message}`);
    this.reason = typeof body === "string" ? "" : body.reason ?? "";
    const causes = typeof body === "string" ? [] : body.details?.causes ?? [];
    this.causes = causes.map((c: KubeObject) => ({ field: c.field, message: String(c.message) }));
  }
  /** The server's own message, without method and path. */
  get serverMessage(): string {
    return typeof this.body === "string" ? this.body : String(this.body.message ?? this.reason);
  }
}

export type PatchType = "merge" | "json" | "strategic" | "apply";

const PATCH_TYPES: Record<PatchType, string> = {
  merge: "application/merge-patch+json",
  json: "application/json-patch+json",
  strategic: "application/strategic-merge-patch+json",
  apply: "application/apply-patch+yaml",
};

export interface RequestOptions {
  body?: unknown;
  contentType?: string;
  query?: Record<string, string | number | boolean | undefined>;
  signal?: AbortSignal;
  /** Per request (default 30 s). */
  timeoutMs?: number;
}

export interface KubeClient {
  readonly server: string;
  request(method: string, path: string, options?: RequestOptions): Promise<KubeObject>;
  get(path: string): Promise<KubeObject>;
  /** GET that answers undefined for 404. */
  find(path: string): Promise<KubeObject | undefined>;
  create(path: string, body: unknown): Promise<KubeObject>;
  /** PUT: replaces the object (its metadata.resourceVersion makes it conditional). */
  replace(path: string, body: unknown): Promise<KubeObject>;
  patch(path: string, body: unknown, type: PatchType): Promise<KubeObject>;
  /** Server-side apply as `fieldManager`, taking over conflicting fields (force). */
  apply(path: string, body: unknown, fieldManager: string): Promise<KubeObject>;
  /** DELETE that answers undefined for 404. */
  delete(path: string, options?: KubeObject): Promise<KubeObject | undefined>;
  /**
   * Watches a collection from `resourceVersion`, yielding events until the server ends the
   * stream, `signal` aborts, or nothing (not even a bookmark) arrives for `idleMs`.
   */
  watch(
    path: string,
    resourceVersion: string,
    options?: { query?: RequestOptions["query"]; signal?: AbortSignal; idleMs?: number },
  ): AsyncGenerator<WatchEvent>;
  close(): void;
}

/** `/api/v1/...` for the core group, `/apis/GROUP/VERSION/...` otherwise. */
export function resourcePath(r: {
  group?: string;
  version: string;
  plural: string;
  namespace?: string;
  name?: string;
  subresource?: string;
}): string {
  let p = r.group ? `/apis/${r.group}/${r.version}` : `/api/${r.version}`;
  if (r.namespace) p += `/namespaces/${encodeURIComponent(r.namespace)}`;
  p += `/${r.plural}`;
  if (r.name) p += `/${encodeURIComponent(r.name)}`;
  if (r.subresource) p += `/${r.subresource}`;
  return p;
}

function withQuery(path: string, query: RequestOptions["query"]): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v));
  const qs = params.toString();
  if (!qs) return path;
  return path + (path.includes("?") ? "&" : "?") + qs;
}

/** The connection's dispatcher and headers for one request, made by client-node. */
function createTransport(conn: Connection) {
  const url = new URL(conn.server);
  let current: { key: string; dispatcher: Promise<Dispatcher> } | undefined;
  return {
    origin: url.origin,
    prefix: url.pathname.replace(/\/+$/, ""),
    async prepare(): Promise<
      { dispatcher: Dispatcher; headers: Record<string, string | string[]> }
    > {
      const opts: HttpsOptions = {};
      await conn.config.applyToHTTPSOptions(opts);
      const headers: Record<string, string | string[]> = {
        ...(opts.headers as Record<string, string>),
        ...conn.headers,
      };
      if (opts.auth) headers.Authorization = `Basic ${Buffer.from(opts.auth).toString("base64")}`;
      // New TLS material (an exec plugin's renewed client certificate): a new dispatcher.
      const key = [opts.ca, opts.cert, opts.key, opts.servername, opts.rejectUnauthorized]
        .map(String).join("\0");
      if (current?.key !== key) {
        const old = current;
        current = { key, dispatcher: makeDispatcher(conn, opts) };
        // Requests still running on the old one finish; then it closes.
        old?.dispatcher.then((d) => d.close()).catch(() => {});
      }
      return { dispatcher: await current.dispatcher, headers };
    },
    close() {
      current?.dispatcher.then((d) => d.destroy()).catch(() => {});
      current = undefined;
    },
  };
}

/**
 * The undici dispatcher for these TLS settings, as client-node makes it. For a direct
 * connection F2S makes the same Agent itself (from the library's own option mapping) to
 * turn HTTP/2 off when a header has several values: undici's HTTP/2 joins them with commas,
 * and the API server would then see `as-groups: [a, b]` as one group "a, b".
 */
async function makeDispatcher(conn: Connection, opts: HttpsOptions): Promise<Dispatcher> {
  const { ca, cert, key, rejectUnauthorized, servername } = opts;
  const options = conn.config.createDispatcherOptions(conn.config.getCurrentCluster(), {
    ca,
    cert,
    key,
    rejectUnauthorized,
    servername,
  });
  const allowH2 = !Object.values(conn.headers).some((v) => Array.isArray(v) && v.length > 1);
  if (options.type === "agent") return new Agent({ connect: options.connect, allowH2 });
  if (options.type === "none") return new Agent({ allowH2 });
  // Proxies (HTTP CONNECT, SOCKS): the library's own dispatcher.
  const ctx = new RequestContext(conn.server, HttpMethod.GET);
  await conn.config.applySecurityAuthentication(ctx);
  return ctx.getDispatcher() as Dispatcher;
}

/** A network or TLS failure, with where F2S tried to connect and why it chose that. */
function unreachable(conn: Connection, method: string, path: string, e: unknown): Error {
  const err = e as Error & { code?: string };
  const detail = err.code && !err.message.includes(err.code)
    ? `${err.message} (${err.code})`
    : err.message;
  return new Error(
    `${method} ${path.replace(/\?.*$/, "")}: cannot reach the API server ${conn.server} ` +
      `(${conn.source}): ${detail}`,
    { cause: e },
  );
}

/**
 * Headers as undici's flat [name, value, ...] list: a list value becomes one header per item
 * (Impersonate-Group once per group); the object form would join them with commas.
 */
function flatHeaders(headers: Record<string, string | string[]>): string[] {
  return Object.entries(headers).flatMap(([name, value]) =>
    (Array.isArray(value) ? value : [value]).flatMap((v) => [name, v])
  );
}

async function readJson(body: { text(): Promise<string> }): Promise<KubeObject | string> {
  const text = await body.text();
  try {
    return JSON.parse(text);
  } catch {
    // Not JSON (e.g. /readyz): keep the text for the error or the caller.
    return text;
  }
}

export function createKubeClient(conn: Connection): KubeClient {
  const transport = createTransport(conn);

  function failure(
    status: number,
    method: string,
    full: string,
    body: KubeObject | string,
    headers: Record<string, string | string[] | undefined>,
  ): KubeError {
    const error = new KubeError(status, method, full, body);
    const retryAfter = Number(headers["retry-after"]);
    if (retryAfter > 0) error.retryAfterMs = retryAfter * 1000;
    if (status === 401) error.message += ` (credentials from ${conn.source})`;
    return error;
  }

  async function send(
    method: string,
    full: string,
    init: { body?: string; contentType?: string; signal: AbortSignal; watch?: boolean },
  ) {
    let prepared;
    try {
      prepared = await transport.prepare();
    } catch (e) {
      // Credential plugins say which kubeconfig they come from; the library does not.
      if (e instanceof CredentialError) throw e;
      throw new Error(
        `${method} ${full.replace(/\?.*$/, "")}: ${conn.source}: ${(e as Error).message}`,
        {
          cause: e,
        },
      );
    }
    const { dispatcher, headers } = prepared;
    try {
      return await dispatcher.request({
        origin: transport.origin,
        path: transport.prefix + full,
        method: method as Dispatcher.HttpMethod,
        headers: flatHeaders({
          ...headers,
          accept: "application/json",
          "user-agent": "f2s",
          ...(init.contentType ? { "content-type": init.contentType } : {}),
        }),
        body: init.body,
        signal: init.signal,
        // A watch is quiet between events; its idle guard below is the limit.
        ...(init.watch ? { bodyTimeout: 0 } : {}),
      });
    } catch (e) {
      if (init.signal.aborted) throw init.signal.reason ?? e;
      throw unreachable(conn, method, full, e);
    }
  }

  async function request(
    method: string,
    path: string,
    options: RequestOptions = {},
  ): Promise<KubeObject> {
    for (let attempt = 1;; attempt++) {
      try {
        return await requestOnce(method, path, options);
      } catch (e) {
        // 401 once: the credential may have expired or rotated; forget it and fetch a new
        // one (an exec plugin runs again, a token file is re-read), as client-go does.
        if (e instanceof KubeError && e.status === 401 && attempt === 1 && conn.forget()) {
          continue;
        }
        // 429: not handled at all (e.g. a new resource's storage still starting): safe to
        // send again after the pause the server asks for.
        if (!(e instanceof KubeError && e.status === 429) || attempt >= 5) throw e;
        await new Promise((r) => setTimeout(r, Math.min(e.retryAfterMs ?? 1000, 5000)));
      }
    }
  }

  async function requestOnce(
    method: string,
    path: string,
    options: RequestOptions,
  ): Promise<KubeObject> {
    const full = withQuery(path, options.query);
    const timeout = AbortSignal.timeout(options.timeoutMs ?? 30_000);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    const hasBody = options.body !== undefined;
    const res = await send(method, full, {
      body: hasBody ? JSON.stringify(options.body) : undefined,
      contentType: hasBody ? options.contentType ?? "application/json" : undefined,
      signal,
    });
    const parsed = await readJson(res.body);
    if (res.statusCode >= 300) throw failure(res.statusCode, method, full, parsed, res.headers);
    return typeof parsed === "string" ? { text: parsed } : parsed;
  }

  const orUndefinedOn404 = async (p: Promise<KubeObject>) => {
    try {
      return await p;
    } catch (e) {
      if (e instanceof KubeError && e.status === 404) return undefined;
      throw e;
    }
  };

  return {
    server: conn.server,
    request,
    get: (path) => request("GET", path),
    find: (path) => orUndefinedOn404(request("GET", path)),
    create: (path, body) => request("POST", path, { body }),
    replace: (path, body) => request("PUT", path, { body }),
    patch: (path, body, type) => request("PATCH", path, { body, contentType: PATCH_TYPES[type] }),
    apply: (path, body, fieldManager) =>
      request("PATCH", path, {
        body,
        contentType: PATCH_TYPES.apply,
        query: { fieldManager, force: true },
      }),
    delete: (path, options) => orUndefinedOn404(request("DELETE", path, { body: options })),
    async *watch(path, resourceVersion, options = {}) {
      const idleMs = options.idleMs ?? 330_000;
      const full = withQuery(path, {
        ...options.query,
        watch: 1,
        allowWatchBookmarks: true,
        resourceVersion,
        // The server ends the watch before the idle guard fires; we then resume.
        timeoutSeconds: Math.max(1, Math.floor(idleMs / 1000) - 30),
      });
      const stop = new AbortController();
      const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
      let idle = setTimeout(() => stop.abort(new Error("watch idle")), idleMs);
      try {
        const res = await send("GET", full, { signal, watch: true });
        if (res.statusCode >= 300) {
          if (res.statusCode === 401) conn.forget();
          throw failure(res.statusCode, "WATCH", full, await readJson(res.body), res.headers);
        }
        const decoder = new TextDecoder();
        let buffer = "";
        try {
          for await (const chunk of res.body) {
            clearTimeout(idle);
            idle = setTimeout(() => stop.abort(new Error("watch idle")), idleMs);
            buffer += decoder.decode(chunk, { stream: true });
            let i;
            while ((i = buffer.indexOf("\n")) >= 0) {
              const line = buffer.slice(0, i).trim();
              buffer = buffer.slice(i + 1);
              if (line) yield JSON.parse(line) as WatchEvent;
            }
          }
        } finally {
          res.body.destroy();
        }
      } finally {
        clearTimeout(idle);
        stop.abort();
      }
    },
    close: () => transport.close(),
  };
}

/**
 * The connection and client a command's `--kubeconfig`/`--context` flags select, or the
 * message saying why there are none (for the command to print and exit with); other errors
 * are thrown.
 */
export function commandClient(
  flags: { kubeconfig?: string; context?: string },
): { connection: Connection; client: KubeClient } | string {
  try {
    const connection = resolveConnection(flags);
    return { connection, client: createKubeClient(connection) };
  } catch (e) {
    if (e instanceof ConnectionError) return e.message;
    throw e;
  }
}
