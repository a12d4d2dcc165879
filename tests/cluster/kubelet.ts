/**
 * The process kubelet: registers one Node and runs the pods bound to it as processes
 * instead of containers. Each pod gets its own network namespace on the cluster bridge
 * (net.ts) and runs its function under `f2s fizzlet` there; the kubelet reports the pod's
 * status (IP, Ready from the fizzlet's readiness endpoint), restarts it per restartPolicy,
 * and on deletion sends SIGTERM, waits the grace period, kills, and removes the pod.
 * The Node stays Ready through a Lease renewed every 10 s.
 *
 *   deno run -A tests/cluster/kubelet.ts --kubeconfig F --slot N --repo DIR --log-dir DIR
 */

import { parseArgs } from "node:util";
import { createLogger, type Logger } from "../../common/log.ts";
import { FIZZLET_PATHS, FIZZLET_PORT } from "../../common/protocol.ts";
import {
  defaultImageMap,
  F2S_PROGRAM,
  functionFolder,
  functionLaunch,
  type ImageMap,
  parseImageMap,
} from "./images.ts";
import {
  type KubeClient,
  kubeClient,
  KubeError,
  type KubeObject,
  listAndWatch,
  readKubeconfig,
  sleep,
  tokenKubeconfig,
} from "./kube.ts";
import {
  clusterNet,
  createPodNet,
  deletePodNet,
  netnsPids,
  type PodNet,
  podNetNames,
} from "./net.ts";
import { nodeConditions, type PodState, podStatusPatch, type Terminated } from "./pod_status.ts";
import { type Started, startProcess } from "./procs.ts";

export interface KubeletOptions {
  kubeconfig: string;
  nodeName: string;
  /** Cluster slot: names the bridge, the netns prefix and the pod range (net.ts). */
  slot: number;
  /** The F2S checkout whose main.ts runs the fizzlet. */
  repo: string;
  images: ImageMap;
  /** Folder for the pods' output (one file per pod). */
  logDir: string;
  /** Pid file the pods' processes are recorded in (for the harness's crash cleanup). */
  pidFile: string;
  kubeletVersion: string;
}

const LEASE_RENEW_MS = 10_000;
const NODE_STATUS_MS = 60_000;
const PROBE_MS = 1_000;
const MAX_BACKOFF_MS = 30_000;

interface PodRun {
  uid: string;
  pod: KubeObject;
  /** The pod object is gone from the API (force deletion, or our final delete). */
  gone: boolean;
  index: number;
  net?: PodNet;
  proc?: Started;
  state: PodState;
  terminating: boolean;
  finished: boolean;
  restartTimer?: ReturnType<typeof setTimeout>;
  queue: Promise<void>;
  /** Fingerprint of the state last written to the API. */
  sent?: string;
}

const microTime = (d = new Date()) => d.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
const podPath = (pod: KubeObject) =>
  `/api/v1/namespaces/${pod.metadata.namespace}/pods/${pod.metadata.name}`;
const podLabel = (pod: KubeObject) => `${pod.metadata.namespace}/${pod.metadata.name}`;

/** Runs the kubelet until `signal` aborts, then stops every pod it runs. */
export async function runKubelet(opts: KubeletOptions, signal: AbortSignal): Promise<void> {
  const log = createLogger("kubelet", { node: opts.nodeName });
  const client = kubeClient(opts.kubeconfig);
  const net = clusterNet(opts.slot);
  const runs = new Map<string, PodRun>();
  const finished = new Set<string>();
  const usedIps = new Set<number>();
  let podCounter = 0;
  await Deno.mkdir(opts.logDir, { recursive: true });

  const node = await registerNode(client, opts, net.podCidr, net.gateway, log);
  const heartbeat = keepNodeReady(client, opts, node, net.gateway, signal, log);

  function allocateIp(): string {
    for (let host = 2; host < 255; host++) {
      if (!usedIps.has(host)) {
        usedIps.add(host);
        return net.podCidr.replace(/0\/24$/, String(host));
      }
    }
    throw new Error(`no free address left in ${net.podCidr}`);
  }
  const releaseIp = (ip: string) => usedIps.delete(Number(ip.split(".")[3]));

  function enqueue(run: PodRun, step: (run: PodRun) => Promise<void>) {
    run.queue = run.queue.then(() => step(run)).catch((e) =>
      log.error("pod sync failed", { pod: podLabel(run.pod), error: e })
    );
  }

  function upsert(pod: KubeObject) {
    const uid = pod.metadata.uid;
    if (finished.has(uid)) return;
    let run = runs.get(uid);
    if (!run) {
      const phase = pod.status?.phase;
      if ((phase === "Succeeded" || phase === "Failed") && !pod.metadata.deletionTimestamp) return;
      const container = pod.spec.containers[0];
      run = {
        uid,
        pod,
        gone: false,
        index: podCounter++,
        state: {
          phase: "Pending",
          hostIp: net.gateway,
          startTime: pod.status?.startTime ?? new Date().toISOString(),
          netReady: false,
          container: {
            name: container.name,
            image: container.image,
            ready: false,
            restartCount: 0,
          },
        },
        terminating: false,
        finished: false,
        queue: Promise.resolve(),
      };
      runs.set(uid, run);
      log.info("pod bound", { pod: podLabel(pod), uid });
    }
    run.pod = pod;
    enqueue(run, sync);
  }

  function gone(pod: KubeObject) {
    const run = runs.get(pod.metadata.uid);
    if (!run) return;
    run.gone = true;
    enqueue(run, sync);
  }

  async function sync(run: PodRun): Promise<void> {
    if (run.finished) return;
    if (run.gone || run.pod.metadata.deletionTimestamp) {
      const grace = run.gone ? 2 : run.pod.metadata.deletionGracePeriodSeconds ??
        run.pod.spec.terminationGracePeriodSeconds ?? 30;
      await terminate(run, grace * 1000);
      if (!run.gone) {
        await pushStatus(run);
        // The final delete: the pod's processes are gone, the API object may go too.
        await client.delete(podPath(run.pod), {
          gracePeriodSeconds: 0,
          preconditions: { uid: run.uid },
        }).catch((e) => {
          if (!(e instanceof KubeError && e.status === 409)) throw e;
        });
      }
      run.finished = true;
      runs.delete(run.uid);
      finished.add(run.uid);
      log.info("pod removed", { pod: podLabel(run.pod), uid: run.uid });
      return;
    }
    const phase = run.state.phase;
    if (
      !run.proc && run.restartTimer === undefined && (phase === "Pending" || phase === "Running")
    ) {
      await start(run);
    }
    await pushStatus(run);
  }

  async function start(run: PodRun): Promise<void> {
    const pod = run.pod;
    const c = run.state.container;
    const containers = pod.spec.containers as KubeObject[];
    if (containers.length !== 1) {
      c.waiting = {
        reason: "Unsupported",
        message:
          `the process kubelet runs pods with one container, this one has ${containers.length}`,
      };
      return;
    }
    const container = containers[0];
    const folder = functionFolder(container.image, opts.images);
    if (!folder) {
      c.waiting = {
        reason: "ErrImagePull",
        message: `no function folder for image "${container.image}" (mapped: ${
          Object.keys(opts.images).join(", ")
        })`,
      };
      return;
    }
    let launch;
    try {
      launch = folder === F2S_PROGRAM
        ? { dir: opts.repo, appCommand: undefined }
        : await functionLaunch(folder, container);
    } catch (e) {
      c.waiting = { reason: "ErrImagePull", message: (e as Error).message };
      return;
    }
    if (run.net) {
      // A restart: like a container's cgroup, nothing of the previous run survives it.
      await killAll(await netnsPids(run.net.netns));
    } else {
      const address = allocateIp();
      try {
        run.net = await createPodNet(net, podNetNames(net, run.index), address);
      } catch (e) {
        releaseIp(address);
        c.waiting = { reason: "CreatePodSandboxError", message: (e as Error).message };
        return;
      }
      run.state.podIp = address;
      run.state.netReady = true;
    }
    const env = await containerEnv(client, pod, container, run.net.ip, net.gateway);
    const port = env.F2S_FIZZLET_PORT ?? String(FIZZLET_PORT);
    const deno = [
      Deno.execPath(),
      "run",
      "-A",
      "--no-prompt",
      "--config",
      `${opts.repo}/deno.json`,
      `${opts.repo}/main.ts`,
    ];
    let cmd;
    if (folder === F2S_PROGRAM) {
      // The f2s program as the image's entrypoint, with the pod's service account. It runs
      // in the host's network: the API server listens on loopback only.
      if (pod.spec.automountServiceAccountToken !== false) {
        env.KUBECONFIG = await serviceAccountKubeconfig(client, opts, pod);
      }
      cmd = [...deno, ...(container.args ?? [])];
    } else {
      cmd = [
        "ip",
        "netns",
        "exec",
        run.net.netns,
        ...deno,
        "fizzlet",
        "--port",
        port,
        "--dir",
        launch.dir,
        ...(launch.appCommand ? ["--app-command", launch.appCommand] : []),
      ];
    }
    const proc = await startProcess(`pod ${podLabel(pod)}`, cmd, {
      logFile: `${opts.logDir}/${pod.metadata.namespace}_${pod.metadata.name}.log`,
      pidFile: opts.pidFile,
      env,
      clearEnv: true,
      cwd: launch.dir,
    });
    run.proc = proc;
    const startedAt = new Date().toISOString();
    c.running = { startedAt };
    c.waiting = undefined;
    c.terminated = undefined;
    c.pid = proc.record.pid;
    run.state.phase = "Running";
    log.info("pod started", {
      pod: podLabel(pod),
      ip: run.net.ip,
      pid: proc.record.pid,
      dir: launch.dir,
      appCommand: launch.appCommand,
    });
    proc.child.status.then((status) => onExit(run, proc, status, startedAt));
  }

  function onExit(run: PodRun, proc: Started, status: Deno.CommandStatus, startedAt: string) {
    if (run.proc !== proc) return;
    run.proc = undefined;
    const c = run.state.container;
    const term: Terminated = {
      exitCode: status.code,
      reason: status.success ? "Completed" : "Error",
      startedAt,
      finishedAt: new Date().toISOString(),
    };
    if (status.signal) term.signal = Deno.build.os === "linux" ? signalNumber(status.signal) : 0;
    c.running = undefined;
    c.ready = false;
    c.pid = undefined;
    log.info("pod process exited", {
      pod: podLabel(run.pod),
      code: status.code,
      signal: status.signal,
    });
    if (run.terminating) {
      c.terminated = term;
      return;
    }
    const policy = run.pod.spec.restartPolicy ?? "Always";
    if (policy === "Always" || (policy === "OnFailure" && !status.success)) {
      c.lastTerminated = term;
      c.restartCount++;
      const delay = Math.min(1000 * 2 ** (c.restartCount - 1), MAX_BACKOFF_MS);
      c.waiting = {
        reason: "CrashLoopBackOff",
        message: `back-off ${delay / 1000}s restarting failed container=${c.name}`,
      };
      run.restartTimer = setTimeout(() => {
        run.restartTimer = undefined;
        enqueue(run, sync);
      }, delay);
    } else {
      c.terminated = term;
      run.state.phase = status.success ? "Succeeded" : "Failed";
    }
    enqueue(run, pushStatus);
  }

  async function terminate(run: PodRun, graceMs: number): Promise<void> {
    run.terminating = true;
    if (run.restartTimer !== undefined) clearTimeout(run.restartTimer);
    run.restartTimer = undefined;
    const proc = run.proc;
    if (proc) {
      log.info("stopping pod", { pod: podLabel(run.pod), pid: proc.record.pid, graceMs });
      // Like a container runtime: SIGTERM to the main process only, SIGKILL to all later.
      try {
        Deno.kill(proc.record.pid, "SIGTERM");
      } catch {
        // Already exited.
      }
      const exited = await Promise.race([
        proc.child.status.then(() => true),
        sleep(graceMs).then(() => false),
      ]);
      if (!exited) {
        log.warn("pod did not stop within its grace period; killing it", {
          pod: podLabel(run.pod),
        });
        for (const target of [-proc.record.pid, proc.record.pid]) {
          try {
            Deno.kill(target, "SIGKILL");
          } catch {
            // Gone.
          }
        }
        await Promise.race([proc.child.status, sleep(5_000)]);
      }
      // onExit ran (or runs now) and recorded the termination.
      await Promise.resolve();
    }
    run.state.container.ready = false;
    if (run.net) {
      await deletePodNet(run.net);
      releaseIp(run.net.ip);
      run.net = undefined;
      run.state.netReady = false;
    }
  }

  async function pushStatus(run: PodRun): Promise<void> {
    if (run.gone || run.finished) return;
    const fingerprint = JSON.stringify(run.state);
    if (fingerprint === run.sent) return;
    try {
      run.pod = await client.patch(
        `${podPath(run.pod)}/status`,
        podStatusPatch(run.pod, run.state, new Date().toISOString()),
      );
      run.sent = fingerprint;
    } catch (e) {
      if (e instanceof KubeError && e.status === 404) {
        run.gone = true;
        return;
      }
      // Left unsent: the probe loop tries again.
      log.warn("pod status update failed", { pod: podLabel(run.pod), error: e });
    }
  }

  /** Probes the running pods' readiness, and writes every status the API has not seen. */
  async function probeAll(): Promise<void> {
    await Promise.all([...runs.values()].map(async (run) => {
      if (run.finished) return;
      if (run.proc && !run.terminating && run.net) {
        const ready = await probe(run.pod, run.net.ip);
        const c = run.state.container;
        if (ready !== c.ready && run.proc) {
          log.info(ready ? "pod ready" : "pod not ready", { pod: podLabel(run.pod) });
          c.ready = ready;
        }
      }
      if (JSON.stringify(run.state) !== run.sent) enqueue(run, pushStatus);
    }));
  }

  const prober = (async () => {
    while (!signal.aborted) {
      await sleep(PROBE_MS, signal);
      if (!signal.aborted) await probeAll().catch((e) => log.warn("probe failed", { error: e }));
    }
  })();

  await listAndWatch(
    client,
    `/api/v1/pods?fieldSelector=${encodeURIComponent(`spec.nodeName=${opts.nodeName}`)}`,
    {
      onList(items) {
        const seen = new Set(items.map((p) => p.metadata.uid));
        for (const run of runs.values()) if (!seen.has(run.uid)) gone(run.pod);
        for (const pod of items) upsert(pod);
      },
      onEvent(event) {
        if (event.type === "DELETED") gone(event.object);
        else upsert(event.object);
      },
      onError(e) {
        log.warn("pod watch interrupted", { error: e });
      },
    },
    signal,
  );

  log.info("stopping all pods", { pods: runs.size });
  await Promise.all([...runs.values()].map(async (run) => {
    await run.queue;
    const grace = Math.min(run.pod.spec.terminationGracePeriodSeconds ?? 30, 10);
    await terminate(run, grace * 1000);
  }));
  await Promise.all([prober, heartbeat]);
  client.close();
  log.info("stopped");
}

/** Asks the pod's readiness endpoint: its readinessProbe's httpGet, else the fizzlet's. */
async function probe(pod: KubeObject, podIp: string): Promise<boolean> {
  const container = pod.spec.containers[0];
  const httpGet = container.readinessProbe?.httpGet;
  let port: number | string = httpGet?.port ?? FIZZLET_PORT;
  if (typeof port === "string" && !/^\d+$/.test(port)) {
    port = container.ports?.find((p: KubeObject) => p.name === port)?.containerPort ??
      FIZZLET_PORT;
  }
  const path = httpGet?.path ?? FIZZLET_PATHS.ready;
  try {
    const res = await fetch(`http://${podIp}:${port}${path}`, {
      signal: AbortSignal.timeout(1_000),
    });
    await res.body?.cancel();
    return res.status >= 200 && res.status < 400;
  } catch {
    return false;
  }
}

/**
 * The process environment of a container: a minimal base (PATH, HOME, Deno's cache) plus
 * the container's env, with fieldRef, configMapKeyRef and secretKeyRef resolved.
 */
async function containerEnv(
  client: KubeClient,
  pod: KubeObject,
  container: KubeObject,
  podIp: string,
  hostIp: string,
): Promise<Record<string, string>> {
  const env: Record<string, string> = {};
  for (const name of ["PATH", "HOME", "DENO_DIR", "LANG", "F2S_LOG_LEVEL", "NO_COLOR"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  const fields: Record<string, string> = {
    "metadata.name": pod.metadata.name,
    "metadata.namespace": pod.metadata.namespace,
    "metadata.uid": pod.metadata.uid,
    "spec.nodeName": pod.spec.nodeName,
    "spec.serviceAccountName": pod.spec.serviceAccountName ?? "default",
    "status.podIP": podIp,
    "status.hostIP": hostIp,
  };
  const ns = pod.metadata.namespace;
  for (const e of (container.env ?? []) as KubeObject[]) {
    const from = e.valueFrom;
    if (!from) {
      env[e.name] = (e.value ?? "").replace(
        /\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g,
        (m: string, v: string) => env[v] ?? m,
      );
    } else if (from.fieldRef) {
      const value = fields[from.fieldRef.fieldPath];
      if (value !== undefined) env[e.name] = value;
    } else if (from.configMapKeyRef || from.secretKeyRef) {
      const ref = from.configMapKeyRef ?? from.secretKeyRef;
      const kind = from.configMapKeyRef ? "configmaps" : "secrets";
      const obj = await client.find(`/api/v1/namespaces/${ns}/${kind}/${ref.name}`);
      const raw = obj?.data?.[ref.key];
      if (raw === undefined) {
        if (!ref.optional) {
          throw new Error(`env ${e.name}: ${kind}/${ref.name} has no key ${ref.key}`);
        }
        continue;
      }
      env[e.name] = kind === "secrets"
        ? new TextDecoder().decode(
          Uint8Array.from(atob(raw), (ch) => ch.charCodeAt(0)),
        )
        : raw;
    }
  }
  return env;
}

/**
 * What a real kubelet mounts at /var/run/secrets/kubernetes.io/serviceaccount, as a kubeconfig
 * (a process cannot have its own /var/run): a token of the pod's service account, bound to
 * the pod (the Node authorizer allows exactly that), and the cluster's CA.
 */
async function serviceAccountKubeconfig(
  client: KubeClient,
  opts: KubeletOptions,
  pod: KubeObject,
): Promise<string> {
  const ns = pod.metadata.namespace;
  const account = pod.spec.serviceAccountName ?? "default";
  const request = await client.create(
    `/api/v1/namespaces/${ns}/serviceaccounts/${account}/token`,
    {
      apiVersion: "authentication.k8s.io/v1",
      kind: "TokenRequest",
      spec: {
        expirationSeconds: 3600,
        boundObjectRef: {
          apiVersion: "v1",
          kind: "Pod",
          name: pod.metadata.name,
          uid: pod.metadata.uid,
        },
      },
    },
  );
  const { server, ca } = readKubeconfig(opts.kubeconfig);
  const dir = `${opts.logDir}/../credentials/${pod.metadata.uid}`;
  await Deno.mkdir(dir, { recursive: true });
  const path = `${dir}/kubeconfig`;
  await Deno.writeTextFile(
    path,
    tokenKubeconfig({ server, ca, user: account, token: request.status.token, namespace: ns }),
    { mode: 0o600 },
  );
  return path;
}

async function killAll(pids: number[]): Promise<void> {
  for (const pid of pids) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // Exited meanwhile.
    }
  }
  // Give the kernel a moment to release their sockets before the next run binds them.
  if (pids.length) await sleep(100);
}

function signalNumber(signal: Deno.Signal): number {
  const numbers: Partial<Record<Deno.Signal, number>> = {
    SIGHUP: 1,
    SIGINT: 2,
    SIGQUIT: 3,
    SIGKILL: 9,
    SIGSEGV: 11,
    SIGPIPE: 13,
    SIGTERM: 15,
  };
  return numbers[signal] ?? 0;
}

async function registerNode(
  client: KubeClient,
  opts: KubeletOptions,
  podCidr: string,
  nodeIp: string,
  log: Logger,
): Promise<KubeObject> {
  const name = opts.nodeName;
  let node: KubeObject;
  try {
    node = await client.create("/api/v1/nodes", {
      apiVersion: "v1",
      kind: "Node",
      metadata: {
        name,
        labels: {
          "kubernetes.io/hostname": name,
          "kubernetes.io/os": "linux",
          "kubernetes.io/arch": "amd64",
        },
        annotations: { "f2s.dev/process-kubelet": "true" },
      },
      spec: { podCIDR: podCidr, podCIDRs: [podCidr] },
    });
    log.info("node registered", { podCidr, ip: nodeIp });
  } catch (e) {
    if (!(e instanceof KubeError && e.status === 409)) throw e;
    node = await client.get(`/api/v1/nodes/${name}`);
  }
  await postNodeStatus(client, opts, nodeIp, new Date().toISOString());
  return node;
}

async function postNodeStatus(
  client: KubeClient,
  opts: KubeletOptions,
  nodeIp: string,
  since: string,
): Promise<void> {
  const memKi = Deno.readTextFileSync("/proc/meminfo").match(/MemTotal:\s+(\d+)/)?.[1] ?? "0";
  const resources = {
    cpu: String(navigator.hardwareConcurrency || 1),
    memory: `${memKi}Ki`,
    pods: "110",
    "ephemeral-storage": "10Gi",
  };
  await client.patch(`/api/v1/nodes/${opts.nodeName}/status`, {
    status: {
      capacity: resources,
      allocatable: resources,
      conditions: nodeConditions(new Date().toISOString(), since),
      addresses: [
        { type: "InternalIP", address: nodeIp },
        { type: "Hostname", address: opts.nodeName },
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: 0 } },
      nodeInfo: {
        machineID: "",
        systemUUID: "",
        bootID: "",
        kernelVersion: Deno.osRelease(),
        osImage: "F2S process kubelet",
        containerRuntimeVersion: "f2s-process://1",
        kubeletVersion: opts.kubeletVersion,
        kubeProxyVersion: "",
        operatingSystem: "linux",
        architecture: "amd64",
      },
    },
  });
}

/** Renews the node's Lease every 10 s and posts its status every minute until aborted. */
async function keepNodeReady(
  client: KubeClient,
  opts: KubeletOptions,
  node: KubeObject,
  nodeIp: string,
  signal: AbortSignal,
  log: Logger,
): Promise<void> {
  const leasePath =
    `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${opts.nodeName}`;
  const since = new Date().toISOString();
  let lastStatus = Date.now();
  while (!signal.aborted) {
    try {
      await client.patch(leasePath, { spec: { renewTime: microTime() } }, "merge")
        .catch(async (e) => {
          if (!(e instanceof KubeError && e.status === 404)) throw e;
          return await client.create(
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
            {
              apiVersion: "coordination.k8s.io/v1",
              kind: "Lease",
              metadata: {
                name: opts.nodeName,
                namespace: "kube-node-lease",
                ownerReferences: [{
                  apiVersion: "v1",
                  kind: "Node",
                  name: opts.nodeName,
                  uid: node.metadata.uid,
                }],
              },
              spec: {
                holderIdentity: opts.nodeName,
                leaseDurationSeconds: 40,
                renewTime: microTime(),
              },
            },
          );
        });
      if (Date.now() - lastStatus >= NODE_STATUS_MS) {
        await postNodeStatus(client, opts, nodeIp, since);
        lastStatus = Date.now();
      }
    } catch (e) {
      log.warn("node heartbeat failed", { error: e });
    }
    await sleep(LEASE_RENEW_MS, signal);
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      kubeconfig: { type: "string" },
      "node-name": { type: "string", default: "f2s-node" },
      slot: { type: "string" },
      repo: { type: "string" },
      images: { type: "string", default: "" },
      "log-dir": { type: "string" },
      "pid-file": { type: "string" },
      "kubelet-version": { type: "string", default: "v0.0.0" },
    },
    strict: true,
  });
  for (const required of ["kubeconfig", "slot", "repo", "log-dir", "pid-file"] as const) {
    if (!values[required]) {
      console.error(`kubelet: --${required} is required`);
      Deno.exit(2);
    }
  }
  const repo = values.repo!;
  const controller = new AbortController();
  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(sig, () => controller.abort());
  }
  await runKubelet({
    kubeconfig: values.kubeconfig!,
    nodeName: values["node-name"]!,
    slot: Number(values.slot),
    repo,
    images: {
      ...defaultImageMap(repo),
      ...parseImageMap(Deno.env.get("F2S_KUBELET_IMAGES") ?? ""),
      ...parseImageMap(values.images!),
    },
    logDir: values["log-dir"]!,
    pidFile: values["pid-file"]!,
    kubeletVersion: values["kubelet-version"]!,
  }, controller.signal);
  Deno.exit(0);
}
