/**
 * The Helm chart and high availability on the real test cluster: the chart lints, renders
 * and applies; its service account can do what F2S needs and nothing more, both in-cluster
 * style (token files) and from a kubeconfig; two `f2s serve` replicas with that account
 * share the work (one leads, both dispatch); killing the leader hands over within the lease
 * duration and the new leader reconciles what happened meanwhile; a leader that stops hands
 * over at once.
 */

import { parseAllDocuments } from "yaml";
import { parseConfig } from "../../control/config.ts";
import { createKubeClient, KubeError } from "../../control/kube/client.ts";
import { inClusterConnection } from "../../control/kube/connection.ts";
import { assert, assertEquals, assertMatch } from "../harness/assert.ts";
import { startCluster } from "../cluster/harness.ts";
import type { KubeObject } from "../cluster/kube.ts";
import {
  CHART_DIR,
  CONTAINERS_NS,
  CRD_FILE,
  eventually,
  FIXTURES,
  leaseHolder,
  NS,
  paths,
  platformGap,
  readyCondition,
  seedFunction,
  sequentialSteps,
  type ServeProcess,
  startServe,
} from "./helpers.ts";

const gap = await platformGap();
if (gap) console.warn(`SKIPPING tests/kube: ${gap}`);

const LEASE = { duration: 3000, renew: 2000, retry: 500 };
const SERVE_ARGS = [
  "--lease-duration",
  `${LEASE.duration}ms`,
  "--renew-deadline",
  `${LEASE.renew}ms`,
  "--retry-period",
  `${LEASE.retry}ms`,
];
const SA = `system:serviceaccount:${NS}:f2s`;

function docs(yaml: string): KubeObject[] {
  return parseAllDocuments(yaml).map((d) => d.toJS()).filter((d) => d && d.kind);
}

function find(all: KubeObject[], kind: string, name: string, namespace?: string): KubeObject {
  const doc = all.find((d) =>
    d.kind === kind && d.metadata.name === name &&
    (namespace === undefined || d.metadata.namespace === namespace)
  );
  assert(doc, `${kind} ${namespace ?? ""}/${name} not rendered`);
  return doc;
}

Deno.test({
  name: "kubernetes: the Helm chart installs, and two f2s serve replicas fail over",
  ignore: gap !== undefined,
  async fn(t) {
    const cluster = await startCluster({ images: { "f2s-test/": FIXTURES } });
    const api = cluster.client;
    const replicas: ServeProcess[] = [];
    const tmp = await Deno.makeTempDir({ prefix: "f2s-kube-ha-" });
    const step = sequentialSteps(t);
    const holder = () => leaseHolder(api);
    const start = async (identity: string) => {
      const p = await startServe({
        kubeconfig: `${tmp}/sa.kubeconfig`,
        identity,
        args: SERVE_ARGS,
        config: "f2s: { autoscaling: { tick: 500ms } }",
      });
      replicas.push(p);
      return p;
    };
    const status = async (url: string, init?: RequestInit) => {
      const res = await fetch(url, init);
      await res.body?.cancel();
      return res.status;
    };

    try {
      await step("helm lint passes and helm template renders the chart", async () => {
        const lint = await cluster.run("helm", ["lint", CHART_DIR]);
        assert(lint.ok, `helm lint failed:\n${lint.out}${lint.err}`);
        assertMatch(lint.out, /1 chart\(s\) linted, 0 chart\(s\) failed/);
        const rendered = await cluster.run("helm", [
          "template",
          "f2s",
          CHART_DIR,
          "--include-crds",
        ]);
        assert(rendered.ok, rendered.err);
        const all = docs(rendered.out);
        const crd = find(all, "CustomResourceDefinition", "functions.f2s.opensight.ch");
        assertEquals(crd, docs(await Deno.readTextFile(CRD_FILE))[0], "the chart ships crds/");
        find(all, "Namespace", NS);
        find(all, "Namespace", CONTAINERS_NS);
        find(all, "ServiceAccount", "f2s", NS);
        find(all, "Role", "f2s", NS);
        find(all, "Role", "f2s", CONTAINERS_NS);
        const dep = find(all, "Deployment", "f2s", NS);
        assertEquals(dep.spec.replicas, 2);
        const c = dep.spec.template.spec.containers[0];
        assertEquals(c.args, ["serve", "--config", "/etc/f2s/config.yaml"]);
        assertEquals(c.readinessProbe.httpGet.path, "/ready");
        assertEquals(c.livenessProbe.httpGet.path, "/health");
        assert(c.resources.requests.cpu, "resources set");
        assertEquals(dep.spec.template.spec.serviceAccountName, "f2s");
        assertEquals(find(all, "PodDisruptionBudget", "f2s", NS).spec.minAvailable, 1);
        assertEquals(find(all, "Service", "f2s", NS).spec.ports[0].port, 8080);
        const config = parseConfig(
          find(all, "ConfigMap", "f2s-config", NS).data["config.yaml"],
          "chart",
          {},
        );
        assertEquals(config.autoscaling.source, "prometheus");
        assertEquals(config.prometheus.url, "http://f2s-prometheus.f2s:9090");
        find(all, "Deployment", "f2s-prometheus", NS);
        find(all, "Deployment", "f2s-grafana", NS);
        const dashboards = find(all, "ConfigMap", "f2s-grafana-dashboards", NS);
        assertEquals(
          JSON.parse(dashboards.data["f2s.json"]),
          JSON.parse(
            await Deno.readTextFile(new URL("../../docs/grafana-dashboard.json", import.meta.url)),
          ),
        );

        const lean = await cluster.run("helm", [
          "template",
          "f2s",
          CHART_DIR,
          "--set",
          "prometheus.enabled=false,grafana.enabled=false,replicas=3",
          "--set-json",
          'config={"debug":true,"f2s":{"timeouts":{"request_timeout":5000}}}',
        ]);
        assert(lean.ok, lean.err);
        const leanDocs = docs(lean.out);
        assert(!leanDocs.some((d) => d.metadata.name.startsWith("f2s-prometheus")));
        assert(!leanDocs.some((d) => d.metadata.name.startsWith("f2s-grafana")));
        assertEquals(find(leanDocs, "Deployment", "f2s", NS).spec.replicas, 3);
        const leanConfig = parseConfig(
          find(leanDocs, "ConfigMap", "f2s-config", NS).data["config.yaml"],
          "chart",
          {},
        );
        assertEquals(leanConfig.autoscaling.source, "local");
        assertEquals(leanConfig.timeouts.requestTimeout, 5000);
        assertEquals(leanConfig.debug, true);
      });

      await step("the rendered manifests apply to the cluster", async () => {
        const rendered = await cluster.run("helm", [
          "template",
          "f2s",
          CHART_DIR,
          "--include-crds",
        ]);
        const applied = await cluster.run("kubectl", ["apply", "-f", "-"], rendered.out);
        assert(applied.ok, `kubectl apply failed:\n${applied.err}`);
        await cluster.kubectl([
          "wait",
          "--for=condition=Established",
          "crd/functions.f2s.opensight.ch",
          "--timeout=30s",
        ]);
        const dep = await api.get(`/apis/apps/v1/namespaces/${NS}/deployments/f2s`);
        assertEquals(dep.spec.replicas, 2);
        await api.get(`/apis/policy/v1/namespaces/${NS}/poddisruptionbudgets/f2s`);
        await api.get(`/api/v1/namespaces/${NS}/configmaps/f2s-config`);
        await api.get(`/apis/rbac.authorization.k8s.io/v1/namespaces/${CONTAINERS_NS}/roles/f2s`);
        // The control plane's image is not one the test kubelet can run; take it down so
        // only the f2s serve processes of this test act on the cluster.
        await cluster.kubectl(["scale", "-n", NS, "deployment/f2s", "--replicas=0"]);
      });

      await step("the chart's service account may do what F2S needs, nothing more", async () => {
        const can = async (...args: string[]) =>
          (await cluster.run("kubectl", ["auth", "can-i", "--as", SA, ...args])).out.trim();
        const allowed = [
          ["list", "functions.f2s.opensight.ch", "-n", NS],
          ["watch", "functions.f2s.opensight.ch", "-n", NS],
          ["create", "functions.f2s.opensight.ch", "-n", NS],
          ["patch", "functions.f2s.opensight.ch", "--subresource=status", "-n", NS],
          ["update", "leases.coordination.k8s.io/f2s-leader", "-n", NS],
          ["patch", "leases.coordination.k8s.io/f2s-leader-load", "-n", NS],
          ["update", "leases.coordination.k8s.io/f2s-leader-schedules", "-n", NS],
          ["create", "events.events.k8s.io", "-n", NS],
          ["create", "events", "-n", NS],
          ["watch", "pods", "-n", CONTAINERS_NS],
          ["list", "functions.f2s.opensight.ch", "--all-namespaces"],
          ["patch", "functions.f2s.opensight.ch", "--subresource=status", "-n", "default"],
          ["create", "deployments.apps", "-n", CONTAINERS_NS],
          ["patch", "deployments.apps", "--subresource=scale", "-n", CONTAINERS_NS],
          ["delete", "services", "-n", CONTAINERS_NS],
          ["watch", "endpointslices.discovery.k8s.io", "-n", CONTAINERS_NS],
        ];
        const denied = [
          ["get", "secrets", "-n", NS],
          ["get", "secrets", "-n", CONTAINERS_NS],
          ["delete", "pods", "-n", CONTAINERS_NS],
          ["list", "pods", "-n", NS],
          ["delete", "events", "-n", NS],
          ["create", "deployments.apps", "-n", "default"],
          ["watch", "functions.f2s.opensight.ch", "--all-namespaces"],
          ["patch", "functions.f2s.opensight.ch", "-n", "default"],
          ["delete", "functions.f2s.opensight.ch", "-n", "default"],
          ["update", "leases.coordination.k8s.io/other", "-n", NS],
          ["delete", "leases.coordination.k8s.io/f2s-leader", "-n", NS],
          ["create", "deployments.apps", "-n", NS],
          ["update", "endpointslices.discovery.k8s.io", "-n", CONTAINERS_NS],
        ];
        for (const a of allowed) assertEquals(await can(...a), "yes", `can ${a.join(" ")}`);
        for (const d of denied) assertEquals(await can(...d), "no", `cannot ${d.join(" ")}`);
      });

      await step("in-cluster credentials (token and CA files) reach the API", async () => {
        const token = await api.create(
          `/api/v1/namespaces/${NS}/serviceaccounts/f2s/token`,
          {
            apiVersion: "authentication.k8s.io/v1",
            kind: "TokenRequest",
            spec: { expirationSeconds: 3600 },
          },
        );
        const saDir = `${tmp}/serviceaccount`;
        await Deno.mkdir(saDir);
        await Deno.writeTextFile(`${saDir}/token`, token.status.token);
        await Deno.writeTextFile(`${saDir}/namespace`, NS);
        const kubeconfig = await Deno.readTextFile(cluster.kubeconfig);
        const caData = /certificate-authority-data: (\S+)/.exec(kubeconfig)![1];
        const ca = new TextDecoder().decode(
          Uint8Array.from(atob(caData), (ch) => ch.charCodeAt(0)),
        );
        await Deno.writeTextFile(`${saDir}/ca.crt`, ca);
        const conn = inClusterConnection({
          KUBERNETES_SERVICE_HOST: "127.0.0.1",
          KUBERNETES_SERVICE_PORT: String(cluster.ports.apiserver),
        }, saDir);
        assertEquals(conn.namespace, NS);
        const client = createKubeClient(conn);
        try {
          const list = await client.get(
            `/apis/f2s.opensight.ch/v1alpha1/namespaces/${NS}/functions`,
          );
          assertEquals(list.items, []);
          const denied = await client.get(`/api/v1/namespaces/${NS}/secrets`).then(
            () => undefined,
            (e) => e,
          );
          assert(denied instanceof KubeError && denied.status === 403, `secrets: ${denied}`);
        } finally {
          client.close();
        }
        // The same token from a kubeconfig (tokenFile), as the f2s serve replicas below use it.
        await Deno.writeTextFile(
          `${tmp}/sa.kubeconfig`,
          `apiVersion: v1
kind: Config
clusters: [{ name: test, cluster: { server: "${cluster.server}", certificate-authority: serviceaccount/ca.crt } }]
users: [{ name: f2s, user: { tokenFile: serviceaccount/token } }]
contexts: [{ name: f2s, context: { cluster: test, user: f2s, namespace: ${NS} } }]
current-context: f2s
`,
        );
      });

      let leader: ServeProcess | undefined;
      let follower: ServeProcess | undefined;
      const identityOf = (p: ServeProcess) => (p === replicas[0] ? "a" : "b");

      await step("two replicas: one leads and reconciles, both serve and dispatch", async () => {
        const a = await start("a");
        const b = await start("b");
        const first = await eventually("a leader", async () => {
          const h = await holder();
          return h === "a" || h === "b" ? h : undefined;
        });
        leader = first === "a" ? a : b;
        follower = first === "a" ? b : a;
        for (const name of ["hello", "doomed"]) {
          await cluster.kubectl(
            ["apply", "-f", "-"],
            seedFunction(name, {
              containerImage: "f2s-test/clock:1",
              minReplicas: name === "hello" ? 1 : 0,
              maxReplicas: 1,
            }),
          );
        }
        await eventually("hello to be Ready", async () => {
          const f = await api.find(paths.fn("hello"));
          return readyCondition(f)?.status === "True" && f!.status.readyReplicas === 1
            ? true
            : undefined;
        });
        await eventually("doomed to be deployed", () => api.find(paths.deployment("doomed")));
        const answers = [];
        for (const p of [leader, follower]) {
          const res = await fetch(`${p.url}/invoke/hello`);
          assertEquals(res.status, 200);
          answers.push((await res.json()).instance);
        }
        assertEquals(answers[0], answers[1], "both replicas reach the same pod");
        // Waking a function from zero is not left to the leader: the follower asks itself.
        const woken = await fetch(`${follower.url}/invoke/doomed`);
        assertEquals(woken.status, 200, "a follower wakes a function from zero");
        await woken.body?.cancel();
        const wakes = await (await fetch(`${follower.url}/events?type=scaling.decision`)).json();
        assert(wakes.some((e: KubeObject) => e.function === "doomed" && e.data.reason === "wake"));
        const elected = async (p: ServeProcess) =>
          (await (await fetch(`${p.url}/events?type=leader.elected`)).json()).length;
        assertEquals(await elected(leader), 1);
        assertEquals(await elected(follower), 0);
      });

      await step(
        "killing the leader hands over within the lease duration; nothing is left unreconciled",
        async () => {
          const killedAt = Date.now();
          await leader!.stop("SIGKILL");
          const lastRenewal = Date.parse((await api.get(paths.lease())).spec.renewTime);
          // While nobody leads: a new function through the survivor's API, a Deployment
          // deleted by hand, a Function deleted (its finalizer waits for a leader).
          const created = await fetch(`${follower!.url}/functions`, {
            method: "POST",
            headers: { "content-type": "application/yaml" },
            body: seedFunction("late", { containerImage: "f2s-test/clock:1", minReplicas: 1 }),
          });
          assertEquals(created.status, 201, await created.clone().text());
          await created.body?.cancel();
          await cluster.kubectl(["delete", "deployment", "-n", CONTAINERS_NS, "hello"]);
          await cluster.kubectl(["delete", "function", "-n", NS, "doomed", "--wait=false"]);
          const survivor = identityOf(follower!);
          const taken = await eventually(
            "the survivor to take over",
            async () => {
              const lease = await api.find(paths.lease());
              return lease?.spec?.holderIdentity === survivor ? lease : undefined;
            },
            30_000,
            25,
          );
          const afterKill = Date.now() - killedAt;
          const afterRenewal = Date.parse(taken.spec.acquireTime) - lastRenewal;
          console.log(
            `leader killed → lease taken over ${afterRenewal} ms after its last renewal, ` +
              `${afterKill} ms after the kill (lease duration ${LEASE.duration} ms, ` +
              `retry period ${LEASE.retry} ms)`,
          );
          // The protocol's promise, with room for a busy machine's timers.
          assert(
            afterRenewal <= LEASE.duration + 500,
            `taken over ${afterRenewal} ms after the last renewal, lease duration ${LEASE.duration} ms`,
          );
          await eventually("late to be deployed and Ready", async () => {
            const f = await api.find(paths.fn("late"));
            return readyCondition(f)?.status === "True" && f!.status.readyReplicas === 1
              ? true
              : undefined;
          });
          await eventually(
            "hello's Deployment to be back",
            () => api.find(paths.deployment("hello")),
          );
          await eventually(
            "doomed to be gone with its Deployment",
            async () =>
              !(await api.find(paths.fn("doomed"))) && !(await api.find(paths.deployment("doomed")))
                ? true
                : undefined,
          );
          await eventually(
            "hello to answer through the survivor",
            async () => await status(`${follower!.url}/invoke/hello`) === 200 ? true : undefined,
          );
          assertEquals(await status(`${follower!.url}/invoke/late`), 200);
        },
      );

      await step("a leader that stops gives the lease up at once", async () => {
        const c = await start("c");
        const stoppedAt = Date.now();
        assertEquals(await follower!.stop("SIGTERM"), 0);
        await eventually(
          "c to take over",
          async () => (await holder()) === "c" ? true : undefined,
          30_000,
          25,
        );
        const handover = Date.now() - stoppedAt;
        console.log(`leader stopped (SIGTERM) → lease taken over after ${handover} ms`);
        assert(handover < LEASE.duration, `handover took ${handover} ms`);
        assertEquals(await status(`${c.url}/invoke/hello`), 200);
        assertEquals(await c.stop("SIGTERM"), 0);
      });
    } finally {
      for (const p of replicas) await p.stop("SIGKILL");
      await cluster.stop();
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
