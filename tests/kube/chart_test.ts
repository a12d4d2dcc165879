/**
 * The Helm chart's life cycle on the real test cluster, in namespaces that enforce the
 * `restricted` Pod Security level: every pod the chart renders and the pod F2S renders for a
 * function pass the API server's Pod Security admission (server-side dry run; a pod without
 * its securityContext is refused, so the check can fail); `helm install` and `helm upgrade`
 * get their pods admitted; functions run there; `helm uninstall` runs the pre-delete hook
 * (`f2s cleanup` in a Job the process kubelet runs with the hook's service account), which
 * waits for the leader to let go, then removes the finalizers, and both namespaces are gone.
 * Without the hook, the same uninstall leaves the namespace stuck in Terminating.
 *
 * The control-plane image cannot run here (its config volume needs a container runtime): its
 * pods are checked for admission and scaled to zero; `f2s serve` runs as a process with the
 * chart's service account instead, as in ha_test.ts.
 */

import { parse as parseYaml, parseAllDocuments } from "yaml";
import { parseFunction } from "../../common/function.ts";
import { deploymentFor } from "../../control/kube/manifests.ts";
import { FINALIZER } from "../../control/kube/paths.ts";
import { assert, assertEquals, assertMatch } from "../harness/assert.ts";
import { type Cluster, startCluster } from "../cluster/harness.ts";
import { F2S_PROGRAM } from "../cluster/images.ts";
import type { KubeObject } from "../cluster/kube.ts";
import {
  CHART_DIR,
  CONTAINERS_NS,
  eventually,
  FIXTURES,
  NS,
  paths,
  platformGap,
  readyCondition,
  seedFunction,
  sequentialSteps,
  type ServeProcess,
  serviceAccountKubeconfig,
  startServe,
} from "./helpers.ts";

const gap = await platformGap();
if (gap) console.warn(`SKIPPING tests/kube: ${gap}`);

// deno-lint-ignore no-explicit-any
const VALUES = parseYaml(await Deno.readTextFile(`${CHART_DIR}/values.yaml`)) as any;
const IMAGE: string = VALUES.image.repository;
const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const RESTRICTED = "pod-security.kubernetes.io/enforce";
const LEASE_ARGS = ["--lease-duration", "3s", "--renew-deadline", "2s", "--retry-period", "500ms"];

function docs(yaml: string): KubeObject[] {
  return parseAllDocuments(yaml).map((d) => d.toJS()).filter((d) => d && d.kind);
}

/** The pods a rendered manifest would make: Deployments' and Jobs' templates. */
function podTemplates(all: KubeObject[]): { owner: string; pod: KubeObject }[] {
  return all.filter((d) => d.kind === "Deployment" || d.kind === "Job").map((d) => ({
    owner: `${d.kind} ${d.metadata.name}`,
    pod: { metadata: d.spec.template.metadata, spec: d.spec.template.spec },
  }));
}

/** `kubectl create --dry-run=server` of `pod` in `namespace`: admission runs, nothing is stored. */
async function dryRunPod(
  cluster: Cluster,
  namespace: string,
  name: string,
  pod: KubeObject,
): Promise<{ ok: boolean; err: string }> {
  const manifest = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { ...pod.metadata, name, namespace },
    spec: pod.spec,
  };
  return await cluster.run(
    "kubectl",
    ["create", "--dry-run=server", "-o", "name", "-f", "-"],
    JSON.stringify(manifest),
  );
}

const selector = (component: string) =>
  encodeURIComponent(`app.kubernetes.io/name=f2s,app.kubernetes.io/component=${component}`);

Deno.test({
  name: "kubernetes: the chart installs, upgrades and uninstalls under restricted Pod Security",
  ignore: gap !== undefined,
  async fn(t) {
    const cluster = await startCluster({
      images: { "f2s-test/": FIXTURES, [IMAGE]: F2S_PROGRAM },
    });
    const api = cluster.client;
    const tmp = await Deno.makeTempDir({ prefix: "f2s-kube-chart-" });
    let serve: ServeProcess | undefined;
    const step = sequentialSteps(t);
    const helm = async (...args: string[]) => {
      const r = await cluster.run("helm", args);
      assert(r.ok, `helm ${args.join(" ")} failed:\n${r.out}${r.err}`);
      return r.out;
    };
    const podsOf = async (component: string) =>
      (await api.get(`/api/v1/namespaces/${NS}/pods?labelSelector=${selector(component)}`)).items;
    const setFinalizers = (name: string, finalizers: string[] | null) =>
      api.patch(paths.fn(name), { metadata: { finalizers } }, "merge");
    const gone = (path: string) => async () => (await api.find(path)) ? undefined : true;

    try {
      await step(
        "every pod the chart renders meets restricted; uninstall has its hook",
        async () => {
          const lint = await cluster.run("helm", ["lint", CHART_DIR]);
          assert(lint.ok, `helm lint failed:\n${lint.out}${lint.err}`);
          const all = docs(await helm("template", "f2s", CHART_DIR));
          for (const ns of all.filter((d) => d.kind === "Namespace")) {
            assertEquals(ns.metadata.labels[RESTRICTED], "restricted", ns.metadata.name);
          }
          const pods = podTemplates(all);
          assertEquals(pods.map((p) => p.owner).sort(), [
            "Deployment f2s",
            "Deployment f2s-grafana",
            "Deployment f2s-prometheus",
            "Job f2s-cleanup",
          ]);
          for (const { owner, pod } of pods) {
            assertEquals(pod.spec.securityContext.runAsNonRoot, true, owner);
            assertEquals(
              pod.spec.securityContext.seccompProfile,
              { type: "RuntimeDefault" },
              owner,
            );
            for (const c of pod.spec.containers) {
              assertEquals(c.securityContext.allowPrivilegeEscalation, false, owner);
              assertEquals(c.securityContext.capabilities, { drop: ["ALL"] }, owner);
            }
          }
          // F2S's own pods: a read-only root, /tmp writable.
          for (const owner of ["Deployment f2s", "Job f2s-cleanup"]) {
            const c = pods.find((p) => p.owner === owner)!.pod.spec.containers[0];
            assertEquals(c.securityContext.readOnlyRootFilesystem, true, owner);
            assert(c.volumeMounts.some((m: KubeObject) => m.mountPath === "/tmp"), owner);
            assertEquals(c.image, `${IMAGE}:${VALUES.image.tag || "0.1.0"}`);
          }
          // The hook: its account and Roles before its Job, all gone once it succeeded.
          const hooks = all.filter((d) => d.metadata.annotations?.["helm.sh/hook"]);
          assertEquals(
            hooks.map((d) => `${d.kind} ${d.metadata.namespace}/${d.metadata.name}`).sort(),
            [
              `Job ${NS}/f2s-cleanup`,
              `Role ${CONTAINERS_NS}/f2s-cleanup`,
              `Role ${NS}/f2s-cleanup`,
              `RoleBinding ${CONTAINERS_NS}/f2s-cleanup`,
              `RoleBinding ${NS}/f2s-cleanup`,
              `ServiceAccount ${NS}/f2s-cleanup`,
            ],
          );
          for (const h of hooks) {
            assertEquals(h.metadata.annotations["helm.sh/hook"], "pre-delete");
            assertEquals(
              h.metadata.annotations["helm.sh/hook-delete-policy"],
              "before-hook-creation,hook-succeeded",
            );
            const weight = Number(h.metadata.annotations["helm.sh/hook-weight"]);
            assert(h.kind === "Job" ? weight === 0 : weight < 0, `${h.kind} weight ${weight}`);
          }
          const job = hooks.find((h) => h.kind === "Job")!;
          assertEquals(job.spec.template.spec.containers[0].args[0], "cleanup");
          const without = docs(
            await helm("template", "f2s", CHART_DIR, "--set", "cleanup.enabled=false,podSecurity="),
          );
          assert(!without.some((d) => d.metadata.annotations?.["helm.sh/hook"]));
          assert(!without.some((d) => d.metadata.labels?.[RESTRICTED]));
        },
      );

      await step("helm install: restricted namespaces, every pod admitted", async () => {
        const started = Date.now();
        await helm("install", "f2s", CHART_DIR);
        console.log(`helm install: ${Date.now() - started} ms`);
        for (const ns of [NS, CONTAINERS_NS]) {
          const labels = (await api.get(`/api/v1/namespaces/${ns}`)).metadata.labels;
          assertEquals(labels[RESTRICTED], "restricted", ns);
        }
        // Pods exist only if Pod Security admission let the ReplicaSets create them.
        for (
          const [component, count] of [["control-plane", 2], ["prometheus", 1], ["grafana", 1]]
        ) {
          await eventually(
            `${count} ${component} pods`,
            async () => (await podsOf(component as string)).length === count ? true : undefined,
          );
        }
        const sets = await api.get(`/apis/apps/v1/namespaces/${NS}/replicasets`);
        for (const rs of sets.items) {
          const failure = (rs.status.conditions ?? []).find((c: KubeObject) =>
            c.type === "ReplicaFailure"
          );
          assert(!failure, `${rs.metadata.name}: ${failure?.message}`);
        }
        // Only the f2s serve process below is to act on the cluster.
        await cluster.kubectl(["scale", "-n", NS, "deployment/f2s", "--replicas=0"]);
      });

      await step(
        "Pod Security admission (dry run) accepts the chart's and a function's pods, refuses a bare one",
        async () => {
          const all = docs(await helm("template", "f2s", CHART_DIR));
          for (const [i, { owner, pod }] of podTemplates(all).entries()) {
            if (owner === "Job f2s-cleanup") {
              // Its service account exists only while the hook runs; admission is the point.
              delete pod.spec.serviceAccountName;
            }
            const r = await dryRunPod(cluster, NS, `check-${i}`, pod);
            assert(r.ok, `${owner} refused:\n${r.err}`);
          }
          const parsed = parseFunction(
            parseYaml(seedFunction("probe", { containerImage: "f2s-test/clock:1" })),
          );
          assert(parsed.ok);
          const template = deploymentFor(parsed.fn, CONTAINERS_NS, 1).spec.template;
          const accepted = await dryRunPod(cluster, CONTAINERS_NS, "fn-check", template);
          assert(accepted.ok, `the function pod was refused:\n${accepted.err}`);
          const bare = structuredClone(template);
          delete bare.spec.securityContext;
          delete bare.spec.containers[0].securityContext;
          const refused = await dryRunPod(cluster, CONTAINERS_NS, "fn-bare", bare);
          assert(!refused.ok, "a function pod without securityContext must be refused");
          assertMatch(refused.err, /violates PodSecurity "restricted:latest"/);
          assertMatch(refused.err, /runAsNonRoot|allowPrivilegeEscalation/);
        },
      );

      await step("functions run in the restricted namespace, with F2S's finalizer", async () => {
        serve = await startServe({
          kubeconfig: await serviceAccountKubeconfig(cluster, tmp, "f2s"),
          identity: "a",
          args: LEASE_ARGS,
        });
        for (const name of ["tick", "tock"]) {
          await cluster.kubectl(
            ["apply", "-f", "-"],
            seedFunction(name, { containerImage: "f2s-test/clock:1", minReplicas: 1 }),
          );
        }
        for (const name of ["tick", "tock"]) {
          const fn = await eventually(`${name} Ready`, async () => {
            const f = await api.find(paths.fn(name));
            return readyCondition(f)?.status === "True" && f!.status.readyReplicas === 1
              ? f
              : undefined;
          });
          assert(fn.metadata.finalizers.includes(FINALIZER));
        }
        const res = await fetch(`${serve.url}/invoke/tick`);
        assertEquals(res.status, 200);
        await res.body?.cancel();

        // f2s cleanup refuses to act under a leader that does not go away.
        const refused = await new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", MAIN, "cleanup", "--kubeconfig", cluster.kubeconfig, "--wait", "2s"],
          stdout: "piped",
          stderr: "piped",
          signal: AbortSignal.timeout(60_000),
        }).output();
        const err = new TextDecoder().decode(refused.stderr);
        assertEquals(refused.code, 1, err);
        assertMatch(err, /a still renews the Lease f2s\/f2s-leader after 2000 ms/);
        for (const name of ["tick", "tock"]) {
          assert((await api.get(paths.fn(name))).metadata.finalizers.includes(FINALIZER));
          await api.get(paths.deployment(name));
        }
      });

      await step("helm upgrade rolls the control plane; its new pods are admitted", async () => {
        const before = (await api.get(`/apis/apps/v1/namespaces/${NS}/deployments/f2s`))
          .metadata.generation;
        await helm("upgrade", "f2s", CHART_DIR, "--set", "resync=1m,replicas=1");
        const status = JSON.parse(await helm("status", "f2s", "-o", "json"));
        assertEquals(status.version, 2);
        assertEquals(status.info.status, "deployed");
        const dep = await api.get(`/apis/apps/v1/namespaces/${NS}/deployments/f2s`);
        assert(dep.metadata.generation > before);
        const env = dep.spec.template.spec.containers[0].env;
        assertEquals(env.find((e: KubeObject) => e.name === "F2S_RESYNC").value, "1m");
        assertEquals(dep.spec.replicas, 1);
        await eventually("the upgraded control plane's pod", async () => {
          const pods = await podsOf("control-plane");
          return pods.some((p: KubeObject) =>
              p.spec.containers[0].env.some((e: KubeObject) =>
                e.name === "F2S_RESYNC" && e.value === "1m"
              )
            )
            ? true
            : undefined;
        });
        await cluster.kubectl(["scale", "-n", NS, "deployment/f2s", "--replicas=0"]);
        // The functions were not touched.
        assertEquals(readyCondition(await api.find(paths.fn("tick")))?.status, "True");
      });

      await step(
        "helm uninstall: the hook waits for the leader, removes the finalizers; both namespaces go",
        async () => {
          const started = Date.now();
          const uninstall = cluster.run("helm", ["uninstall", "f2s", "--timeout", "3m"]);
          // The hook's Job runs while a leader still holds the Lease: it must wait.
          await eventually("the cleanup Job's pod to run", async () => {
            const pods = await podsOf("cleanup");
            return pods.some((p: KubeObject) => p.status?.phase === "Running") ? true : undefined;
          }, 60_000);
          await new Promise((r) => setTimeout(r, 2_000));
          for (const name of ["tick", "tock"]) {
            const fn = await api.get(paths.fn(name));
            assert(fn.metadata.finalizers?.includes(FINALIZER), `${name}: removed under a leader`);
          }
          // What scaling the control plane to zero does to its pods: they stop, releasing the Lease.
          const stoppedAt = Date.now();
          assertEquals(await serve!.stop("SIGTERM"), 0);
          const result = await uninstall;
          assert(result.ok, `helm uninstall failed:\n${result.out}${result.err}`);
          console.log(
            `helm uninstall: ${Date.now() - started} ms, ${Date.now() - stoppedAt} ms after the ` +
              `leader stopped`,
          );
          const log = await Deno.readTextFile(
            `${cluster.dir}/pods/${
              (await Array.fromAsync(Deno.readDir(`${cluster.dir}/pods`))).find((e) =>
                e.name.startsWith(`${NS}_f2s-cleanup-`)
              )!.name
            }`,
          );
          // Two Deployments and two Services.
          assertMatch(log, /4 objects deleted/);
          assertMatch(log, /finalizer removed from 2 Functions/);
          for (const ns of [CONTAINERS_NS, NS]) {
            await eventually(`namespace ${ns} gone`, gone(`/api/v1/namespaces/${ns}`), 120_000);
          }
          console.log(`namespaces gone ${Date.now() - started} ms after helm uninstall started`);
          // The CRD stays, as Helm keeps crds/.
          await api.get(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/functions.f2s.opensight.ch",
          );
        },
      );

      await step(
        "without the hook the namespace stays Terminating (what the hook prevents)",
        async () => {
          await helm("install", "f2s", CHART_DIR, "--set", "cleanup.enabled=false");
          await cluster.kubectl(["scale", "-n", NS, "deployment/f2s", "--replicas=0"]);
          await cluster.kubectl(
            ["apply", "-f", "-"],
            seedFunction("stuck", { containerImage: "f2s-test/clock:1" }),
          );
          await setFinalizers("stuck", [FINALIZER]);
          await helm("uninstall", "f2s");
          await new Promise((r) => setTimeout(r, 5_000));
          const ns = await api.get(`/api/v1/namespaces/${NS}`);
          assertEquals(ns.status.phase, "Terminating");
          const remaining = (ns.status.conditions ?? []).find((c: KubeObject) =>
            c.type === "NamespaceFinalizersRemaining"
          );
          assertEquals(remaining?.status, "True");
          assertMatch(remaining.message, /f2s\.opensight\.ch\/cleanup/);
          await setFinalizers("stuck", null);
          await eventually(`namespace ${NS} gone`, gone(`/api/v1/namespaces/${NS}`), 120_000);
        },
      );
    } finally {
      await serve?.stop("SIGKILL");
      await cluster.stop();
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
