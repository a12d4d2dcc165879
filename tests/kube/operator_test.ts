/**
 * `f2s serve` on the real test cluster (tests/cluster): Function resources become
 * Deployments and Services in f2s-containers, their status follows, invocations through the
 * dispatcher reach the pods' fizzlets, drift is put back, updates roll out, scale to zero
 * and back works with the held request released as soon as an endpoint is ready, deletion
 * removes everything, and bad manifests are refused with the field named.
 */

import { createKubeClient, type KubeClient } from "../../control/kube/client.ts";
import { connectionFromKubeconfig } from "../../control/kube/connection.ts";
import { createInformer } from "../../control/kube/informer.ts";
import { assert, assertEquals, assertMatch } from "../harness/assert.ts";
import { runF2s } from "../harness/cli.ts";
import { startCluster } from "../cluster/harness.ts";
import type { KubeObject } from "../cluster/kube.ts";
import {
  CONTAINERS_NS,
  eventually,
  FIXTURES,
  installCrd,
  NS,
  paths,
  platformGap,
  readyCondition,
  seedFunction,
  sequentialSteps,
  serveOnce,
  type ServeProcess,
  startServe,
} from "./helpers.ts";

const gap = await platformGap();
if (gap) console.warn(`SKIPPING tests/kube: ${gap}`);

const CONFIG = `
f2s:
  timeouts: { scaling_timeout: 60s }
  autoscaling: { tick: 250ms, stable_window: 4s, panic_window: 2s }
`;

const CLOCK_TARGET = {
  containerImage: "f2s-test/clock:1",
  port: 9092,
  endpoint: "/",
  minReplicas: 1,
  maxReplicas: 2,
  env: { GREETING: "hello" },
  resources: { requests: { cpu: "50m", memory: "32Mi" }, limits: { memory: "256Mi" } },
};

Deno.test({
  name: "kubernetes: f2s serve turns Functions into Deployments, Services and routed instances",
  ignore: gap !== undefined,
  async fn(t) {
    const cluster = await startCluster({ images: { "f2s-test/": FIXTURES } });
    const api = cluster.client;
    let serve: ServeProcess | undefined;
    const step = sequentialSteps(t);
    const apply = (yaml: string) => cluster.kubectl(["apply", "-f", "-"], yaml);
    const applyError = (yaml: string) => apply(yaml).then(() => "", (e: Error) => e.message);
    const fnWhere = (name: string, pred: (f: KubeObject, ready?: KubeObject) => boolean) =>
      eventually(`Function ${name} to reach the expected status`, async () => {
        const f = await api.find(paths.fn(name));
        return f && pred(f, readyCondition(f)) ? f : undefined;
      });
    const invoke = async (path: string, init?: RequestInit) => {
      const res = await fetch(`${serve!.url}/invoke${path}`, init);
      const text = await res.text();
      assertEquals(res.status, 200, `invoke ${path}: ${res.status} ${text}`);
      return JSON.parse(text);
    };
    const podsOf = async (name: string) =>
      ((await api.get(paths.pods(name))).items as KubeObject[])
        .filter((p) => !p.metadata.deletionTimestamp);

    /** Invokes `zero` at zero; returns the measured figures as a line. */
    const coldStart = async (round: string): Promise<string> => {
      // Our own watch on the function's EndpointSlices: when did an endpoint become ready?
      const list = await api.get(paths.slices("zero"));
      let readySeen: number | undefined;
      const stopWatch = new AbortController();
      const watching = api.watch(paths.slices("zero"), list.metadata.resourceVersion, (e) => {
        const ready = (e.object.endpoints ?? []).some((ep: KubeObject) =>
          ep.conditions?.ready === true
        );
        if (ready && readySeen === undefined) readySeen = Date.now();
      }, stopWatch.signal).catch(() => {});
      try {
        const sent = Date.now();
        const body = await invoke("/zero");
        const answered = Date.now();
        assert(readySeen !== undefined, "the endpoint became ready before the answer");
        const events = await (await fetch(
          `${serve!.url}/events?type=instance.ready&function=zero`,
        )).json();
        const serveReady = Date.parse(events.at(-1).time);
        const afterWatch = body.receivedAt - readySeen!;
        const afterServe = body.receivedAt - serveReady;
        return `${round}: request held ${answered - sent} ms in all; forwarded ` +
          `${afterWatch} ms after the test's own watch saw the ready endpoint, ` +
          `${afterServe} ms after f2s serve's EndpointSlice watch did`;
      } finally {
        stopWatch.abort();
        await watching;
      }
    };

    try {
      await step("f2s serve says what is missing instead of starting", async () => {
        const noCrd = await serveOnce(["--kubeconfig", cluster.kubeconfig]);
        assertEquals(noCrd.code, 1, noCrd.stderr);
        assertMatch(noCrd.stderr, /the Function resource is not installed in the cluster/);
        const timings = await serveOnce([
          "--kubeconfig",
          cluster.kubeconfig,
          "--lease-duration",
          "2s",
          "--renew-deadline",
          "2s",
        ]);
        assertEquals(timings.code, 2);
        assertMatch(timings.stderr, /renew deadline must be shorter than the lease duration/);
        const badConfig = `${cluster.dir}/bad-config.yaml`;
        await Deno.writeTextFile(badConfig, "f2s: { timeouts: { request_timeout: soon } }");
        const config = await serveOnce(["--kubeconfig", cluster.kubeconfig, "--config", badConfig]);
        assertEquals(config.code, 1);
        assertMatch(config.stderr, /f2s\.timeouts\.request_timeout/);
      });

      await installCrd(cluster);

      await step("the informer resumes watches, lists again on 410 Gone, and resyncs", async () => {
        const client = createKubeClient(connectionFromKubeconfig(cluster.kubeconfig));
        const calls: string[] = [];
        // The real client, except that the first watch asks for a version long gone, so the
        // API server answers 410 Gone for real.
        const counting: KubeClient = {
          ...client,
          request(method, path, options) {
            if (method === "GET" && path === paths.fn()) calls.push("list");
            return client.request(method, path, options);
          },
          watch(path, resourceVersion, options) {
            const first = !calls.includes("watch");
            calls.push("watch");
            return client.watch(path, first ? "1" : resourceVersion, options);
          },
        };
        let resyncs = 0;
        const seen: string[] = [];
        const informer = createInformer({
          client: counting,
          path: paths.fn(),
          what: "functions",
          resyncMs: 4_000,
          // The server ends each watch after about 2 s; the informer resumes it.
          watchIdleMs: 32_000,
        });
        informer.onChange((c) => seen.push(`${c.type} ${c.object.metadata.name}`));
        informer.onResync(() => resyncs++);
        try {
          await informer.start();
          await eventually("a list after the 410", () => (calls.length >= 4 ? true : undefined));
          assertEquals(calls.slice(0, 4), ["list", "watch", "list", "watch"]);
          await apply(seedFunction("watched", { containerImage: "f2s-test/clock:1" }));
          await eventually("the new Function", () => informer.get("watched"), 10_000);
          // A watch the server ended is resumed from its last version: no list in between.
          await eventually(
            "a resumed watch",
            () =>
              calls.some((c, i) => c === "watch" && calls[i + 1] === "watch") ? true : undefined,
          );
          await cluster.kubectl(["delete", "function", "-n", NS, "watched"]);
          await eventually("the deletion", () => (informer.get("watched") ? undefined : true));
          assertEquals(seen, ["added watched", "deleted watched"]);
          await eventually("a resync", () => (resyncs >= 1 ? true : undefined));
          assert(calls.lastIndexOf("list") > 2, "the resync listed again");
        } finally {
          await informer.stop();
          client.close();
        }
      });

      serve = await startServe({
        kubeconfig: cluster.kubeconfig,
        identity: "solo",
        config: CONFIG,
        args: ["--lease-duration", "3s", "--renew-deadline", "2s", "--retry-period", "500ms"],
      });
      await eventually("f2s serve to take the lease", async () => {
        const lease = await api.find(paths.lease());
        return lease?.spec?.holderIdentity === "solo" ? true : undefined;
      });

      await step("the CRD refuses bad manifests, naming each field", async () => {
        const err = await applyError(`apiVersion: f2s.opensight.ch/v1alpha1
kind: Function
metadata: { name: 9bad, namespace: ${NS} }
spec: { endpoint: "no-slash", method: FETCH }
target: { containerImage: "x", minReplicas: 3, maxReplicas: 2, port: 70000 }
`);
        for (
          const field of ["metadata.name", "spec.endpoint", "spec.method", "target.maxReplicas"]
        ) {
          assert(err.includes(`${field}: Invalid value`), `no message for ${field} in: ${err}`);
        }
        assertMatch(err, /target\.port.*less than or equal to 65535/);
        assertMatch(err, /spec\.method must be one of GET, HEAD/);
        for (const endpoint of ["/a b", "/a/../b"]) {
          const bad = await applyError(seedFunction("odd", { containerImage: "x", endpoint }));
          assertMatch(bad, /target\.endpoint must/, endpoint);
        }
        const unknown = await applyError(seedFunction("odd", { containerImage: "x", bogus: 1 }));
        assertMatch(unknown, /unknown field "target\.bogus"/);
        const noTarget = await applyError(`apiVersion: f2s.opensight.ch/v1alpha1
kind: Function
metadata: { name: lonely, namespace: ${NS} }
spec: { endpoint: /lonely, method: GET }
`);
        assertMatch(noTarget, /target: Invalid value: .*target is required/);
        // The API validates with F2S's own rules before Kubernetes sees anything.
        const res = await fetch(`${serve!.url}/functions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            metadata: { name: "viaapi" },
            spec: { endpoint: "/viaapi", method: "GET" },
            target: { containerImage: "x", env: { "1A": "b" } },
          }),
        });
        const body = await res.json();
        assertEquals(res.status, 400);
        assertEquals(body.details, [{
          path: "target.env.1A",
          message: "is not a valid variable name",
        }]);
        assertEquals((await api.get(paths.fn())).items.length, 0);
      });

      await step(
        "a manifest only F2S refuses gets Ready=False with the reason, nothing deployed",
        async () => {
          await apply(`apiVersion: f2s.opensight.ch/v1alpha1
kind: Function
metadata: { name: badenv, namespace: ${NS} }
spec:
  endpoint: /badenv
  method: GET
  timeouts: { requestTimeout: soon }
target: { containerImage: "f2s-test/clock:1", env: { "1X": "y" } }
`);
          const f = await fnWhere("badenv", (_, c) => c?.status === "False");
          const c = readyCondition(f)!;
          assertEquals(c.reason, "InvalidSpec");
          assertMatch(c.message, /target\.env\.1X: is not a valid variable name/);
          assertMatch(c.message, /spec\.timeouts\.requestTimeout: "soon" is not a duration/);
          assertEquals(f.status.observedGeneration, f.metadata.generation);
          assertEquals(await api.find(paths.deployment("badenv")), undefined);
          assertEquals(await api.find(paths.service("badenv")), undefined);
          assertEquals(
            await fetch(`${serve!.url}/functions/badenv`).then(async (r) => {
              await r.body?.cancel();
              return r.status;
            }),
            404,
          );
          await cluster.kubectl(["delete", "function", "-n", NS, "badenv", "--timeout=30s"]);
        },
      );

      await step(
        "a seed-style Function gets a Deployment and a Service and turns Ready",
        async () => {
          await apply(seedFunction("clock", CLOCK_TARGET));
          const dep = await eventually("the Deployment", () => api.find(paths.deployment("clock")));
          const svc = await eventually("the Service", () => api.find(paths.service("clock")));
          for (const obj of [dep, svc]) {
            assertEquals(obj.metadata.labels["app.kubernetes.io/managed-by"], "f2s");
            assertEquals(obj.metadata.labels["app.kubernetes.io/name"], "clock");
            assertEquals(obj.metadata.labels["f2s.opensight.ch/function"], "clock");
            assertMatch(obj.metadata.annotations["f2s.opensight.ch/spec-hash"], /^[0-9a-f]{16}$/);
            assert(
              obj.metadata.managedFields.some((m: KubeObject) =>
                m.manager === "f2s" && m.operation === "Apply"
              ),
              "written by server-side apply as f2s",
            );
          }
          const c = dep.spec.template.spec.containers[0];
          assertEquals(c.image, "f2s-test/clock:1");
          assertEquals(c.ports[0].containerPort, 9092);
          assertEquals(c.readinessProbe.httpGet.path, "/f2s/ready");
          assertEquals(c.livenessProbe.httpGet.path, "/f2s/health");
          assertEquals(c.resources, CLOCK_TARGET.resources);
          assert(c.env.some((e: KubeObject) => e.name === "GREETING" && e.value === "hello"));
          assertEquals(dep.spec.replicas, 1);
          assertEquals(svc.spec.selector, { "f2s.opensight.ch/function": "clock" });
          assertEquals(svc.spec.ports[0].port, 9092);
          const f = await fnWhere(
            "clock",
            (f, c) => c?.status === "True" && f.status.readyReplicas === 1,
          );
          assert(f.metadata.finalizers.includes("f2s.opensight.ch/cleanup"), "finalizer set");
          assertEquals(f.status.observedGeneration, f.metadata.generation);
          assertEquals(f.status.replicas, 1);
          assertEquals(f.status.invokeUrl, "/invoke/clock");
          assertEquals(readyCondition(f)!.reason, "Available");
          const table = await cluster.kubectl(["get", "functions", "-n", NS]);
          assertMatch(table, /NAME\s+ENDPOINT\s+READY\s+REPLICAS\s+DESIRED\s+AGE/);
          assertMatch(table, /clock\s+\/clock\s+True\s+1\s+1\s+/);
        },
      );

      await step("an invocation through the dispatcher reaches the pod's fizzlet", async () => {
        const body = await invoke("/clock/some/path?q=1", { method: "POST", body: "hi" });
        const pods = await podsOf("clock");
        assertEquals(pods.map((p) => p.metadata.name), [body.instance]);
        const ip: string = pods[0].status.podIP;
        assert(ip.startsWith(cluster.podCidr.replace(/0\/24$/, "")), `${ip} in ${cluster.podCidr}`);
        assertEquals(body.function, "clock");
        assertEquals(body.greeting, "hello");
        assertEquals(body.method, "POST");
        assertEquals(body.path, "/some/path?q=1");
        // A second endpoint with the same path is refused, and shows why.
        await apply(
          seedFunction("clockcopy", { containerImage: "f2s-test/clock:1" }).replace(
            "endpoint: /clockcopy",
            "endpoint: /clock",
          ),
        );
        const copy = await fnWhere("clockcopy", (_, c) => c?.status === "False");
        assertEquals(readyCondition(copy)!.reason, "EndpointConflict");
        assertMatch(readyCondition(copy)!.message, /already used by function "clock"/);
        assertEquals(await api.find(paths.deployment("clockcopy")), undefined);
        await cluster.kubectl(["delete", "function", "-n", NS, "clockcopy", "--timeout=30s"]);
      });

      await step(
        "a Secret reference reaches the pod, never the Function or the Deployment",
        async () => {
          const value = `from-a-secret-${crypto.randomUUID()}`;
          await cluster.kubectl([
            "create",
            "secret",
            "generic",
            "secretclock",
            "-n",
            CONTAINERS_NS,
            `--from-literal=greeting=${value}`,
          ]);
          await apply(seedFunction("secretclock", {
            containerImage: "f2s-test/clock:1",
            minReplicas: 1,
            env: [{
              name: "GREETING",
              valueFrom: { secretKeyRef: { name: "secretclock", key: "greeting" } },
            }],
          }));
          await fnWhere(
            "secretclock",
            (f, c) => c?.status === "True" && f.status.readyReplicas === 1,
          );
          const body = await invoke("/secretclock");
          assertEquals(body.greeting, value, "the kubelet resolved the reference");
          const dep = await api.get(paths.deployment("secretclock"));
          const env = dep.spec.template.spec.containers[0].env;
          assert(
            env.some((e: KubeObject) =>
              e.name === "GREETING" && e.valueFrom?.secretKeyRef?.name === "secretclock"
            ),
            JSON.stringify(env),
          );
          const viaApi = await (await fetch(`${serve!.url}/functions/secretclock`)).text();
          const seen = [
            JSON.stringify(dep),
            JSON.stringify(await api.get(paths.fn("secretclock"))),
            viaApi,
            ...serve!.logs(),
          ].join("\n");
          assert(!seen.includes(value), "the secret's value left the Secret");
          await cluster.kubectl(["delete", "function", "-n", NS, "secretclock", "--timeout=30s"]);
          await cluster.kubectl(["delete", "secret", "-n", CONTAINERS_NS, "secretclock"]);
        },
      );

      await step("the leader puts back what someone changed or deleted", async () => {
        await cluster.kubectl([
          "set",
          "image",
          "-n",
          CONTAINERS_NS,
          "deployment/clock",
          "function=f2s-test/evil:0",
        ]);
        await cluster.kubectl(["set", "env", "-n", CONTAINERS_NS, "deployment/clock", "EXTRA=1"]);
        await eventually("the Deployment to be put back", async () => {
          const c = (await api.get(paths.deployment("clock"))).spec.template.spec.containers[0];
          const extra = c.env.some((e: KubeObject) => e.name === "EXTRA");
          return c.image === "f2s-test/clock:1" && !extra ? true : undefined;
        });
        const oldSvc = await api.get(paths.service("clock"));
        await cluster.kubectl(["delete", "service", "-n", CONTAINERS_NS, "clock"]);
        await eventually("the Service to be recreated", async () => {
          const svc = await api.find(paths.service("clock"));
          return svc && svc.metadata.uid !== oldSvc.metadata.uid ? true : undefined;
        });
        const events = await (await fetch(`${serve!.url}/events?type=function.drift`)).json();
        assert(events.length >= 2, `drift events: ${JSON.stringify(events)}`);
        await eventually("invocations to work again", async () => {
          const res = await fetch(`${serve!.url}/invoke/clock`);
          await res.body?.cancel();
          return res.status === 200 ? true : undefined;
        });
      });

      await step("updating image and env rolls the Deployment out", async () => {
        const before = await api.get(paths.deployment("clock"));
        const oldPods = (await podsOf("clock")).map((p) => p.metadata.name);
        await apply(seedFunction("clock", {
          ...CLOCK_TARGET,
          containerImage: "f2s-test/clock:2",
          env: { GREETING: "bonjour" },
        }));
        const body = await eventually("the new version to answer", async () => {
          const b = await invoke("/clock");
          return b.greeting === "bonjour" ? b : undefined;
        });
        assert(!oldPods.includes(body.instance), "answered by a new pod");
        const after = await api.get(paths.deployment("clock"));
        assertEquals(after.spec.template.spec.containers[0].image, "f2s-test/clock:2");
        assert(after.metadata.generation > before.metadata.generation, "new generation");
        assert(
          after.metadata.annotations["f2s.opensight.ch/spec-hash"] !==
            before.metadata.annotations["f2s.opensight.ch/spec-hash"],
          "spec hash changed",
        );
        await eventually("the old pods to go", async () => {
          const names = (await podsOf("clock")).map((p) => p.metadata.name);
          return names.some((n) => oldPods.includes(n)) ? undefined : true;
        });
        await fnWhere("clock", (f, c) =>
          c?.status === "True" && c.reason === "Available" &&
          f.status.observedGeneration === f.metadata.generation);
      });

      await step("an edit F2S refuses leaves the last valid version serving", async () => {
        const deployment = await api.get(paths.deployment("clock"));
        // Passes the CRD, fails F2S's own rules: the env name.
        await apply(seedFunction("clock", {
          ...CLOCK_TARGET,
          containerImage: "f2s-test/clock:2",
          env: { "1BAD": "x" },
        }));
        const refused = await fnWhere(
          "clock",
          (f, c) => c?.status === "False" && f.status.observedGeneration === f.metadata.generation,
        );
        const c = readyCondition(refused)!;
        assertEquals(c.reason, "InvalidSpec");
        assertMatch(c.message, /target\.env\.1BAD: is not a valid variable name/);
        assertMatch(c.message, /the last valid version keeps serving/);
        assertEquals(refused.status.readyReplicas, 1);
        // Nothing was taken down: the same Deployment, and invocations still answer.
        const still = await api.get(paths.deployment("clock"));
        assertEquals(still.metadata.uid, deployment.metadata.uid);
        assertEquals(still.metadata.generation, deployment.metadata.generation);
        assertEquals((await invoke("/clock")).greeting, "bonjour");
        // Fixing the manifest makes it the served version again.
        await apply(seedFunction("clock", {
          ...CLOCK_TARGET,
          containerImage: "f2s-test/clock:2",
          env: { GREETING: "salut" },
        }));
        await eventually("the fixed version to answer", async () => {
          const b = await invoke("/clock");
          return b.greeting === "salut" ? b : undefined;
        });
        await fnWhere(
          "clock",
          (f, c) => c?.status === "True" && f.status.observedGeneration === f.metadata.generation,
        );
      });

      await step("the API creates, shows, updates and deletes Function resources", async () => {
        const manifest = seedFunction("viaapi", {
          containerImage: "f2s-test/clock:1",
          minReplicas: 0,
          maxReplicas: 1,
        });
        const created = await fetch(`${serve!.url}/functions`, {
          method: "POST",
          headers: { "content-type": "application/yaml" },
          body: manifest,
        });
        assertEquals(created.status, 201, await created.clone().text());
        assertEquals((await created.json()).metadata.name, "viaapi");
        const cr = await api.get(paths.fn("viaapi"));
        assertEquals(cr.spec.endpoint, "/viaapi");
        assert(cr.metadata.finalizers.includes("f2s.opensight.ch/cleanup"));
        const again = await fetch(`${serve!.url}/functions`, {
          method: "POST",
          headers: { "content-type": "application/yaml" },
          body: manifest,
        });
        assertEquals(again.status, 409);
        await again.body?.cancel();
        const updated = await fetch(`${serve!.url}/functions/viaapi`, {
          method: "PUT",
          headers: { "content-type": "application/yaml" },
          body: manifest.replace("description: test function viaapi", "description: changed"),
        });
        assertEquals(updated.status, 200, await updated.clone().text());
        await updated.body?.cancel();
        assertEquals((await api.get(paths.fn("viaapi"))).spec.description, "changed");
        await fnWhere("viaapi", (_, c) => c?.reason === "ScaledToZero");
        const deleted = await fetch(`${serve!.url}/functions/viaapi`, { method: "DELETE" });
        assertEquals(deleted.status, 204);
        await eventually(
          "the Function resource to go",
          async () => (await api.find(paths.fn("viaapi"))) ? undefined : true,
        );
        await eventually(
          "its Deployment to go",
          async () => (await api.find(paths.deployment("viaapi"))) ? undefined : true,
        );
      });

      await step(
        "scale to zero, and a held request forwarded once an endpoint is ready",
        async () => {
          await apply(seedFunction("zero", {
            containerImage: "f2s-test/clock:1",
            minReplicas: 0,
            maxReplicas: 1,
            scaling: { idleTimeout: "2s" },
          }));
          await fnWhere("zero", (_, c) => c?.reason === "ScaledToZero");
          assertEquals((await api.get(paths.deployment("zero"))).spec.replicas, 0);
          const rounds: string[] = [];
          for (const round of ["first cold start", "back from zero"]) {
            const figures = await coldStart(round);
            rounds.push(figures);
            await eventually("the autoscaler to scale to zero", async () => {
              const dep = await api.get(paths.deployment("zero"));
              const slices = (await api.get(paths.slices("zero"))).items as KubeObject[];
              const endpoints = slices.flatMap((s) => s.endpoints ?? []);
              return dep.spec.replicas === 0 && endpoints.length === 0 &&
                  (await podsOf("zero")).length === 0
                ? true
                : undefined;
            }, 60_000);
          }
          console.log(
            `held request released after the first ready endpoint:\n  ${rounds.join("\n  ")}`,
          );
        },
      );

      await step(
        "a wrong image is the Function's Ready=False reason; kubectl describe tells the story",
        async () => {
          await apply(seedFunction("badimage", {
            containerImage: "f2s-test-missing/nothing:1",
            minReplicas: 1,
          }));
          const f = await fnWhere(
            "badimage",
            (_, c) =>
              c?.status === "False" && ["ErrImagePull", "ImagePullBackOff"].includes(c.reason),
          );
          const condition = readyCondition(f)!;
          assert(
            /pod badimage-.*: container .*ErrImagePull|ImagePullBackOff/.test(condition.message),
          );
          const described = await eventually("the Events of badimage", async () => {
            const out = await cluster.kubectl(["describe", "function", "-n", NS, "badimage"]);
            return /Normal\s+Applied/.test(out) &&
                /Warning\s+(ErrImagePull|ImagePullBackOff)/.test(out)
              ? out
              : undefined;
          });
          console.log(
            `kubectl describe function badimage (Events):\n${
              described.slice(described.indexOf("Events:"))
            }`,
          );
          // The scaling decisions are there too: zero was woken from zero earlier.
          const zero = await cluster.kubectl(["describe", "function", "-n", NS, "zero"]);
          assert(/Normal\s+ScaledUp\s.*scaled zero 0 → 1 \(wake\)/.test(zero), zero);
          const events = await api.get(
            `/api/v1/namespaces/${NS}/events?fieldSelector=involvedObject.name%3Dbadimage`,
          );
          for (const e of events.items) {
            assertEquals(e.involvedObject.kind, "Function");
            assertEquals(e.involvedObject.uid, f.metadata.uid);
            assertEquals(e.source.component, "f2s");
          }
        },
      );

      await step(
        "a request for a function that cannot start gets 503 with the reason at once; the API and f2s fn get show it",
        async () => {
          const stuck = /^(ErrImagePull|ImagePullBackOff)$/;
          // The pods were already stuck before this request: it must not wait for news.
          let sent = Date.now();
          let res = await fetch(`${serve!.url}/invoke/badimage`);
          let body = await res.json();
          let took = Date.now() - sent;
          assertEquals(res.status, 503, JSON.stringify(body));
          assertMatch(body.details.reason, stuck);
          assertMatch(body.error, /could not start: pod badimage-.*: container .*image/);
          // scaling_timeout is 60 s here.
          assert(took < 15_000, `held ${took} ms`);
          console.log(`wrong image, already stuck: 503 after ${took} ms`);
          const shown = await (await fetch(`${serve!.url}/functions/badimage`)).json();
          const condition = shown.status.conditions[0];
          assertEquals([condition.type, condition.status], ["Ready", "False"]);
          assertMatch(condition.reason, stuck);
          assertMatch(condition.message, /pod badimage-/);
          const got = await runF2s(["fn", "get", "badimage", "--url", serve!.url]);
          assertEquals(got.code, 0, got.stderr);
          assertMatch(got.stdout, /reason: (ErrImagePull|ImagePullBackOff)/);

          // Fixed: the old version's stuck pod (kept until the new one is ready, maxUnavailable
          // 0) no longer fails requests; one sent during the rollout waits for the new pod.
          const oldHash = (await api.get(paths.deployment("badimage"))).metadata.annotations[
            "f2s.opensight.ch/spec-hash"
          ];
          await apply(seedFunction("badimage", { containerImage: "f2s-test/clock:1" }));
          await eventually("the fixed Deployment", async () => {
            const d = await api.get(paths.deployment("badimage"));
            return d.metadata.annotations["f2s.opensight.ch/spec-hash"] !== oldHash || undefined;
          });
          assert(
            (await podsOf("badimage")).some((p) =>
              p.metadata.annotations?.["f2s.opensight.ch/spec-hash"] === oldHash
            ),
            "the stuck pod of the old version is still there",
          );
          res = await fetch(`${serve!.url}/invoke/badimage`);
          assertEquals(res.status, 200, await res.text());
          await fnWhere("badimage", (_, c) => c?.status === "True");

          // Woken from zero: the request is held while the pod is made, then fails with it.
          await apply(seedFunction("badzero", {
            containerImage: "f2s-test-missing/nothing:2",
            minReplicas: 0,
          }));
          await fnWhere("badzero", (_, c) => c?.reason === "ScaledToZero");
          assertEquals((await podsOf("badzero")).length, 0, "no pod before the request");
          sent = Date.now();
          res = await fetch(`${serve!.url}/invoke/badzero`);
          body = await res.json();
          took = Date.now() - sent;
          assertEquals(res.status, 503, JSON.stringify(body));
          assertMatch(body.details.reason, stuck);
          assertMatch(body.error, /could not start: pod badzero-/);
          assert(took < 30_000, `held ${took} ms`);
          console.log(`wrong image, woken from zero: 503 after ${took} ms: ${body.error}`);

          // `f2s fn apply` does not wait out its timeout for a function that cannot start.
          const file = await Deno.makeTempFile({ suffix: ".yaml" });
          await Deno.writeTextFile(
            file,
            seedFunction("badapply", {
              containerImage: "f2s-test-missing/nothing:3",
              minReplicas: 1,
            }),
          );
          sent = Date.now();
          const applied = await runF2s(["fn", "apply", "-f", file, "--url", serve!.url]);
          took = Date.now() - sent;
          await Deno.remove(file);
          assertEquals(applied.code, 1, applied.stderr);
          assertMatch(applied.stdout, /function\/badapply created/);
          assertMatch(
            applied.stderr,
            /badapply cannot start: (ErrImagePull|ImagePullBackOff): pod/,
          );
          assert(took < 30_000, `apply took ${took} ms`);
        },
      );

      await step("a Function in another namespace is told it is ignored", async () => {
        await cluster.kubectl(["create", "namespace", "elsewhere"]);
        await cluster.kubectl(
          ["apply", "-f", "-"],
          seedFunction("stray", { containerImage: "f2s-test/clock:1" })
            .replace(`namespace: ${NS}`, "namespace: elsewhere"),
        );
        const path = "/apis/f2s.opensight.ch/v1alpha1/namespaces/elsewhere/functions/stray";
        const f = await eventually("stray's status", async () => {
          const found = await api.find(path);
          return readyCondition(found)?.reason === "NamespaceNotWatched" ? found : undefined;
        }, 40_000);
        assertEquals(readyCondition(f)!.status, "False");
        assertEquals(
          readyCondition(f)!.message,
          `F2S watches Functions in namespace ${NS} only; this one is ignored (create it in ${NS})`,
        );
        assertEquals(await api.find(paths.deployment("stray")), undefined, "nothing deployed");
        await cluster.kubectl(["delete", "namespace", "elsewhere", "--wait=false"]);
      });

      await step("deleting Functions removes their Deployments, Services and pods", async () => {
        await cluster.kubectl([
          "delete",
          "functions",
          "-n",
          NS,
          "clock",
          "zero",
          "badimage",
          "badzero",
          "badapply",
          "--wait=false",
        ]);
        await eventually("everything to go", async () => {
          for (const name of ["clock", "zero", "badimage", "badzero", "badapply"]) {
            if (await api.find(paths.fn(name))) return undefined;
            if (await api.find(paths.deployment(name))) return undefined;
            if (await api.find(paths.service(name))) return undefined;
            if ((await api.get(paths.slices(name))).items.length) return undefined;
            if ((await api.get(paths.pods(name))).items.length) return undefined;
          }
          return true;
        }, 90_000);
        const res = await fetch(`${serve!.url}/invoke/clock`);
        assertEquals(res.status, 404);
        await res.body?.cancel();
        assertEquals(await (await fetch(`${serve!.url}/functions`)).json(), []);
      });

      await step("SIGTERM stops f2s serve cleanly and gives the lease up", async () => {
        assertEquals(await serve!.stop("SIGTERM"), 0);
        const lease = await api.get(paths.lease());
        assertEquals(lease.spec.holderIdentity, "");
        const errors = serve!.logs().filter((l) => l.includes('"level":"error"'));
        assertEquals(errors, []);
      });
    } finally {
      await serve?.stop("SIGKILL");
      await cluster.stop();
    }
  },
});
