/**
 * A small Kubernetes API client over fetch: JSON requests, server-side apply, status and
 * scale subresources, and watches read as a stream of JSON lines. Authentication is the
 * connection's client certificate (Deno.createHttpClient) or bearer token. It knows nothing
 * about F2S; control/kube's store, runtime and leader election are built on it.
 */

import type { Connection } from "./connection.ts";

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

export function createKubeClient(conn: Connection): KubeClient {
  const http = Deno.createHttpClient({
    caCerts: conn.ca ? [conn.ca] : undefined,
    cert: conn.cert,
    key: conn.key,
  });

  async function headers(extra: Record<string, string>): Promise<Headers> {
    const h = new Headers({ accept: "application/json", "user-agent": "f2s", ...extra });
    const token = await conn.token?.();
    if (token) h.set("authorization", `Bearer ${token}`);
    return h;
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
    const res = await fetch(conn.server + full, {
      method,
      client: http,
      headers: await headers(
        hasBody ? { "content-type": options.contentType ?? "application/json" } : {},
      ),
      body: hasBody ? JSON.stringify(options.body) : undefined,
      signal,
    });
    const text = await res.text();
    let parsed: KubeObject | string = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // Not JSON (e.g. /readyz): keep the text for the error or the caller.
    }
    if (!res.ok) {
      const error = new KubeError(res.status, method, full, parsed);
      const retryAfter = Number(res.headers.get("retry-after"));
      if (retryAfter > 0) error.retryAfterMs = retryAfter * 1000;
      throw error;
    }
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
        const res = await fetch(conn.server + full, {
          client: http,
          headers: await headers({}),
          signal,
        });
        if (!res.ok || !res.body) {
          const text = await res.text();
          let body: KubeObject | string = text;
          try {
            body = JSON.parse(text);
          } catch {
            // keep text
          }
          throw new KubeError(res.status, "WATCH", full, body);
        }
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        try {
          while (true) {
            const { done, value } = await reader.read();
            if (done) break;
            clearTimeout(idle);
            idle = setTimeout(() => stop.abort(new Error("watch idle")), idleMs);
            buffer += value;
            let i;
            while ((i = buffer.indexOf("\n")) >= 0) {
              const line = buffer.slice(0, i).trim();
              buffer = buffer.slice(i + 1);
              if (line) yield JSON.parse(line) as WatchEvent;
            }
          }
        } finally {
          reader.cancel().catch(() => {});
        }
      } finally {
        clearTimeout(idle);
        stop.abort();
      }
    },
    close: () => http.close(),
  };
}
