/**
 * What the Kubernetes tests share: whether this machine can run the test cluster, a cluster
 * with F2S's CRD and namespaces, `f2s serve` as a real child process (stopped again, and
 * checked to have exited), and polling with a deadline.
 */

import type { Cluster } from "../cluster/harness.ts";
export { platformGap } from "../cluster/harness.ts";
import { type ControlPlane, startControlPlane } from "../harness/dev.ts";
import { type KubeObject, readKubeconfig, tokenKubeconfig } from "../cluster/kube.ts";
export { eventually } from "../harness/poll.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
export const CRD_FILE = `${ROOT}crds/functions.f2s.opensight.ch.yaml`;
export const CHART_DIR = `${ROOT}helm`;
export const FIXTURES = new URL("./fixtures/", import.meta.url).pathname;
export const NS = "f2s";
export const CONTAINERS_NS = "f2s-containers";

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

export type ServeProcess = ControlPlane;

/** Election timings for tests that change leaders: lease 3 s, renew deadline 2 s, retry 0.5 s. */
export const FAST_LEASE_ARGS = [
  "--lease-duration",
  "3s",
  "--renew-deadline",
  "2s",
  "--retry-period",
  "500ms",
];

export interface ServeOptions {
  kubeconfig: string;
  identity: string;
  /** config.yaml text. */
  config?: string;
  args?: string[];
  env?: Record<string, string>;
}

/**
 * TMPDIR of the `f2s serve` processes this test process starts. A replica keeps its async
 * queue there (`f2s-async-IDENTITY`): it outlives a restart of the same identity, as in a pod,
 * but not the test run, and another run on the machine has its own.
 */
let serveTmp: string | undefined;
function serveTmpDir(): string {
  if (serveTmp === undefined) {
    const dir = serveTmp = Deno.makeTempDirSync({ prefix: "f2s-serve-test-" });
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
  }
  return serveTmp;
}

/** Starts `f2s serve` on a free port and waits until it listens. */
export function startServe(options: ServeOptions): Promise<ServeProcess> {
  return startControlPlane(
    "serve",
    [
      "--kubeconfig",
      options.kubeconfig,
      "--port",
      "0",
      "--host",
      "127.0.0.1",
      "--identity",
      options.identity,
      ...(options.args ?? []),
    ],
    {
      config: options.config ?? "",
      env: { TMPDIR: serveTmpDir(), ...options.env },
      timeoutMs: 60_000,
    },
  );
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

/**
 * Test steps that build on each other: after a failure the rest are skipped, not failed again.
 */
export function sequentialSteps(t: Deno.TestContext) {
  let failed = false;
  return async (name: string, fn: () => Promise<void>) => {
    if (!await t.step({ name, ignore: failed, fn })) failed = true;
  };
}

/** The leader Lease's holder as the API server has it now. */
export async function leaseHolder(api: Cluster["client"]): Promise<string | undefined> {
  return (await api.find(paths.lease()))?.spec?.holderIdentity;
}

/**
 * A kubeconfig (written into `dir`) for service account `account` of NS, with what a pod of
 * it gets: a TokenRequest token and the cluster's CA.
 */
export async function serviceAccountKubeconfig(
  cluster: Cluster,
  dir: string,
  account: string,
): Promise<string> {
  const request = await cluster.client.create(
    `/api/v1/namespaces/${NS}/serviceaccounts/${account}/token`,
    {
      apiVersion: "authentication.k8s.io/v1",
      kind: "TokenRequest",
      spec: { expirationSeconds: 3600 },
    },
  );
  const { ca } = readKubeconfig(cluster.kubeconfig);
  const path = `${dir}/${account}.kubeconfig`;
  await Deno.writeTextFile(
    path,
    tokenKubeconfig({
      server: cluster.server,
      ca,
      user: account,
      token: request.status.token,
      namespace: NS,
    }),
  );
  return path;
}
