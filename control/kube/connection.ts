/**
 * Where the Kubernetes API is and how to prove who we are: read from a kubeconfig file (a
 * laptop, `--kubeconfig` or `KUBECONFIG`) or from the pod's service account (in cluster).
 * Supports client certificates, bearer tokens (inline, from a file, or from an `exec`
 * credential plugin) and CA bundles; tokens are re-read so rotated credentials keep working.
 */

import { dirname, isAbsolute, join } from "node:path";
import { parse as parseYaml } from "yaml";

/** The files Kubernetes mounts into every pod that has a service account. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

export interface Connection {
  /** API server base URL without a trailing slash. */
  server: string;
  /** PEM CA bundle that signs the server's certificate (none: the system store). */
  ca?: string;
  /** PEM client certificate and key (client-certificate authentication). */
  cert?: string;
  key?: string;
  /** The bearer token to send now, if the credential is a token. */
  token?: () => Promise<string | undefined>;
  /** The namespace the kubeconfig context or the service account names, if any. */
  namespace?: string;
  /** Where the settings came from, for messages ("kubeconfig /x (context y)", "in-cluster"). */
  source: string;
}

export class ConnectionError extends Error {}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function decodeBase64(data: string): string {
  const bin = atob(data.replace(/\s+/g, ""));
  return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
}

function named(list: unknown, name: unknown, what: string, source: string): Obj {
  const entry = Array.isArray(list) ? list.find((e) => isObj(e) && e.name === name) : undefined;
  if (!isObj(entry)) throw new ConnectionError(`${source}: ${what} "${name}" not found`);
  return entry;
}

/**
 * Reads the `context` (default: current-context) of the kubeconfig at `path`. File
 * references inside it are relative to the file, as kubectl reads them.
 */
export function connectionFromKubeconfig(path: string, context?: string): Connection {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new ConnectionError(`cannot read kubeconfig ${path}: ${(e as Error).message}`);
  }
  let config: unknown;
  try {
    config = parseYaml(text);
  } catch (e) {
    throw new ConnectionError(`kubeconfig ${path} is not valid YAML: ${(e as Error).message}`);
  }
  if (!isObj(config)) throw new ConnectionError(`kubeconfig ${path} is empty`);
  const contextName = context ?? config["current-context"];
  if (!contextName) {
    throw new ConnectionError(`kubeconfig ${path} has no current-context; pass --context`);
  }
  const source = `kubeconfig ${path} (context ${contextName})`;
  const ctx = named(config.contexts, contextName, "context", `kubeconfig ${path}`).context;
  if (!isObj(ctx)) throw new ConnectionError(`${source}: the context is empty`);
  const cluster = named(config.clusters, ctx.cluster, "cluster", source).cluster;
  if (!isObj(cluster) || typeof cluster.server !== "string") {
    throw new ConnectionError(`${source}: cluster "${ctx.cluster}" has no server`);
  }
  const user = ctx.user === undefined ? {} : named(config.users, ctx.user, "user", source).user;
  if (!isObj(user)) throw new ConnectionError(`${source}: user "${ctx.user}" is empty`);
  const base = dirname(path);
  const file = (p: string) => (isAbsolute(p) ? p : join(base, p));
  const material = (data: unknown, ref: unknown, what: string): string | undefined => {
    if (typeof data === "string" && data) return decodeBase64(data);
    if (typeof ref === "string" && ref) {
      try {
        return Deno.readTextFileSync(file(ref));
      } catch (e) {
        throw new ConnectionError(`${source}: cannot read ${what} ${ref}: ${(e as Error).message}`);
      }
    }
    return undefined;
  };
  if (cluster["insecure-skip-tls-verify"] === true) {
    throw new ConnectionError(
      `${source}: insecure-skip-tls-verify is not supported; give the cluster's certificate-authority`,
    );
  }
  const conn: Connection = {
    server: cluster.server.replace(/\/+$/, ""),
    ca: material(cluster["certificate-authority-data"], cluster["certificate-authority"], "CA"),
    cert: material(
      user["client-certificate-data"],
      user["client-certificate"],
      "client certificate",
    ),
    key: material(user["client-key-data"], user["client-key"], "client key"),
    namespace: typeof ctx.namespace === "string" ? ctx.namespace : undefined,
    source,
  };
  if (Boolean(conn.cert) !== Boolean(conn.key)) {
    throw new ConnectionError(`${source}: a client certificate needs its key and vice versa`);
  }
  if (typeof user.token === "string" && user.token) {
    const token = user.token;
    conn.token = () => Promise.resolve(token);
  } else if (typeof user.tokenFile === "string" && user.tokenFile) {
    conn.token = fileToken(file(user.tokenFile));
  } else if (isObj(user.exec)) {
    conn.token = execToken(user.exec, source);
  } else if (user["auth-provider"] !== undefined || user.username !== undefined) {
    throw new ConnectionError(
      `${source}: only client certificates, tokens, token files and exec plugins are supported`,
    );
  }
  return conn;
}

/** The pod's own service account, as every in-cluster client reads it. */
export function inClusterConnection(
  env: Record<string, string | undefined> = Deno.env.toObject(),
  dir = SERVICE_ACCOUNT_DIR,
): Connection {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT ?? "443";
  if (!host) {
    throw new ConnectionError(
      "not running in a cluster (KUBERNETES_SERVICE_HOST is not set) and no kubeconfig given: " +
        "pass --kubeconfig or set KUBECONFIG",
    );
  }
  let ca: string;
  try {
    ca = Deno.readTextFileSync(`${dir}/ca.crt`);
    Deno.statSync(`${dir}/token`);
  } catch (e) {
    throw new ConnectionError(`service account files missing in ${dir}: ${(e as Error).message}`);
  }
  let namespace: string | undefined;
  try {
    namespace = Deno.readTextFileSync(`${dir}/namespace`).trim() || undefined;
  } catch {
    // Optional: the namespace file exists in pods, not necessarily elsewhere.
  }
  const hostPart = host.includes(":") ? `[${host}]` : host;
  return {
    server: `https://${hostPart}:${port}`,
    ca,
    token: fileToken(`${dir}/token`),
    namespace,
    source: `in-cluster service account (${dir})`,
  };
}

/**
 * The connection `f2s serve` uses: `--kubeconfig` (or `KUBECONFIG`, first existing file of
 * the list) when given, else the in-cluster service account.
 */
export function resolveConnection(
  opts: { kubeconfig?: string; context?: string },
  env: Record<string, string | undefined> = Deno.env.toObject(),
): Connection {
  if (opts.kubeconfig) {
    const files = opts.kubeconfig.split(":").filter(Boolean);
    const found = files.find((f) => {
      try {
        return Deno.statSync(f).isFile;
      } catch {
        return false;
      }
    });
    if (!found) throw new ConnectionError(`kubeconfig not found: ${opts.kubeconfig}`);
    return connectionFromKubeconfig(found, opts.context);
  }
  return inClusterConnection(env);
}

/** A token read from a file, re-read every minute (kubelets rotate projected tokens). */
function fileToken(path: string): () => Promise<string | undefined> {
  let cached: string | undefined;
  let readAt = 0;
  return async () => {
    if (cached === undefined || Date.now() - readAt > 60_000) {
      try {
        cached = (await Deno.readTextFile(path)).trim();
        readAt = Date.now();
      } catch (e) {
        if (cached === undefined) {
          throw new ConnectionError(`cannot read token file ${path}: ${(e as Error).message}`);
        }
      }
    }
    return cached;
  };
}

/**
 * A token from a kubeconfig `exec` plugin (client.authentication.k8s.io ExecCredential),
 * kept until its expiry. Plugins that return client certificates are not supported.
 */
function execToken(exec: Obj, source: string): () => Promise<string | undefined> {
  const command = exec.command;
  if (typeof command !== "string" || !command) {
    throw new ConnectionError(`${source}: exec plugin has no command`);
  }
  const args = Array.isArray(exec.args) ? exec.args.map(String) : [];
  const env: Record<string, string> = {};
  if (Array.isArray(exec.env)) {
    for (const e of exec.env) if (isObj(e)) env[String(e.name)] = String(e.value ?? "");
  }
  let cached: { token: string; expires: number } | undefined;
  return async () => {
    if (cached && Date.now() < cached.expires - 10_000) return cached.token;
    const out = await new Deno.Command(command, {
      args,
      env: {
        ...env,
        KUBERNETES_EXEC_INFO: JSON.stringify({
          apiVersion: exec.apiVersion ?? "client.authentication.k8s.io/v1",
          kind: "ExecCredential",
          spec: { interactive: false },
        }),
      },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output().catch((e) => {
      throw new ConnectionError(`${source}: exec plugin ${command} failed: ${e.message}`);
    });
    if (!out.success) {
      const err = new TextDecoder().decode(out.stderr).trim().slice(0, 500);
      throw new ConnectionError(`${source}: exec plugin ${command} exited ${out.code}: ${err}`);
    }
    let status: Obj | undefined;
    try {
      const parsed = JSON.parse(new TextDecoder().decode(out.stdout));
      status = isObj(parsed) && isObj(parsed.status) ? parsed.status : undefined;
    } catch {
      status = undefined;
    }
    if (!status || typeof status.token !== "string") {
      throw new ConnectionError(`${source}: exec plugin ${command} returned no status.token`);
    }
    const expires = typeof status.expirationTimestamp === "string"
      ? Date.parse(status.expirationTimestamp)
      : Date.now() + 5 * 60_000;
    cached = { token: status.token, expires: Number.isNaN(expires) ? Date.now() : expires };
    return cached.token;
  };
}
