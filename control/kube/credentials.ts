/**
 * The two credential kinds where @kubernetes/client-node 2.0.1 falls short of kubectl, as
 * authenticator plugins for its KubeConfig (`addAuthenticator`), so everything else (client
 * certificates, tokens, username/password, auth-provider, TLS, proxies, `as`) stays the
 * library's:
 *
 * - exec credential plugins: the library's ExecAuth keeps the plugin's stderr until the
 *   plugin fails, so a prompt (AKS `kubelogin` printing its device code) hangs silently; it
 *   gives the plugin no stdin and no KUBERNETES_EXEC_INFO, and a burst of requests (every
 *   informer at start) runs the plugin once each. Here stderr is passed through as it comes,
 *   a terminal's stdin is lent when the plugin may be interactive, one run serves everyone
 *   waiting, and a 401 forgets the credential so the next request runs the plugin again.
 * - `tokenFile` (kubectl's key): the library reads only `token-file`, once, untrimmed.
 *   Here the file is re-read every minute (kubelets rotate projected tokens) and trimmed.
 *
 * loadKubeConfig (connection.ts) marks users of these kinds with an `auth-provider` name the
 * library's own authenticators do not claim.
 */

import type { KubeConfig, User } from "@kubernetes/client-node";
import { createLogger } from "../../common/log.ts";

export const EXEC_PROVIDER = "f2s-exec";
export const TOKEN_FILE_PROVIDER = "f2s-token-file";

type Authenticator = Parameters<KubeConfig["addAuthenticator"]>[0];
type RequestOptions = Parameters<Authenticator["applyAuthentication"]>[1];

/** The `exec` section of a kubeconfig user (client.authentication.k8s.io). */
export interface ExecConfig {
  command: string;
  args?: string[];
  env?: { name: string; value: string }[] | null;
  apiVersion?: string;
  installHint?: string;
  interactiveMode?: "Never" | "IfAvailable" | "Always";
}

export class CredentialError extends Error {}

interface Credential {
  token?: string;
  cert?: string;
  key?: string;
  /** Epoch ms after which the plugin runs again (Infinity: until a 401). */
  expires: number;
}

const log = createLogger("kube-credentials");

export interface CredentialPlugins {
  authenticators: Authenticator[];
  /** Forgets cached exec credentials (after a 401); true if there was one to forget. */
  forget(): boolean;
}

/**
 * The authenticators for one KubeConfig. `stderr` receives the plugins' stderr as it comes
 * (default: this process's stderr).
 */
export function credentialPlugins(
  stderr: (chunk: Uint8Array) => void = (c) => Deno.stderr.writeSync(c),
): CredentialPlugins {
  const execCache = new Map<string, Credential | Promise<Credential>>();
  const tokenFiles = new Map<string, { token: string; readAt: number }>();

  const exec: Authenticator = {
    isAuthProvider: (user: User) => user?.authProvider?.name === EXEC_PROVIDER,
    async applyAuthentication(user: User, opts: RequestOptions) {
      // Not `config.exec`: the library's ExecAuth would claim the user by that key.
      const config = user.authProvider.config as { plugin: ExecConfig; kubeconfig: string };
      const key = JSON.stringify(config.plugin);
      let cached = execCache.get(key);
      if (cached === undefined || (!(cached instanceof Promise) && Date.now() >= cached.expires)) {
        cached = runPlugin(config.plugin, config.kubeconfig, stderr);
        execCache.set(key, cached);
        cached.then((c) => execCache.set(key, c), () => execCache.delete(key));
      }
      const cred = await cached;
      if (cred.cert && cred.key) {
        opts.cert = cred.cert;
        opts.key = cred.key;
      }
      if (cred.token) setHeader(opts, "Authorization", `Bearer ${cred.token}`);
    },
  };

  const tokenFile: Authenticator = {
    isAuthProvider: (user: User) => user?.authProvider?.name === TOKEN_FILE_PROVIDER,
    async applyAuthentication(user: User, opts: RequestOptions) {
      const path = user.authProvider.config.path as string;
      let entry = tokenFiles.get(path);
      if (!entry || Date.now() - entry.readAt > 60_000) {
        try {
          entry = { token: (await Deno.readTextFile(path)).trim(), readAt: Date.now() };
          tokenFiles.set(path, entry);
        } catch (e) {
          // A rotation in progress: keep the last token for now.
          if (!entry) {
            throw new CredentialError(`cannot read token file ${path}: ${(e as Error).message}`);
          }
        }
      }
      setHeader(opts, "Authorization", `Bearer ${entry.token}`);
    },
  };

  return {
    authenticators: [exec, tokenFile],
    forget() {
      const had = execCache.size > 0 || tokenFiles.size > 0;
      execCache.clear();
      tokenFiles.clear();
      return had;
    },
  };
}

function setHeader(opts: RequestOptions, name: string, value: string): void {
  // KubeConfig hands authenticators an object (never the array form) to add headers to.
  opts.headers ??= {};
  (opts.headers as Record<string, string>)[name] = value;
}

/** Runs an exec plugin once and reads its ExecCredential. */
async function runPlugin(
  exec: ExecConfig,
  kubeconfig: string,
  stderr: (chunk: Uint8Array) => void,
): Promise<Credential> {
  const what = `exec credential plugin ${exec.command} (${kubeconfig})`;
  const interactive = exec.interactiveMode !== "Never" && Deno.stdin.isTerminal();
  if (exec.interactiveMode === "Always" && !interactive) {
    throw new CredentialError(`${what} needs a terminal (interactiveMode: Always)`);
  }
  const env: Record<string, string> = {
    KUBERNETES_EXEC_INFO: JSON.stringify({
      apiVersion: exec.apiVersion ?? "client.authentication.k8s.io/v1",
      kind: "ExecCredential",
      spec: { interactive },
    }),
  };
  for (const e of exec.env ?? []) env[e.name] = String(e.value ?? "");
  log.info("running exec credential plugin", { command: exec.command, kubeconfig });
  let child;
  try {
    child = new Deno.Command(exec.command, {
      args: exec.args ?? [],
      env,
      stdin: interactive ? "inherit" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    const hint = exec.installHint ? `\n${exec.installHint.trim()}` : "";
    throw new CredentialError(`${what} cannot start: ${(e as Error).message}${hint}`);
  }
  // Passed through as it arrives: a device-code prompt must reach the user now, not after
  // the plugin has given up. The tail is kept for the error message.
  let tail = "";
  const decoder = new TextDecoder();
  const stderrDone = (async () => {
    for await (const chunk of child.stderr) {
      stderr(chunk);
      tail = (tail + decoder.decode(chunk, { stream: true })).slice(-500);
    }
  })();
  const [out, status] = await Promise.all([
    new Response(child.stdout).text(),
    child.status,
    stderrDone,
  ]);
  if (!status.success) {
    throw new CredentialError(`${what} exited with code ${status.code}: ${tail.trim()}`);
  }
  let parsed: { status?: Record<string, unknown> };
  try {
    parsed = JSON.parse(out);
  } catch {
    throw new CredentialError(`${what} printed no ExecCredential JSON: ${out.slice(0, 200)}`);
  }
  const s = parsed?.status ?? {};
  const token = typeof s.token === "string" && s.token ? s.token : undefined;
  const cert = typeof s.clientCertificateData === "string" ? s.clientCertificateData : undefined;
  const key = typeof s.clientKeyData === "string" ? s.clientKeyData : undefined;
  if (!token && !(cert && key)) {
    throw new CredentialError(
      `${what} returned neither status.token nor status.clientCertificateData and clientKeyData`,
    );
  }
  const expiry = typeof s.expirationTimestamp === "string"
    ? Date.parse(s.expirationTimestamp)
    : Infinity;
  // Renewed a little early so a request does not leave with a credential about to expire.
  return { token, cert, key, expires: Number.isNaN(expiry) ? 0 : expiry - 10_000 };
}
