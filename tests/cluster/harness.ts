/**
 * A real Kubernetes control plane for tests, in the spirit of controller-runtime's envtest:
 * etcd, kube-apiserver, kube-controller-manager and kube-scheduler built from source by
 * tests/deps/cluster.sh, plus one Node served by the process kubelet (kubelet.ts), whose
 * pods are fizzlet processes in their own network namespaces.
 *
 *   const cluster = await startCluster();
 *   try { ... cluster.kubeconfig ... } finally { await cluster.stop(); }
 *
 * Each cluster owns a slot (slots.ts): its folder, loopback ports, bridge and pod range,
 * so clusters of parallel runs do not collide; leftovers of crashed runs are removed first.
 */

import { createLogger } from "../../common/log.ts";
import { readVersions, requireBinaries } from "./binaries.ts";
import type { ImageMap } from "./images.ts";
import { type KubeClient, kubeClient, KubeError, type KubeObject, sleep } from "./kube.ts";
import { type ClusterNet, clusterNet, createBridge, leftovers } from "./net.ts";
import { createPki, writeKubeconfig } from "./pki.ts";
import { isAlive, type ProcRecord, readPidFile, type Started, startProcess } from "./procs.ts";
import {
  claimSlot,
  cleanupStale,
  defaultRoot,
  readOwner,
  type SlotPorts,
  teardownSlot,
  writeOwner,
} from "./slots.ts";

const REPO = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const NODE_NAME = "f2s-node";
const SERVICE_CIDR = "10.96.0.0/16";
const SERVICE_IP = "10.96.0.1";

export interface ClusterOptions {
  /** Use this slot (0..49) instead of the first free one. */
  slot?: number;
  /** Folder holding the slot folders (default /tmp/f2s-cluster, env F2S_CLUSTER_ROOT). */
  root?: string;
  /** Extra image → function folder mappings for the kubelet (see images.ts). */
  images?: ImageMap;
  /** Keep running after this process exits (`cluster.sh up`); stop with teardown. */
  persistent?: boolean;
  /** Limit for the whole start, in ms (default 180 s). */
  timeoutMs?: number;
}

export interface Cluster {
  /** Path of the admin kubeconfig (system:masters, credentials embedded). */
  kubeconfig: string;
  /** The API server's URL. */
  server: string;
  /** The node's pod range, e.g. "10.244.0.0/24". */
  podCidr: string;
  serviceCidr: string;
  nodeName: string;
  slot: number;
  /** The cluster's work folder (certificates, etcd data, logs). */
  dir: string;
  /** Folder with etcd, kube-*, kubectl and helm. */
  binDir: string;
  net: ClusterNet;
  ports: SlotPorts;
  /** Environment for kubectl/helm child processes: KUBECONFIG and PATH with binDir. */
  env: Record<string, string>;
  /** An API client with the admin credential. */
  client: KubeClient;
  /** Milliseconds each start phase took. */
  timings: Record<string, number>;
  /** Processes the cluster runs now (control plane, kubelet, pods). */
  processes(): ProcRecord[];
  /** Runs one of binDir's tools (kubectl, helm) against the cluster, whatever its outcome. */
  run(
    cmd: string,
    args: string[],
    stdin?: string,
  ): Promise<{ ok: boolean; out: string; err: string }>;
  /** Runs kubectl against the cluster; throws with its stderr when it fails. */
  kubectl(args: string[], stdin?: string): Promise<string>;
  /**
   * Stops everything and removes every trace; `keepLogs` (or env F2S_CLUSTER_KEEP_LOGS)
   * copies the logs there first.
   */
  stop(opts?: { keepLogs?: string }): Promise<void>;
}

async function waitFor<T>(
  what: string,
  timeoutMs: number,
  check: () => Promise<T | undefined>,
  watched: Started[],
  dir: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    for (const p of watched) {
      if (!isAlive(p.record)) {
        throw new Error(
          `${p.record.name} exited while waiting for ${what}:\n${await logTail(
            `${dir}/${p.record.name}.log`,
          )}`,
        );
      }
    }
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (e) {
      lastError = e;
    }
    await sleep(250);
  }
  throw new Error(
    `timed out after ${timeoutMs / 1000}s waiting for ${what}` +
      (lastError ? ` (last error: ${(lastError as Error).message})` : ""),
  );
}

async function logTail(path: string, lines = 30): Promise<string> {
  try {
    return (await Deno.readTextFile(path)).trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/** Starts a cluster and waits until its node is Ready and namespaces get service accounts. */
export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  const log = createLogger("test-cluster");
  const begin = Date.now();
  const deadline = begin + (opts.timeoutMs ?? 180_000);
  const remaining = () => Math.max(1_000, deadline - Date.now());
  const timings: Record<string, number> = {};
  let mark = begin;
  const phase = (name: string) => {
    const now = Date.now();
    timings[name] = now - mark;
    mark = now;
  };

  const bin = await requireBinaries();
  const root = opts.root ?? defaultRoot();
  await cleanupStale(root);
  const { slot, dir, ports } = await claimSlot(root, opts.slot);
  const net = clusterNet(slot);
  const pidFile = `${dir}/pids`;
  const server = `https://127.0.0.1:${ports.apiserver}`;
  const k8sVersion = readVersions().K8S_VERSION;
  const started: Started[] = [];
  let client: KubeClient | undefined;

  const emergencyStop = () => {
    // unload runs no async code: kill what is recorded; the next run sweeps the rest.
    for (const rec of readPidFile(pidFile)) {
      if (!isAlive(rec)) continue;
      try {
        Deno.kill(-rec.pid, "SIGKILL");
      } catch {
        // Gone.
      }
    }
  };

  try {
    const pki = await createPki(`${dir}/pki`, ["127.0.0.1", net.gateway, SERVICE_IP], [
      { name: "admin", user: "f2s-admin", groups: ["system:masters"] },
      { name: "controller-manager", user: "system:kube-controller-manager" },
      { name: "scheduler", user: "system:kube-scheduler" },
      { name: "node", user: `system:node:${NODE_NAME}`, groups: ["system:nodes"] },
    ]);
    const kubeconfigs: Record<string, string> = {};
    for (
      const [name, user] of [
        ["admin", "f2s-admin"],
        ["controller-manager", "system:kube-controller-manager"],
        ["scheduler", "system:kube-scheduler"],
        ["node", `system:node:${NODE_NAME}`],
      ]
    ) {
      kubeconfigs[name] = `${dir}/${name}.kubeconfig`;
      await writeKubeconfig(kubeconfigs[name], server, pki.caCert, pki.clients[name], user);
    }
    await createBridge(net);
    phase("pki+network");

    const run = (name: string, cmd: string[], env?: Record<string, string>) =>
      startProcess(name, cmd, {
        logFile: `${dir}/${name}.log`,
        pidFile,
        cwd: dir,
        env,
        detached: opts.persistent,
      }).then((p) => {
        started.push(p);
        return p;
      });

    await run("etcd", [
      `${bin}/etcd`,
      "--name=f2s",
      `--data-dir=${dir}/etcd`,
      `--listen-client-urls=http://127.0.0.1:${ports.etcd}`,
      `--advertise-client-urls=http://127.0.0.1:${ports.etcd}`,
      `--listen-peer-urls=http://127.0.0.1:${ports.etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${ports.etcdPeer}`,
      `--initial-cluster=f2s=http://127.0.0.1:${ports.etcdPeer}`,
      // Test data: losing it on a power cut is fine, waiting for fsync is not.
      "--unsafe-no-fsync",
      "--log-level=warn",
    ]);
    await waitFor(
      "etcd health",
      remaining(),
      async () => {
        const res = await fetch(`http://127.0.0.1:${ports.etcd}/health`, {
          signal: AbortSignal.timeout(2_000),
        });
        const body = await res.json();
        return body.health === "true" ? true : undefined;
      },
      started,
      dir,
    );
    phase("etcd");

    const apiserver = await run("kube-apiserver", [
      `${bin}/kube-apiserver`,
      `--etcd-servers=http://127.0.0.1:${ports.etcd}`,
      "--bind-address=127.0.0.1",
      `--secure-port=${ports.apiserver}`,
      // The `kubernetes` Service's endpoint: a pod-network address (loopback is rejected).
      `--advertise-address=${net.gateway}`,
      `--cert-dir=${dir}/apiserver`,
      `--tls-cert-file=${pki.serverCert}`,
      `--tls-private-key-file=${pki.serverKey}`,
      `--client-ca-file=${pki.caCert}`,
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      `--service-account-key-file=${pki.saPub}`,
      `--service-account-signing-key-file=${pki.saKey}`,
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      "--authorization-mode=Node,RBAC",
      "--enable-admission-plugins=NodeRestriction",
      "--allow-privileged=true",
      "--profiling=false",
      "--event-ttl=30m",
    ]);
    if (opts.persistent) {
      // A persistent cluster lives as long as its API server.
      writeOwner(dir, { ...apiserver.record, name: "owner", persistent: true });
    }
    client = kubeClient(kubeconfigs.admin);
    const admin = client;
    await waitFor(
      "kube-apiserver /readyz",
      remaining(),
      async () => {
        const res = await admin.request("GET", "/readyz").catch(() => undefined);
        return res?.text === "ok" ? true : undefined;
      },
      started,
      dir,
    );
    phase("apiserver");

    const authFlags = (kubeconfig: string) => [
      `--kubeconfig=${kubeconfig}`,
      `--authentication-kubeconfig=${kubeconfig}`,
      `--authorization-kubeconfig=${kubeconfig}`,
      // No front proxy here: do not wait for its CA in extension-apiserver-authentication.
      "--authentication-skip-lookup=true",
      "--bind-address=127.0.0.1",
      "--leader-elect=false",
      "--profiling=false",
    ];
    await run("kube-controller-manager", [
      `${bin}/kube-controller-manager`,
      ...authFlags(kubeconfigs["controller-manager"]),
      `--secure-port=${ports.controllerManager}`,
      `--cert-dir=${dir}/controller-manager`,
      `--service-account-private-key-file=${pki.saKey}`,
      `--root-ca-file=${pki.caCert}`,
      "--use-service-account-credentials=true",
      `--cluster-signing-cert-file=${pki.caCert}`,
      `--cluster-signing-key-file=${pki.caKey}`,
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      "--controllers=*",
    ]);
    await run("kube-scheduler", [
      `${bin}/kube-scheduler`,
      ...authFlags(kubeconfigs.scheduler),
      `--secure-port=${ports.scheduler}`,
      `--cert-dir=${dir}/scheduler`,
    ]);
    await run("kubelet", [
      Deno.execPath(),
      "run",
      "-A",
      "--no-prompt",
      `--config=${REPO}/deno.json`,
      `${REPO}/tests/cluster/kubelet.ts`,
      `--kubeconfig=${kubeconfigs.node}`,
      `--node-name=${NODE_NAME}`,
      `--slot=${slot}`,
      `--repo=${REPO}`,
      `--images=${
        Object.entries(opts.images ?? {}).map(([image, folder]) => `${image}=${folder}`).join(",")
      }`,
      `--log-dir=${dir}/pods`,
      `--pid-file=${pidFile}`,
      `--kubelet-version=${k8sVersion}`,
    ]);

    await waitFor(
      "node Ready without taints",
      remaining(),
      async () => {
        const node = await admin.find(`/api/v1/nodes/${NODE_NAME}`);
        const ready = node?.status?.conditions?.find((c: KubeObject) => c.type === "Ready");
        return ready?.status === "True" && !(node?.spec?.taints?.length) ? node : undefined;
      },
      started,
      dir,
    );
    phase("node");
    await waitFor(
      "the default service account",
      remaining(),
      async () => {
        const sa = await admin.find("/api/v1/namespaces/default/serviceaccounts/default");
        return sa ? true : undefined;
      },
      started,
      dir,
    );
    phase("controllers");
    timings.total = Date.now() - begin;
    log.info("cluster ready", { slot, server, timings });
  } catch (e) {
    client?.close();
    const logs = await Promise.all(
      ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet"].map(
        async (n) => `--- ${n}.log\n${await logTail(`${dir}/${n}.log`, 15)}`,
      ),
    );
    await teardownSlot(root, slot);
    throw new Error(`test cluster did not start: ${(e as Error).message}\n${logs.join("\n")}`);
  }

  if (!opts.persistent) globalThis.addEventListener("unload", emergencyStop);
  const admin = client!;
  const env = {
    KUBECONFIG: `${dir}/admin.kubeconfig`,
    PATH: `${bin}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`,
  };
  const run: Cluster["run"] = async (cmd, args, stdin) => {
    const child = new Deno.Command(`${bin}/${cmd}`, {
      args,
      env,
      stdin: stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    if (stdin !== undefined) {
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode(stdin));
      await w.close();
    }
    const out = await child.output();
    const dec = new TextDecoder();
    return { ok: out.success, out: dec.decode(out.stdout), err: dec.decode(out.stderr) };
  };
  let stopped = false;
  return {
    kubeconfig: `${dir}/admin.kubeconfig`,
    server,
    podCidr: net.podCidr,
    serviceCidr: SERVICE_CIDR,
    nodeName: NODE_NAME,
    slot,
    dir,
    binDir: bin,
    net,
    ports,
    env,
    client: admin,
    timings,
    processes: () => readPidFile(pidFile).filter(isAlive),
    run,
    async kubectl(args, stdin) {
      const { ok, out, err } = await run("kubectl", args, stdin);
      if (!ok) throw new Error(`kubectl ${args.join(" ")} failed: ${err.trim()}`);
      return out;
    },
    async stop(stopOpts = {}) {
      if (stopped) return;
      stopped = true;
      globalThis.removeEventListener("unload", emergencyStop);
      admin.close();
      const keepLogs = stopOpts.keepLogs ?? Deno.env.get("F2S_CLUSTER_KEEP_LOGS");
      if (keepLogs) await copyLogs(dir, keepLogs);
      const records = readPidFile(pidFile);
      await teardownSlot(root, slot);
      const left = [
        ...await leftovers(net),
        ...records.filter(isAlive).map((r) => `process ${r.pid} (${r.name})`),
      ];
      if (left.length) throw new Error(`test cluster left behind: ${left.join(", ")}`);
    },
  };
}

async function copyLogs(dir: string, target: string): Promise<void> {
  await Deno.mkdir(`${target}/pods`, { recursive: true });
  for (const sub of ["", "pods/"]) {
    try {
      for await (const entry of Deno.readDir(`${dir}/${sub}`)) {
        if (entry.isFile && entry.name.endsWith(".log")) {
          await Deno.copyFile(`${dir}/${sub}${entry.name}`, `${target}/${sub}${entry.name}`);
        }
      }
    } catch {
      // No such folder yet.
    }
  }
}

/** Stops the persistent cluster in `slot` (see `cluster.sh down`). */
export async function stopSlot(slot: number, root = defaultRoot()): Promise<void> {
  await teardownSlot(root, slot);
}

/** The persistent cluster's kubeconfig in `slot`, if that cluster runs. */
export function slotKubeconfig(slot: number, root = defaultRoot()): string | undefined {
  const dir = `${root}/slot-${slot}`;
  const owner = readOwner(dir);
  return owner && isAlive(owner) ? `${dir}/admin.kubeconfig` : undefined;
}

export { KubeError };

/** Why this machine cannot run the test cluster, or undefined when it can. */
export async function platformGap(): Promise<string | undefined> {
  if (Deno.build.os !== "linux") return "the test cluster needs Linux network namespaces";
  if (Deno.uid() !== 0) return "the test cluster needs root (ip netns, veth, bridge)";
  const probe = `f2sprobe${Deno.pid}`;
  const out = await new Deno.Command("ip", { args: ["netns", "add", probe] }).output()
    .catch((e) => ({ success: false, stderr: new TextEncoder().encode(String(e)) }));
  if (!out.success) {
    return `cannot create network namespaces: ${new TextDecoder().decode(out.stderr).trim()}`;
  }
  await new Deno.Command("ip", { args: ["netns", "del", probe] }).output();
  return undefined;
}
