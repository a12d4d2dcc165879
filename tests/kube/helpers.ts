/**
 * What the Kubernetes tests share: whether this machine can run the test cluster, a cluster
 * with F2S's CRD and namespaces, `f2s serve` as a real child process (stopped again, and
 * checked to have exited), and polling with a deadline.
 */

import type { Cluster } from "../cluster/harness.ts";
import type { KubeObject } from "../cluster/kube.ts";
import { sleep } from "../cluster/kube.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
export const CRD_FILE = `${ROOT}crds/functions.f2s.opensight.ch.yaml`;
export const CHART_DIR = `${ROOT}helm`;
export const FIXTURES = new URL("./fixtures/", import.meta.url).pathname;
export const NS = "f2s";
export const CONTAINERS_NS = "f2s-containers";

/** Why this machine cannot run the test cluster, or undefined when it can. */
export async function platformGap(): Promise<string | undefined> {
  if (Deno.build.os !== "linux") return "the test cluster needs Linux network namespaces";
  if (Deno.uid() !== 0) return "the test cluster needs root (ip netns, veth, bridge)";
  const probe = `f2skprobe${Deno.pid}`;
  const out = await new Deno.Command("ip", { args: ["netns", "add", probe] }).output()
    .catch((e) => ({ success: false, stderr: new TextEncoder().encode(String(e)) }));
  if (!out.success) {
    return `cannot create network namespaces: ${new TextDecoder().decode(out.stderr).trim()}`;
  }
  await new Deno.Command("ip", { args: ["netns", "del", probe] }).output();
  return undefined;
}

/** Polls `check` until it returns a value, failing after `timeoutMs` with `what`. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 60_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (e) {
      last = e;
    }
    await sleep(intervalMs);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
}

/** Installs the CRD (waiting until it is served) and creates the two namespaces. */
export async function installCrd(cluster: Cluster): Promise<void> {
  await cluster.kubectl(["apply", "-f", CRD_FILE]);
  await cluster.kubectl([
    "wait",
    "--for=condition=Established",
    "crd/functions.f2s.opensight.ch",
    "--timeout=30s",
  ]);
  for (const ns of [NS, CONTAINERS_NS]) {
    await cluster.kubectl(["create", "namespace", ns]);
  }
}

const named = (collection: string, name?: string) => name ? `${collection}/${name}` : collection;

export const paths = {
  fn: (name?: string) => named(`/apis/f2s.opensight.ch/v1alpha1/namespaces/${NS}/functions`, name),
  deployment: (name?: string) =>
    named(`/apis/apps/v1/namespaces/${CONTAINERS_NS}/deployments`, name),
  service: (name?: string) => named(`/api/v1/namespaces/${CONTAINERS_NS}/services`, name),
  slices: (fn: string) =>
    `/apis/discovery.k8s.io/v1/namespaces/${CONTAINERS_NS}/endpointslices` +
    `?labelSelector=${encodeURIComponent(`kubernetes.io/service-name=${fn}`)}`,
  pods: (fn: string) =>
    `/api/v1/namespaces/${CONTAINERS_NS}/pods` +
    `?labelSelector=${encodeURIComponent(`f2s.opensight.ch/function=${fn}`)}`,
  lease: (name = "f2s-leader") => `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/${name}`,
};

export function readyCondition(fn: KubeObject | undefined): KubeObject | undefined {
  return fn?.status?.conditions?.find((c: KubeObject) => c.type === "Ready");
}

export interface ServeProcess {
  url: string;
  pid: number;
  /** Everything it wrote to stderr so far (JSON log lines). */
  logs(): string[];
  /** Sends `signal` and waits for the exit code (SIGKILL after 30 s). */
  stop(signal?: Deno.Signal): Promise<number>;
  exited: Promise<number>;
}

export interface ServeOptions {
  kubeconfig: string;
  identity: string;
  /** config.yaml text. */
  config?: string;
  args?: string[];
  env?: Record<string, string>;
}

/** Starts `f2s serve` on a free port and waits until it listens. */
export async function startServe(options: ServeOptions): Promise<ServeProcess> {
  const configFile = await Deno.makeTempFile({ prefix: "f2s-serve-", suffix: ".yaml" });
  await Deno.writeTextFile(configFile, options.config ?? "");
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${ROOT}main.ts`,
      "serve",
      "--kubeconfig",
      options.kubeconfig,
      "--port",
      "0",
      "--host",
      "127.0.0.1",
      "--config",
      configFile,
      "--identity",
      options.identity,
      ...(options.args ?? []),
    ],
    env: { F2S_LOG_LEVEL: "info", ...options.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const logs: string[] = [];
  const exited = child.status.then((s) => s.code).finally(() =>
    Deno.remove(configFile).catch(() => {})
  );
  collect(child.stderr, (line) => logs.push(line));
  let resolveUrl: (url: string) => void;
  const listening = new Promise<string>((r) => (resolveUrl = r));
  collect(child.stdout, (line) => {
    const m = /listening on (http:\/\/[^ ]+)/.exec(line);
    if (m) resolveUrl(m[1]);
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const url = await Promise.race([
    listening,
    exited.then((code) => {
      throw new Error(`f2s serve exited with ${code} before listening:\n${logs.join("\n")}`);
    }),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("f2s serve did not listen within 60 s")), 60_000);
    }),
  ]).catch(async (e) => {
    try {
      child.kill("SIGKILL");
    } catch {
      // gone
    }
    await exited;
    throw e;
  }).finally(() => clearTimeout(timer));
  let stopped: Promise<number> | undefined;
  return {
    url,
    pid: child.pid,
    logs: () => [...logs],
    exited,
    stop(signal: Deno.Signal = "SIGTERM") {
      if (stopped) return stopped;
      stopped = (async () => {
        try {
          child.kill(signal);
        } catch {
          // already gone
        }
        const kill = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch {
            // gone
          }
        }, 30_000);
        const code = await exited;
        clearTimeout(kill);
        return code;
      })();
      return stopped;
    },
  };
}

/** Runs `f2s serve` expecting it to stop by itself (start-up errors); bounded to 60 s. */
export async function serveOnce(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}main.ts`, "serve", "--port", "0", "--host", "127.0.0.1", ...args],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

function collect(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void) {
  (async () => {
    let buffer = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      let i;
      while ((i = buffer.indexOf("\n")) >= 0) {
        onLine(buffer.slice(0, i));
        buffer = buffer.slice(i + 1);
      }
    }
    if (buffer) onLine(buffer);
  })().catch(() => {});
}

/** A Function manifest as the original F2S wrote them: `target` beside `spec`. */
export function seedFunction(name: string, target: Record<string, unknown>, extra = ""): string {
  return `apiVersion: f2s.opensight.ch/v1alpha1
kind: Function
metadata:
  name: ${name}
  namespace: ${NS}
spec:
  endpoint: /${name}
  method: ANY
  description: test function ${name}
target:
${Object.entries(target).map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`).join("\n")}
${extra}`;
}
