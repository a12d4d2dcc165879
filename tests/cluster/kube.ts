/**
 * A small Kubernetes API client for the test cluster: requests and watches over fetch with
 * the kubeconfig's client certificate (Deno.createHttpClient), which works the same under
 * every Deno version without Node's http/tls emulation. Used by the process kubelet and the
 * cluster tests; product code uses whatever its own issue chooses.
 */

import { parse as parseYaml } from "yaml";

// deno-lint-ignore no-explicit-any
export type KubeObject = Record<string, any>;

export interface KubeCredentials {
  server: string;
  ca: string;
  cert: string;
  key: string;
}

/** An API error with the status, the request and the server's message. */
export class KubeError extends Error {
  constructor(
    readonly status: number,
    readonly method: string,
    readonly path: string,
    readonly body: KubeObject | string,
  ) {
    const reason = typeof body === "string" ? body.slice(0, 300) : body.message ?? body.reason;
    super(`${method} ${path}: ${status} ${reason}`);
  }
}

export interface WatchEvent {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: KubeObject;
}

export interface KubeClient {
  readonly server: string;
  request(
    method: string,
    path: string,
    body?: unknown,
    contentType?: string,
  ): Promise<KubeObject>;
  get(path: string): Promise<KubeObject>;
  /** GET that answers undefined for 404. */
  find(path: string): Promise<KubeObject | undefined>;
  create(path: string, body: unknown): Promise<KubeObject>;
  /** Strategic merge patch unless `type` says otherwise ("merge", "json", "apply"). */
  patch(path: string, body: unknown, type?: PatchType): Promise<KubeObject>;
  delete(path: string, options?: unknown): Promise<KubeObject | undefined>;
  /**
   * Watches `path` (a collection URL with its query) from `resourceVersion`, calling `onEvent`
   * for each event until the server closes the stream or `signal` aborts.
   */
  watch(
    path: string,
    resourceVersion: string,
    onEvent: (event: WatchEvent) => void | Promise<void>,
    signal?: AbortSignal,
  ): Promise<void>;
  close(): void;
}

export type PatchType = "strategic" | "merge" | "json" | "apply";

const PATCH_CONTENT_TYPES: Record<PatchType, string> = {
  strategic: "application/strategic-merge-patch+json",
  merge: "application/merge-patch+json",
  json: "application/json-patch+json",
  apply: "application/apply-patch+yaml",
};

/** Reads the current context's server and client credentials from a kubeconfig file. */
export function readKubeconfig(path: string): KubeCredentials {
  const config = parseYaml(Deno.readTextFileSync(path)) as KubeObject;
  const contextName = config["current-context"];
  const context = config.contexts?.find((c: KubeObject) => c.name === contextName)?.context;
  if (!context) throw new Error(`${path}: current-context "${contextName}" not found`);
  const cluster = config.clusters?.find((c: KubeObject) => c.name === context.cluster)?.cluster;
  const user = config.users?.find((u: KubeObject) => u.name === context.user)?.user;
  if (!cluster?.server) throw new Error(`${path}: cluster "${context.cluster}" has no server`);
  if (!user) throw new Error(`${path}: user "${context.user}" not found`);
  const dir = path.replace(/[^/]*$/, "");
  const material = (data: string | undefined, file: string | undefined, what: string) => {
    if (data) return new TextDecoder().decode(decodeBase64(data));
    if (file) return Deno.readTextFileSync(file.startsWith("/") ? file : dir + file);
    throw new Error(`${path}: ${what} missing (only client certificates are supported)`);
  };
  return {
    server: cluster.server.replace(/\/$/, ""),
    ca: material(
      cluster["certificate-authority-data"],
      cluster["certificate-authority"],
      "certificate-authority",
    ),
    cert: material(user["client-certificate-data"], user["client-certificate"], "client cert"),
    key: material(user["client-key-data"], user["client-key"], "client key"),
  };
}

/** Kubeconfig text for a bearer token (a service account's, as pods get them). */
export function tokenKubeconfig(o: {
  server: string;
  /** The cluster's CA, PEM. */
  ca: string;
  user: string;
  token: string;
  namespace: string;
}): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{
      name: "cluster",
      cluster: { server: o.server, "certificate-authority-data": btoa(o.ca) },
    }],
    users: [{ name: o.user, user: { token: o.token } }],
    contexts: [{
      name: o.user,
      context: { cluster: "cluster", user: o.user, namespace: o.namespace },
    }],
    "current-context": o.user,
  });
}

function decodeBase64(data: string): Uint8Array {
  const bin = atob(data.replace(/\s+/g, ""));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/** A client for the kubeconfig at `path` (or already-read credentials). */
export function kubeClient(source: string | KubeCredentials): KubeClient {
  const creds = typeof source === "string" ? readKubeconfig(source) : source;
  const http = Deno.createHttpClient({ caCerts: [creds.ca], cert: creds.cert, key: creds.key });

  async function request(
    method: string,
    path: string,
    body?: unknown,
    contentType = "application/json",
  ): Promise<KubeObject> {
    const res = await fetch(creds.server + path, {
      method,
      client: http,
      headers: body === undefined
        ? { accept: "application/json" }
        : { accept: "application/json", "content-type": contentType },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    let parsed: KubeObject | string = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // Not JSON (e.g. /readyz): keep the text for the error or the caller.
    }
    if (!res.ok) throw new KubeError(res.status, method, path, parsed);
    return typeof parsed === "string" ? { text: parsed } : parsed;
  }

  return {
    server: creds.server,
    request,
    get: (path) => request("GET", path),
    async find(path) {
      try {
        return await request("GET", path);
      } catch (e) {
        if (e instanceof KubeError && e.status === 404) return undefined;
        throw e;
      }
    },
    create: (path, body) => request("POST", path, body),
    patch: (path, body, type = "strategic") =>
      request("PATCH", path, body, PATCH_CONTENT_TYPES[type]),
    async delete(path, options) {
      try {
        return await request("DELETE", path, options);
      } catch (e) {
        if (e instanceof KubeError && e.status === 404) return undefined;
        throw e;
      }
    },
    async watch(path, resourceVersion, onEvent, signal) {
      const sep = path.includes("?") ? "&" : "?";
      const url = `${creds.server}${path}${sep}watch=1&allowWatchBookmarks=true` +
        `&resourceVersion=${encodeURIComponent(resourceVersion)}&timeoutSeconds=300`;
      const res = await fetch(url, { client: http, signal });
      if (!res.ok || !res.body) {
        const text = await res.text();
        throw new KubeError(res.status, "WATCH", path, text);
      }
      const lines = res.body.pipeThrough(new TextDecoderStream()).pipeThrough(splitLines());
      for await (const line of lines) {
        if (!line.trim()) continue;
        await onEvent(JSON.parse(line) as WatchEvent);
      }
    },
    close: () => http.close(),
  };
}

function splitLines(): TransformStream<string, string> {
  let buffer = "";
  return new TransformStream({
    transform(chunk, controller) {
      buffer += chunk;
      let i;
      while ((i = buffer.indexOf("\n")) >= 0) {
        controller.enqueue(buffer.slice(0, i));
        buffer = buffer.slice(i + 1);
      }
    },
    flush(controller) {
      if (buffer) controller.enqueue(buffer);
    },
  });
}

/**
 * Keeps calling `watch` from the latest resourceVersion: lists first (calling `onList` with
 * the items), then watches, re-listing when the server says the version is too old (410).
 * Returns when `signal` aborts.
 */
export async function listAndWatch(
  client: KubeClient,
  path: string,
  handlers: {
    onList(items: KubeObject[]): void | Promise<void>;
    onEvent(event: WatchEvent): void | Promise<void>;
    onError?(error: unknown): void;
  },
  signal: AbortSignal,
): Promise<void> {
  let resourceVersion = "";
  while (!signal.aborted) {
    try {
      if (!resourceVersion) {
        const list = await client.get(path);
        resourceVersion = list.metadata.resourceVersion;
        await handlers.onList(list.items ?? []);
      }
      await client.watch(path, resourceVersion, async (event) => {
        if (event.type === "ERROR") {
          // 410 Gone: the version left etcd's window; list again.
          if (event.object?.code === 410) resourceVersion = "";
          throw new KubeError(event.object?.code ?? 500, "WATCH", path, event.object);
        }
        const rv = event.object?.metadata?.resourceVersion;
        if (rv) resourceVersion = rv;
        if (event.type !== "BOOKMARK") await handlers.onEvent(event);
      }, signal);
    } catch (e) {
      if (signal.aborted) return;
      if (e instanceof KubeError && e.status === 410) resourceVersion = "";
      handlers.onError?.(e);
      await sleep(500, signal);
    }
  }
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
