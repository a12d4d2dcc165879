/**
 * The Kubernetes backend's pure parts, without a cluster: what a function's Deployment and
 * Service look like, drift fingerprints that ignore server defaults but catch real edits,
 * instances from EndpointSlices, kubeconfig reading (files, tokens, exec plugins) and the
 * lease's time format.
 */

import { parse as parseYaml } from "yaml";
import { type FunctionDef, parseFunction, toManifest } from "../../common/function.ts";
import type { KubeObject } from "../../control/kube/client.ts";
import { ConnectionError, connectionFromKubeconfig } from "../../control/kube/connection.ts";
import { instancesFromSlices } from "../../control/runtime/kube_endpoints.ts";
import { isOlder } from "../../control/kube/informer.ts";
import { microTime, validateTimings } from "../../control/kube/leader.ts";
import {
  deploymentFingerprint,
  deploymentFor,
  parseQuantity,
  serviceFingerprint,
  serviceFor,
  withSpecHash,
} from "../../control/kube/manifests.ts";
import { assert, assertEquals, assertNotEquals, assertThrows } from "../harness/assert.ts";

const EXAMPLE = new URL("../../examples/nodejs/function.yaml", import.meta.url);

async function exampleFunction(changes: (m: KubeObject) => void = () => {}): Promise<FunctionDef> {
  const manifest = parseYaml(await Deno.readTextFile(EXAMPLE));
  changes(manifest);
  const parsed = parseFunction(manifest);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  return parsed.fn;
}

Deno.test("kube manifests: a seed manifest becomes a labelled Deployment and Service", async () => {
  const fn = await exampleFunction((m) => {
    m.target.env = { GREETING: "hi", F2S_FUNCTION: "mine" };
    m.target.resources = { requests: { cpu: "100m" }, limits: { memory: "128Mi" } };
  });
  const dep = deploymentFor(fn, "f2s-containers", 2);
  assertEquals(dep.metadata.namespace, "f2s-containers");
  assertEquals(dep.metadata.labels["app.kubernetes.io/managed-by"], "f2s");
  assertEquals(dep.metadata.labels["f2s.opensight.ch/function"], "hello-node");
  assertEquals(dep.spec.replicas, 2);
  assertEquals(dep.spec.selector.matchLabels, { "f2s.opensight.ch/function": "hello-node" });
  assertEquals(dep.spec.template.metadata.labels, dep.metadata.labels);
  const c = dep.spec.template.spec.containers[0];
  assertEquals(c.image, "f2s-examples/nodejs:latest");
  assertEquals(c.ports, [{ name: "http", containerPort: 9092, protocol: "TCP" }]);
  assertEquals(c.readinessProbe.httpGet, { path: "/f2s/ready", port: 9092 });
  assertEquals(c.livenessProbe.httpGet, { path: "/f2s/health", port: 9092 });
  assertEquals(c.resources, { requests: { cpu: "100m" }, limits: { memory: "128Mi" } });
  // The function's own value wins over the platform's, and no name appears twice.
  assertEquals(c.env.map((e: KubeObject) => e.name), ["F2S_INSTANCE", "F2S_FUNCTION", "GREETING"]);
  assertEquals(c.env[1].value, "mine");
  assertEquals(dep.spec.template.spec.automountServiceAccountToken, false);
  // Pod Security "restricted", read-only root, /tmp the one writable place.
  const pod = dep.spec.template.spec;
  assertEquals(pod.securityContext, {
    runAsNonRoot: true,
    runAsUser: 10001,
    runAsGroup: 10001,
    seccompProfile: { type: "RuntimeDefault" },
  });
  assertEquals(c.securityContext, {
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ["ALL"] },
  });
  assertEquals(c.volumeMounts, [{ name: "tmp", mountPath: "/tmp" }]);
  assertEquals(pod.volumes, [{ name: "tmp", emptyDir: {} }]);
  const svc = serviceFor(fn, "f2s-containers");
  assertEquals(svc.spec.selector, dep.spec.selector.matchLabels);
  assertEquals(svc.spec.ports, [{ name: "http", port: 9092, targetPort: 9092, protocol: "TCP" }]);

  const other = await exampleFunction((m) => (m.target.port = 9100));
  const c2 = deploymentFor(other, "ns", 1).spec.template.spec.containers[0];
  assertEquals(c2.ports[0].containerPort, 9100);
  assert(c2.env.some((e: KubeObject) => e.name === "F2S_FIZZLET_PORT" && e.value === "9100"));
  assertEquals(serviceFor(other, "ns").spec.ports[0].targetPort, 9100);
});

Deno.test("kube manifests: Secret and ConfigMap references stay references in the Deployment", async () => {
  const fn = await exampleFunction((m) => {
    m.target.env = [
      { name: "GREETING", value: "hi" },
      { name: "DB_PASSWORD", valueFrom: { secretKeyRef: { name: "db", key: "password" } } },
      {
        name: "MODE",
        valueFrom: { configMapKeyRef: { name: "settings", key: "mode", optional: true } },
      },
    ];
  });
  assertEquals(fn.env, { GREETING: "hi" });
  const dep = deploymentFor(fn, "f2s-containers", 1);
  const env = dep.spec.template.spec.containers[0].env;
  assertEquals(env.filter((e: KubeObject) => !e.name.startsWith("F2S_")), [
    { name: "DB_PASSWORD", valueFrom: { secretKeyRef: { name: "db", key: "password" } } },
    { name: "GREETING", value: "hi" },
    {
      name: "MODE",
      valueFrom: { configMapKeyRef: { name: "settings", key: "mode", optional: true } },
    },
  ]);
  // The Function's normalized manifest keeps the references (list form), no value.
  const manifest = toManifest(fn);
  assertEquals(manifest.target.env, [
    { name: "GREETING", value: "hi" },
    { name: "DB_PASSWORD", valueFrom: { secretKeyRef: { name: "db", key: "password" } } },
    {
      name: "MODE",
      valueFrom: { configMapKeyRef: { name: "settings", key: "mode", optional: true } },
    },
  ]);
  const again = parseFunction(manifest);
  assert(again.ok);
  assertEquals(again.fn.envRefs, fn.envRefs);
  // The live object as the server returns it (key order may differ) is no drift; a new key is.
  const live = structuredClone(dep);
  const liveEnv = live.spec.template.spec.containers[0].env;
  const db = liveEnv.find((e: KubeObject) => e.name === "DB_PASSWORD");
  db.valueFrom = { secretKeyRef: { key: "password", name: "db" } };
  assertEquals(deploymentFingerprint(live), deploymentFingerprint(dep));
  db.valueFrom.secretKeyRef.key = "other";
  assertNotEquals(deploymentFingerprint(live), deploymentFingerprint(dep));

  // Malformed references are refused with their field path.
  const bad = parseFunction({
    ...manifest,
    target: {
      ...manifest.target,
      env: [
        { name: "A", valueFrom: { secretKeyRef: { name: "Bad Name", key: "k" } } },
        { name: "B", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
        { name: "C", value: "x", valueFrom: { secretKeyRef: { name: "s", key: "k" } } },
      ],
    },
  });
  assert(!bad.ok);
  assertEquals(bad.errors.map((e) => e.path), [
    "target.env[0].valueFrom.secretKeyRef.name",
    "target.env[1].valueFrom",
    "target.env[2]",
  ]);
});

Deno.test("kube manifests: a function's container carries only its manifest's env", async () => {
  // Whatever the control plane was started with (its JWT secret, a credential) stays with it.
  const canary = `canary-${crypto.randomUUID()}`;
  const saved = ["F2S_JWT_SECRET", "F2S_TEST_CANARY"].map((n) => [n, Deno.env.get(n)] as const);
  Deno.env.set("F2S_JWT_SECRET", `secret-${canary}`);
  Deno.env.set("F2S_TEST_CANARY", canary);
  try {
    const fn = await exampleFunction((m) => (m.target.env = { GREETING: "hi" }));
    const dep = deploymentFor(fn, "f2s-containers", 1);
    const pod = dep.spec.template.spec;
    assertEquals(pod.containers.length, 1);
    const c = pod.containers[0];
    assertEquals(c.env.map((e: KubeObject) => e.name).sort(), [
      "F2S_FUNCTION",
      "F2S_INSTANCE",
      "GREETING",
    ]);
    assertEquals(c.envFrom, undefined);
    assert(!JSON.stringify(dep).includes(canary), "the control plane's environment leaked");
    assert(!JSON.stringify(serviceFor(fn, "f2s-containers")).includes(canary));
  } finally {
    for (const [name, value] of saved) {
      if (value === undefined) Deno.env.delete(name);
      else Deno.env.set(name, value);
    }
  }
});

Deno.test("kube manifests: the spec hash follows what runs, not the replica count", async () => {
  const fn = await exampleFunction();
  const hash = async (f: FunctionDef, replicas: number) =>
    (await withSpecHash(deploymentFor(f, "ns", replicas), serviceFor(f, "ns"))).hash;
  assertEquals(await hash(fn, 1), await hash(fn, 5));
  const changed = await exampleFunction((m) => (m.target.env = { A: "1" }));
  assertNotEquals(await hash(fn, 1), await hash(changed, 1));
  const { deployment, service } = await withSpecHash(
    deploymentFor(fn, "ns", 1),
    serviceFor(fn, "ns"),
  );
  const h = await hash(fn, 1);
  assertEquals(deployment.metadata.annotations["f2s.opensight.ch/spec-hash"], h);
  assertEquals(deployment.spec.template.metadata.annotations["f2s.opensight.ch/spec-hash"], h);
  assertEquals(service.metadata.annotations["f2s.opensight.ch/spec-hash"], h);
});

Deno.test("kube manifests: drift fingerprints ignore server defaults, catch edits", async () => {
  const fn = await exampleFunction((m) => {
    m.target.resources = { requests: { cpu: "0.05", memory: "64Mi" } };
  });
  const applied = deploymentFor(fn, "ns", 1);
  // What the API server gives back: defaults filled in, quantities respelled, status added.
  const live = structuredClone(applied);
  const c = live.spec.template.spec.containers[0];
  c.imagePullPolicy = "Always";
  c.terminationMessagePath = "/dev/termination-log";
  c.readinessProbe.httpGet.scheme = "HTTP";
  c.readinessProbe.successThreshold = 1;
  c.env[1].valueFrom.fieldRef.apiVersion = "v1";
  c.resources.requests.cpu = "50m";
  live.spec.progressDeadlineSeconds = 600;
  live.spec.replicas = 3;
  live.spec.template.metadata.annotations = { "kubectl.kubernetes.io/restartedAt": "now" };
  live.status = { replicas: 3 };
  // The API answers in its own field order.
  c.securityContext = {
    capabilities: { drop: ["ALL"] },
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
  };
  live.spec.template.spec.volumes = [{ emptyDir: {}, name: "tmp" }];
  assertEquals(deploymentFingerprint(live), deploymentFingerprint(applied));

  const edits: ((d: KubeObject) => void)[] = [
    (d) => (d.spec.template.spec.containers[0].image = "evil:1"),
    (d) => d.spec.template.spec.containers[0].env.push({ name: "EXTRA", value: "1" }),
    (d) => (d.spec.template.spec.containers[0].readinessProbe.httpGet.path = "/"),
    (d) => (d.spec.template.spec.containers[0].resources.requests.memory = "65Mi"),
    (d) => (d.spec.template.spec.containers[0].command = ["sh"]),
    (d) => d.spec.template.spec.containers.push({ name: "sidecar", image: "x" }),
    (d) => (d.spec.template.metadata.labels["f2s.opensight.ch/function"] = "other"),
    (d) => (d.spec.template.spec.automountServiceAccountToken = true),
    (d) => delete d.spec.template.spec.securityContext,
    (d) => (d.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem = false),
    (d) => (d.spec.template.spec.volumes[0] = { name: "tmp", hostPath: { path: "/" } }),
  ];
  for (const edit of edits) {
    const edited = structuredClone(live);
    edit(edited);
    assertNotEquals(deploymentFingerprint(edited), deploymentFingerprint(applied), String(edit));
  }

  const svc = serviceFor(fn, "ns");
  const liveSvc = structuredClone(svc);
  liveSvc.spec.clusterIP = "10.96.0.9";
  liveSvc.spec.sessionAffinity = "None";
  assertEquals(serviceFingerprint(liveSvc), serviceFingerprint(svc));
  liveSvc.spec.ports[0].targetPort = 9999;
  assertNotEquals(serviceFingerprint(liveSvc), serviceFingerprint(svc));
});

Deno.test("kube manifests: quantities compare by value", () => {
  assertEquals(parseQuantity("500m"), 0.5);
  assertEquals(parseQuantity("0.5"), 0.5);
  assertEquals(parseQuantity("0.1"), parseQuantity("100m"));
  assertEquals(parseQuantity("128Mi"), 128 * 1024 * 1024);
  assertEquals(parseQuantity("1Gi"), parseQuantity("1024Mi"));
  assertEquals(parseQuantity("1k"), 1000);
  assertEquals(parseQuantity("1e3"), 1000);
  assert(Number.isNaN(parseQuantity("lots")));
});

Deno.test("kube endpoints: EndpointSlices become instances with their states", () => {
  const slice = (name: string, fn: string, endpoints: KubeObject[], port = 9092): KubeObject => ({
    metadata: { name, labels: { "kubernetes.io/service-name": fn } },
    addressType: "IPv4",
    ports: [{ name: "http", port, protocol: "TCP" }],
    endpoints,
  });
  const ep = (ip: string, pod: string, conditions: KubeObject) => ({
    addresses: [ip],
    conditions,
    targetRef: { kind: "Pod", name: pod },
  });
  const slices = [
    slice("a-1", "a", [
      ep("10.0.0.1", "a-x", { ready: true, serving: true, terminating: false }),
      ep("10.0.0.2", "a-y", { ready: false, serving: false, terminating: false }),
      ep("10.0.0.3", "a-z", { ready: false, serving: true, terminating: true }),
      { addresses: ["10.0.0.4"], conditions: {} },
    ]),
    // The same pod listed again (slices being rewritten): the better state counts.
    slice("a-2", "a", [ep("10.0.0.2", "a-y", { ready: true })]),
    slice("b-1", "b", [ep("10.0.0.9", "b-x", { ready: true })], 9100),
  ];
  const a = instancesFromSlices("a", slices);
  assertEquals([...a.values()].map((i) => [i.id, i.url, i.state]), [
    ["a-x", "http://10.0.0.1:9092", "ready"],
    ["a-y", "http://10.0.0.2:9092", "ready"],
    ["a-z", "http://10.0.0.3:9092", "draining"],
    ["10.0.0.4", "http://10.0.0.4:9092", "ready"],
  ]);
  const b = instancesFromSlices("b", slices);
  assertEquals([...b.values()], [{
    id: "b-x",
    function: "b",
    url: "http://10.0.0.9:9100",
    state: "ready",
  }]);
  const v6 = instancesFromSlices("c", [{
    ...slice("c-1", "c", [ep("fd00::5", "c-x", { ready: true })]),
    addressType: "IPv6",
  }]);
  assertEquals(v6.get("c-x")?.url, "http://[fd00::5]:9092");
  assertEquals(instancesFromSlices("none", slices).size, 0);
});

Deno.test("kube informer: an older copy never replaces a newer one", () => {
  const v = (rv: string) => ({ metadata: { resourceVersion: rv } });
  assert(isOlder(v("9"), v("10")));
  assert(!isOlder(v("10"), v("9")));
  assert(!isOlder(v("10"), undefined));
  assert(!isOlder(v("abc"), v("10")), "opaque versions are not compared");
});

Deno.test("kube leader: lease times and timing rules", () => {
  assertEquals(microTime(Date.UTC(2026, 0, 2, 3, 4, 5, 678)), "2026-01-02T03:04:05.678000Z");
  assertEquals(
    validateTimings({ leaseDurationMs: 15000, renewDeadlineMs: 10000, retryPeriodMs: 2000 }),
    undefined,
  );
  assert(validateTimings({ leaseDurationMs: 5000, renewDeadlineMs: 5000, retryPeriodMs: 1000 }));
  assert(validateTimings({ leaseDurationMs: 5000, renewDeadlineMs: 3000, retryPeriodMs: 3000 }));
});

Deno.test("kube connection: which context, cluster and user a kubeconfig selects", async () => {
  // What is checked before any request; the credentials themselves are tested against the
  // test cluster (kubeconfig_test.ts).
  const dir = await Deno.makeTempDir({ prefix: "f2s-kubeconfig-" });
  try {
    const config = (user: string) =>
      `apiVersion: v1
kind: Config
current-context: main
clusters:
  - name: c
    cluster: { server: "https://10.1.2.3:6443/", insecure-skip-tls-verify: true }
contexts:
  - name: main
    context: { cluster: c, user: u, namespace: team }
  - name: other
    context: { cluster: c, user: missing }
  - name: lost
    context: { cluster: gone, user: u }
users:
  - name: u
    user: ${user}
`;
    const path = `${dir}/config`;
    await Deno.writeTextFile(path, config("{ token: abc }"));
    const conn = connectionFromKubeconfig(path);
    assertEquals([conn.server, conn.namespace, conn.source], [
      "https://10.1.2.3:6443",
      "team",
      `kubeconfig ${path} (context main)`,
    ]);
    assertEquals(conn.config.getCurrentUser()?.token, "abc");
    const fails = (ctx: string | undefined, includes: string) =>
      assertThrows(() => connectionFromKubeconfig(path, ctx), ConnectionError, includes);
    fails("nope", 'context "nope" not found');
    fails("other", 'user "missing" not found');
    fails("lost", 'cluster "gone" not found');
    assertThrows(
      () => connectionFromKubeconfig(`${dir}/absent`),
      ConnectionError,
      "cannot read kubeconfig",
    );
    await Deno.writeTextFile(path, config('{ token: abc, as-groups: ["g"] }'));
    fails(undefined, 'as-groups, as-uid and as-user-extra need "as"');
    await Deno.writeTextFile(path, config("{ exec: { apiVersion: v1 } }"));
    fails(undefined, "exec has no command");
    await Deno.writeTextFile(path, "");
    fails(undefined, "the file is empty");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
