/**
 * Proof that the test cluster is a real one: the control plane built from source runs a
 * Deployment through its controllers onto the process kubelet's node, pods get their own
 * network namespaces and answer at their pod IPs, EndpointSlices follow them through
 * scaling, and teardown leaves nothing behind, also after a crashed run.
 */

import { assert, assertEquals } from "../harness/assert.ts";
import { eventually } from "../harness/poll.ts";
import { buildSeconds, readVersions } from "./binaries.ts";
import { type Cluster, platformGap, startCluster } from "./harness.ts";
import type { KubeObject } from "./kube.ts";
import {
  clusterNet,
  createBridge,
  createPodNet,
  leftovers,
  netnsPids,
  podNetNames,
} from "./net.ts";
import { appendPidFile, isAlive, processStart, type ProcRecord } from "./procs.ts";
import { cleanupStale, slotDir, slotPorts, writeOwner } from "./slots.ts";

const FIXTURES = new URL("./fixtures/", import.meta.url).pathname;
const NS = "cluster-proof";

const gap = await platformGap();
if (gap) console.warn(`SKIPPING tests/cluster: ${gap}`);

function deploymentYaml(replicas: number): string {
  return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
  namespace: ${NS}
spec:
  replicas: ${replicas}
  selector:
    matchLabels: { app: podinfo }
  template:
    metadata:
      labels: { app: podinfo }
    spec:
      terminationGracePeriodSeconds: 5
      containers:
        - name: function
          image: f2s-test/podinfo:v1
          ports: [{ name: fizzlet, containerPort: 9092 }]
          env:
            - { name: GREETING, value: "hello from the process kubelet" }
            - name: POD_NAME
              valueFrom: { fieldRef: { fieldPath: metadata.name } }
            - name: POD_IP
              valueFrom: { fieldRef: { fieldPath: status.podIP } }
---
apiVersion: v1
kind: Service
metadata:
  name: podinfo
  namespace: ${NS}
spec:
  selector: { app: podinfo }
  ports: [{ name: http, port: 80, targetPort: fizzlet }]
`;
}

async function podinfoPods(cluster: Cluster): Promise<KubeObject[]> {
  const list = await cluster.client.get(
    `/api/v1/namespaces/${NS}/pods?labelSelector=app%3Dpodinfo`,
  );
  return list.items;
}

const isReady = (pod: KubeObject) =>
  pod.status?.phase === "Running" &&
  pod.status.conditions?.some((c: KubeObject) => c.type === "Ready" && c.status === "True");

/** Waits for exactly `n` Running+Ready podinfo pods (none terminating) and returns them. */
function readyPods(cluster: Cluster, n: number, timeoutMs = 90_000): Promise<KubeObject[]> {
  return eventually(`${n} ready podinfo pods`, async () => {
    const pods = await podinfoPods(cluster);
    const live = pods.filter((p) => !p.metadata.deletionTimestamp);
    return live.length === n && pods.length === n && live.every(isReady) ? live : undefined;
  }, timeoutMs);
}

/** Ready endpoint addresses of the podinfo Service's EndpointSlices. */
async function sliceAddresses(cluster: Cluster): Promise<string[]> {
  const slices = await cluster.client.get(
    `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices?labelSelector=` +
      encodeURIComponent("kubernetes.io/service-name=podinfo"),
  );
  return slices.items.flatMap((s: KubeObject) =>
    (s.endpoints ?? []).filter((e: KubeObject) => e.conditions?.ready)
      .flatMap((e: KubeObject) => e.addresses)
  ).sort();
}

function inCidr(ip: string, cidr: string): boolean {
  return ip.startsWith(cidr.replace(/0\/24$/, "")) && ip !== cidr.replace(/0\/24$/, "1");
}

/** Processes the kubelet started for pods (recorded as "pod <ns>/<name>"). */
function podProcesses(cluster: Cluster): ProcRecord[] {
  return cluster.processes().filter((p) => p.name.startsWith(`pod ${NS}/`));
}

async function podNamespaces(cluster: Cluster): Promise<string[]> {
  return (await leftovers(cluster.net)).filter((l) => l.startsWith("netns "));
}

Deno.test({
  name: "test cluster: a Deployment runs as fizzlet processes with real pod networking",
  ignore: gap !== undefined,
  async fn(t) {
    const versions = readVersions();
    const built = await buildSeconds();
    const cluster = await startCluster({ images: { "f2s-test/": FIXTURES } });
    const seconds = (s: number | undefined) => s === undefined ? "unknown" : `${s} s`;
    console.log(
      `cluster: Kubernetes ${versions.K8S_VERSION}, etcd ${versions.ETCD_VERSION}, ` +
        `helm ${versions.HELM_VERSION}\n` +
        `  first build (the run of tests/deps/cluster.sh that made the cached binaries): ` +
        `Kubernetes+etcd ${seconds(built.kubernetes_and_etcd)}, helm ${seconds(built.helm)}\n` +
        `  warm start: ${(cluster.timings.total / 1000).toFixed(1)} s ` +
        `(ms per phase: ${JSON.stringify(cluster.timings)})`,
    );
    let failed = false;
    // Steps build on each other: after a failure the rest are skipped, not failed again.
    const step = async (name: string, fn: () => Promise<void>) => {
      if (!await t.step({ name, ignore: failed, fn })) failed = true;
    };
    try {
      await step("the control plane answers kubectl with the pinned version", async () => {
        const version = JSON.parse(await cluster.kubectl(["version", "-o", "json"]));
        assertEquals(version.serverVersion.gitVersion, versions.K8S_VERSION);
        const nodes = JSON.parse(await cluster.kubectl(["get", "nodes", "-o", "json"])).items;
        assertEquals(nodes.map((n: KubeObject) => n.metadata.name), [cluster.nodeName]);
        assertEquals(nodes[0].spec.podCIDR, cluster.podCidr);
      });

      let firstPods: KubeObject[] = [];
      let firstRecords: ProcRecord[] = [];
      await step(
        "a Deployment's pods run, get Ready and are listed in EndpointSlices",
        async () => {
          await cluster.kubectl(["create", "namespace", NS]);
          await eventually(
            "the namespace's default service account",
            () => cluster.client.find(`/api/v1/namespaces/${NS}/serviceaccounts/default`),
          );
          await cluster.kubectl(["apply", "-f", "-"], deploymentYaml(2));
          firstPods = await readyPods(cluster, 2);
          const ips = firstPods.map((p) => p.status.podIP).sort();
          for (const ip of ips) assert(inCidr(ip, cluster.podCidr), `${ip} in ${cluster.podCidr}`);
          assert(ips[0] !== ips[1], "pods have distinct IPs");
          for (const pod of firstPods) {
            const c = pod.status.containerStatuses[0];
            assertEquals([c.ready, c.started, !!c.state.running], [true, true, true]);
            assertEquals(pod.status.hostIP, cluster.net.gateway);
            assertEquals(pod.spec.nodeName, cluster.nodeName);
          }
          await eventually("EndpointSlices listing both pod IPs", async () => {
            const addresses = await sliceAddresses(cluster);
            return JSON.stringify(addresses) === JSON.stringify(ips) ? addresses : undefined;
          });
          await eventually("the Deployment reporting 2 available replicas", async () => {
            const deployment = await cluster.client.get(
              `/apis/apps/v1/namespaces/${NS}/deployments/podinfo`,
            );
            return deployment.status?.availableReplicas === 2 ? true : undefined;
          });
          firstRecords = podProcesses(cluster);
          assertEquals(firstRecords.length, 2);
        },
      );

      await step("each pod's fizzlet answers at its pod IP from its own namespace", async () => {
        for (const pod of firstPods) {
          const ip = pod.status.podIP;
          const health = await fetch(`http://${ip}:9092/f2s/health`);
          await health.body?.cancel();
          assertEquals(health.status, 200);
          const res = await fetch(`http://${ip}:9092/who?x=1`);
          assertEquals(res.status, 200);
          assertEquals(await res.json(), {
            pod: pod.metadata.name,
            ip,
            greeting: "hello from the process kubelet",
            path: "/who?x=1",
          });
        }
        // The fizzlets live in the pods' namespaces, not in the host's.
        const namespaces = (await podNamespaces(cluster)).map((l) => l.slice("netns ".length));
        assertEquals(namespaces.length, 2);
        const inside = (await Promise.all(namespaces.map(netnsPids))).flat();
        for (const rec of firstRecords) {
          assert(inside.includes(rec.pid), `pid ${rec.pid} in a pod netns`);
        }
      });

      await step("a pod whose process dies is restarted in place", async () => {
        const pod = firstPods[0];
        const ip = pod.status.podIP;
        const pid = Number(pod.status.containerStatuses[0].containerID.split("://")[1]);
        assert(firstRecords.some((r) => r.pid === pid), `containerID names pid ${pid}`);
        const netns = (await podNamespaces(cluster)).map((l) => l.slice("netns ".length));
        const before = (await Promise.all(netns.map(netnsPids))).flat();
        Deno.kill(pid, "SIGKILL");
        const restarted = await eventually("the pod ready again after a restart", async () => {
          const p = await cluster.client.get(
            `/api/v1/namespaces/${NS}/pods/${pod.metadata.name}`,
          );
          const c = p.status.containerStatuses[0];
          return c.restartCount === 1 && isReady(p) ? p : undefined;
        });
        const c = restarted.status.containerStatuses[0];
        assertEquals(c.lastState.terminated.exitCode, 137);
        assertEquals(restarted.status.podIP, ip);
        const res = await fetch(`http://${ip}:9092/after-restart`);
        assertEquals((await res.json()).pod, pod.metadata.name);
        // The dead fizzlet's app went with it, as a container's processes would.
        const now = (await Promise.all(netns.map(netnsPids))).flat();
        const survivors = before.filter((p) => now.includes(p));
        const otherPod = firstRecords.find((r) => r.pid !== pid)!;
        assert(survivors.includes(otherPod.pid), "the other pod was left alone");
        assertEquals(survivors.length, before.length / 2, `survivors ${survivors} of ${before}`);
        firstRecords = podProcesses(cluster);
        assertEquals(firstRecords.length, 2);
      });

      await step("scaling to 0 stops the processes, scaling back starts new ones", async () => {
        await cluster.kubectl(["-n", NS, "scale", "deployment/podinfo", "--replicas=0"]);
        await eventually(
          "no podinfo pods",
          async () => (await podinfoPods(cluster)).length === 0 ? true : undefined,
        );
        for (const rec of firstRecords) assert(!isAlive(rec), `pod process ${rec.pid} ended`);
        assertEquals(await podNamespaces(cluster), []);
        await eventually(
          "EndpointSlices without endpoints",
          async () => (await sliceAddresses(cluster)).length === 0 ? true : undefined,
        );
        for (const pod of firstPods) {
          const unreachable = await fetch(`http://${pod.status.podIP}:9092/f2s/health`, {
            signal: AbortSignal.timeout(1_000),
          }).then((r) => r.body?.cancel().then(() => false), () => true);
          assert(unreachable, `${pod.status.podIP} no longer answers`);
        }

        await cluster.kubectl(["-n", NS, "scale", "deployment/podinfo", "--replicas=2"]);
        const pods = await readyPods(cluster, 2);
        const ips = pods.map((p) => p.status.podIP).sort();
        await eventually("EndpointSlices listing the new pods", async () => {
          const addresses = await sliceAddresses(cluster);
          return JSON.stringify(addresses) === JSON.stringify(ips) ? addresses : undefined;
        });
        const res = await fetch(`http://${ips[0]}:9092/again`);
        assertEquals((await res.json()).ip, ips[0]);
        assertEquals(podProcesses(cluster).length, 2);
      });

      await step("deleting the Deployment ends its processes and namespaces", async () => {
        const records = podProcesses(cluster);
        assertEquals(records.length, 2);
        await cluster.kubectl(["-n", NS, "delete", "deployment/podinfo", "--wait=false"]);
        await eventually(
          "the Deployment's pods gone",
          async () => (await podinfoPods(cluster)).length === 0 ? true : undefined,
        );
        await eventually(
          "the pod processes gone",
          () => Promise.resolve(records.every((r) => !isAlive(r)) ? true : undefined),
          15_000,
        );
        assertEquals(await podNamespaces(cluster), []);
      });

      await step("an example function image runs as a pod", async () => {
        await cluster.kubectl(
          ["apply", "-f", "-"],
          `apiVersion: v1
kind: Pod
metadata: { name: hello-node, namespace: ${NS} }
spec:
  terminationGracePeriodSeconds: 5
  containers:
    - name: function
      image: f2s-examples/nodejs:latest
`,
        );
        const pod = await eventually("the example pod ready", async () => {
          const p = await cluster.client.get(`/api/v1/namespaces/${NS}/pods/hello-node`);
          return isReady(p) ? p : undefined;
        }, 90_000);
        const res = await fetch(`http://${pod.status.podIP}:9092/anything?x=1`);
        assertEquals(res.status, 200);
        await res.body?.cancel();
        await cluster.kubectl([
          "-n",
          NS,
          "delete",
          "pod/hello-node",
          "--wait=true",
          "--timeout=60s",
        ]);
        assertEquals(await podNamespaces(cluster), []);
      });

      await step("helm installs and uninstalls a chart", async () => {
        const chart = await Deno.makeTempDir({ prefix: "f2s-cluster-chart-" });
        try {
          await Deno.mkdir(`${chart}/templates`);
          await Deno.writeTextFile(
            `${chart}/Chart.yaml`,
            "apiVersion: v2\nname: probe\nversion: 0.1.0\n",
          );
          await Deno.writeTextFile(
            `${chart}/templates/cm.yaml`,
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\n" +
              "data:\n  value: {{ .Values.value | quote }}\n",
          );
          const helm = (args: string[]) =>
            new Deno.Command(`${cluster.binDir}/helm`, { args, env: cluster.env }).output();
          const install = await helm([
            "install",
            "probe",
            chart,
            "-n",
            NS,
            "--set",
            "value=42",
            "--wait",
          ]);
          assert(install.success, new TextDecoder().decode(install.stderr));
          const cm = await cluster.client.get(`/api/v1/namespaces/${NS}/configmaps/probe-cm`);
          assertEquals(cm.data.value, "42");
          const uninstall = await helm(["uninstall", "probe", "-n", NS, "--wait"]);
          assert(uninstall.success, new TextDecoder().decode(uninstall.stderr));
          assertEquals(
            await cluster.client.find(`/api/v1/namespaces/${NS}/configmaps/probe-cm`),
            undefined,
          );
        } finally {
          await Deno.remove(chart, { recursive: true });
        }
      });
    } catch (e) {
      failed = true;
      throw e;
    } finally {
      const records = cluster.processes();
      const artifacts = new URL("../artifacts/cluster", import.meta.url).pathname;
      await cluster.stop(failed ? { keepLogs: artifacts } : {});
      if (failed) console.error(`cluster logs kept in ${artifacts}`);
      // Nothing of the cluster is left: processes, namespaces, links, folder, ports.
      assertEquals(records.filter(isAlive).map((r) => `${r.pid} ${r.name}`), []);
      assertEquals(await leftovers(cluster.net), []);
      assert(!(await Deno.stat(cluster.dir).then(() => true, () => false)), "work folder removed");
      for (const port of Object.values(cluster.ports)) {
        Deno.listen({ hostname: "127.0.0.1", port }).close();
      }
    }
  },
});

Deno.test({
  name: "test cluster: leftovers of a crashed run are removed before the slot is reused",
  ignore: gap !== undefined,
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "f2s-cluster-root-" });
    const slot = 49;
    const net = clusterNet(slot);
    const dir = slotDir(root, slot);
    let sleeper: Deno.ChildProcess | undefined;
    try {
      // A run that "crashed": its owner is gone, a process and a pod network are left.
      await Deno.mkdir(dir);
      const dead = new Deno.Command("true").spawn();
      await dead.status;
      writeOwner(dir, { pid: dead.pid, start: "1", name: "owner", persistent: false });
      sleeper = new Deno.Command("setsid", { args: ["sleep", "60"], stdin: "null" }).spawn();
      await eventually("sleep started", () => Promise.resolve(processStart(sleeper!.pid)));
      const rec = { pid: sleeper.pid, start: processStart(sleeper.pid)!, name: "pod x/y" };
      appendPidFile(`${dir}/pids`, rec);
      await createBridge(net);
      await createPodNet(net, podNetNames(net, 7), net.podCidr.replace(/0\/24$/, "7"));
      assertEquals((await leftovers(net)).length, 3); // netns, veth, bridge

      assertEquals(await cleanupStale(root), [slot]);
      assert(!isAlive(rec), "the recorded process was ended");
      assertEquals(await leftovers(net), []);
      assert(!(await Deno.stat(dir).then(() => true, () => false)), "slot folder removed");
      for (const port of Object.values(slotPorts(slot))) {
        Deno.listen({ hostname: "127.0.0.1", port }).close();
      }
    } finally {
      if (sleeper) {
        try {
          sleeper.kill("SIGKILL");
        } catch {
          // Already ended by the cleanup.
        }
        await sleeper.status;
      }
      const { sweepClusterNet } = await import("./net.ts");
      await sweepClusterNet(net);
      await Deno.remove(root, { recursive: true });
    }
  },
});
