/**
 * Where the Kubernetes API is and as whom F2S calls it, as a @kubernetes/client-node
 * KubeConfig: the library parses kubeconfig files, resolves their relative paths, and makes
 * every request's TLS settings and credentials (client certificates, tokens,
 * username/password, auth-provider, insecure-skip-tls-verify, tls-server-name, proxy-url,
 * `as`; see client.ts). Order: `--kubeconfig`, else `KUBECONFIG`, else the pod's service
 * account, else ~/.kube/config (controller-runtime's order: a replica in a pod uses its
 * service account even if its image has a ~/.kube/config).
 *
 * What F2S adds, because the library gets it wrong for a server:
 * - merging a list of files as kubectl does (the first file to name a cluster, user, context
 *   or current-context wins, missing files are skipped); the library's loadFromDefault lets
 *   the last file's current-context win, throws on a name two files define, and fails on a
 *   missing file;
 * - `tokenFile` and exec plugins (credentials.ts), exec commands relative to their file;
 * - impersonation beyond `as` (`as-groups`, `as-uid`, `as-user-extra`), which the library
 *   drops, as headers for client.ts to send;
 * - the service account from any folder, so tests can use one (the library's
 *   loadFromCluster reads fixed paths).
 */

import { type Cluster, type Context, KubeConfig, type User } from "@kubernetes/client-node";
import { dirname, isAbsolute, join } from "node:path";
import { parse as parseYaml } from "yaml";
import { credentialPlugins, EXEC_PROVIDER, TOKEN_FILE_PROVIDER } from "./credentials.ts";

/** The files Kubernetes mounts into every pod that has a service account. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

export interface Connection {
  /** The selected context's cluster and user; it makes each request's TLS and auth. */
  config: KubeConfig;
  /** API server base URL without a trailing slash. */
  server: string;
  /** The namespace the kubeconfig context or the service account names, if any. */
  namespace?: string;
  /** Where the settings came from, for messages ("kubeconfig /x (context y)", "in-cluster"). */
  source: string;
  /** Impersonation headers the library does not send (Impersonate-Group, -Uid, -Extra-*). */
  headers: Record<string, string | string[]>;
  /** Forgets cached credentials (after a 401); true when there were any to renew. */
  forget(): boolean;
}

export class ConnectionError extends Error {}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

interface LoadedFile {
  path: string;
  config: KubeConfig;
  /** Impersonation headers per user name. */
  headers: Map<string, Record<string, string | string[]>>;
}

/** One kubeconfig file, parsed by the library, with F2S's additions to its users. */
function loadFile(path: string): LoadedFile {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new ConnectionError(`cannot read kubeconfig ${path}: ${(e as Error).message}`);
  }
  let raw: unknown;
  const config = new KubeConfig();
  try {
    raw = parseYaml(text);
    if (!isObj(raw)) throw new Error("the file is empty");
    config.loadFromString(text);
  } catch (e) {
    throw new ConnectionError(`kubeconfig ${path}: ${(e as Error).message}`);
  }
  const base = dirname(path);
  config.makePathsAbsolute(base);
  const rawUsers = new Map<string, Obj>();
  for (const u of Array.isArray(raw.users) ? raw.users : []) {
    if (isObj(u) && isObj(u.user)) rawUsers.set(String(u.name), u.user);
  }
  const headers = new Map<string, Record<string, string | string[]>>();
  config.users = config.users.map((user): User => {
    const extra = rawUsers.get(user.name) ?? {};
    headers.set(user.name, impersonationHeaders(extra, `kubeconfig ${path} user ${user.name}`));
    if (user.exec) {
      const command = String(user.exec.command ?? "");
      if (!command) {
        throw new ConnectionError(`kubeconfig ${path}: user ${user.name}: exec has no command`);
      }
      // kubectl's rule: a command with a slash is relative to the kubeconfig, a bare name
      // is looked up in PATH.
      const resolved = command.includes("/") && !isAbsolute(command)
        ? join(base, command)
        : command;
      return {
        ...user,
        exec: undefined,
        authProvider: {
          name: EXEC_PROVIDER,
          config: { plugin: { ...user.exec, command: resolved }, kubeconfig: path },
        },
      };
    }
    if (!user.token && !user.authProvider && typeof extra.tokenFile === "string") {
      const file = isAbsolute(extra.tokenFile) ? extra.tokenFile : join(base, extra.tokenFile);
      return { ...user, authProvider: { name: TOKEN_FILE_PROVIDER, config: { path: file } } };
    }
    return user;
  });
  return { path, config, headers };
}

function impersonationHeaders(user: Obj, where: string): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = {};
  const groups = user["as-groups"];
  if (groups !== undefined) {
    if (!Array.isArray(groups)) throw new ConnectionError(`${where}: as-groups must be a list`);
    headers["Impersonate-Group"] = groups.map(String);
  }
  if (typeof user["as-uid"] === "string") headers["Impersonate-Uid"] = user["as-uid"];
  const extra = user["as-user-extra"];
  if (isObj(extra)) {
    for (const [k, v] of Object.entries(extra)) {
      headers[`Impersonate-Extra-${encodeURIComponent(k)}`] = Array.isArray(v)
        ? v.map(String)
        : String(v);
    }
  }
  if (Object.keys(headers).length && user.as === undefined) {
    throw new ConnectionError(`${where}: as-groups, as-uid and as-user-extra need "as"`);
  }
  return headers;
}

/** Entries of every file by name, the first file to define a name winning (kubectl's rule). */
function firstByName<T extends { name: string }>(lists: T[][]): T[] {
  const seen = new Map<string, T>();
  for (const list of lists) for (const e of list) if (!seen.has(e.name)) seen.set(e.name, e);
  return [...seen.values()];
}

/**
 * The kubeconfig files `paths` (missing ones skipped, as kubectl skips them), merged, with
 * `context` (default: the first current-context) selected.
 */
export function connectionFromKubeconfig(paths: string | string[], context?: string): Connection {
  const list = typeof paths === "string" ? [paths] : paths;
  const existing = list.filter((p) => {
    try {
      return Deno.statSync(p).isFile;
    } catch {
      return false;
    }
  });
  if (!existing.length) {
    throw new ConnectionError(`cannot read kubeconfig ${list.join(":")}: no such file`);
  }
  const files = existing.map(loadFile);
  const where = `kubeconfig ${existing.join(":")}`;
  const clusters: Cluster[] = firstByName(files.map((f) => f.config.clusters));
  const users: User[] = firstByName(files.map((f) => f.config.users));
  const contexts: Context[] = firstByName(files.map((f) => f.config.contexts));
  const name = context ?? files.map((f) => f.config.currentContext).find(Boolean);
  if (!name) throw new ConnectionError(`${where} has no current-context; pass --context`);
  const ctx = contexts.find((c) => c.name === name);
  if (!ctx) throw new ConnectionError(`${where}: context "${name}" not found`);
  const source = `${where} (context ${name})`;
  const cluster = clusters.find((c) => c.name === ctx.cluster);
  if (!cluster) throw new ConnectionError(`${source}: cluster "${ctx.cluster}" not found`);
  if (ctx.user && !users.some((u) => u.name === ctx.user)) {
    throw new ConnectionError(`${source}: user "${ctx.user}" not found`);
  }
  const headers = files.find((f) => f.config.users.some((u) => u.name === ctx.user))
    ?.headers.get(ctx.user) ?? {};
  return build({ clusters, users, contexts, currentContext: name }, {
    server: cluster.server,
    namespace: ctx.namespace,
    source,
    headers,
  });
}

function build(
  options: { clusters: Cluster[]; users: User[]; contexts: Context[]; currentContext: string },
  rest: Omit<Connection, "config" | "forget">,
): Connection {
  const config = new KubeConfig();
  config.loadFromOptions(options);
  const plugins = credentialPlugins();
  for (const a of plugins.authenticators) config.addAuthenticator(a);
  return { ...rest, server: rest.server.replace(/\/+$/, ""), config, forget: plugins.forget };
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
  try {
    Deno.statSync(`${dir}/ca.crt`);
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
  const server = `https://${host.includes(":") ? `[${host}]` : host}:${port}`;
  const name = "in-cluster";
  return build({
    clusters: [{ name, server, caFile: `${dir}/ca.crt`, skipTLSVerify: false }],
    users: [{
      name,
      authProvider: { name: TOKEN_FILE_PROVIDER, config: { path: `${dir}/token` } },
    }],
    contexts: [{ name, cluster: name, user: name, namespace }],
    currentContext: name,
  }, { server, namespace, source: `in-cluster service account (${dir})`, headers: {} });
}

/**
 * The connection `f2s serve` uses: `--kubeconfig` (a `:` list like `KUBECONFIG`), else
 * `KUBECONFIG`, else the in-cluster service account, else ~/.kube/config.
 */
export function resolveConnection(
  opts: { kubeconfig?: string; context?: string },
  env: Record<string, string | undefined> = Deno.env.toObject(),
): Connection {
  const list = opts.kubeconfig || env.KUBECONFIG;
  if (list) return connectionFromKubeconfig(list.split(":").filter(Boolean), opts.context);
  if (env.KUBERNETES_SERVICE_HOST) return inClusterConnection(env);
  const home = env.HOME ? `${env.HOME}/.kube/config` : undefined;
  if (home) {
    try {
      if (Deno.statSync(home).isFile) return connectionFromKubeconfig(home, opts.context);
    } catch {
      // No such file: nothing left to try.
    }
  }
  throw new ConnectionError(
    "no Kubernetes connection: pass --kubeconfig, set KUBECONFIG, run in a pod with a " +
      `service account, or create ${home ?? "~/.kube/config"}`,
  );
}
