/**
 * The Kubernetes backend's pure parts, without a cluster: what a function's Deployment and
 * Service look like, drift fingerprints that ignore server defaults but catch real edits,
 * instances from EndpointSlices, kubeconfig reading (files, tokens, exec plugins) and the
 * lease's time format.
 */

import { parse as parseYaml } from "yaml";
import { type FunctionDef, parseFunction } from "../../common/function.ts";
import type { KubeObject } from "../../control/kube/client.ts";
import { ConnectionError, connectionFromKubeconfig } from "../../control/kube/connection.ts";
import { instancesFromSlices } from "../../control/kube/endpoints.ts";
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

Deno.test("kube connection: kubeconfig files, tokens and exec plugins", async () => {
  const dir = await Deno.makeTempDir({ prefix: "f2s-kubeconfig-" });
  try {
    await Deno.writeTextFile(`${dir}/ca.crt`, "CA PEM");
    await Deno.writeTextFile(`${dir}/token`, "file-token\n");
    const plugin = `${dir}/plugin.sh`;
    await Deno.writeTextFile(
      `${dir}/count`,
      "",
    );
    // A real exec credential plugin: counts its runs, prints an ExecCredential.
    await Deno.writeTextFile(
      plugin,
      `#!/bin/sh
echo run >> "${dir}/count"
echo '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"exec-'"$F2S_TEST_ARG"'","expirationTimestamp":"2999-01-01T00:00:00Z"}}'
`,
    );
    await Deno.chmod(plugin, 0o755);
    const config = (user: string) =>
      `apiVersion: v1
kind: Config
current-context: main
clusters:
  - name: c
    cluster: { server: "https://10.1.2.3:6443/", certificate-authority: ca.crt }
contexts:
  - name: main
    context: { cluster: c, user: u, namespace: team }
  - name: other
    context: { cluster: c, user: missing }
users:
  - name: u
    user: ${user}
`;
    const write = async (user: string) => {
      await Deno.writeTextFile(`${dir}/config`, config(user));
      return `${dir}/config`;
    };

    const certs = connectionFromKubeconfig(
      await write(`{ client-certificate-data: ${btoa("CERT")}, client-key-data: ${btoa("KEY")} }`),
    );
    assertEquals([certs.server, certs.ca, certs.cert, certs.key, certs.namespace], [
      "https://10.1.2.3:6443",
      "CA PEM",
      "CERT",
      "KEY",
      "team",
    ]);
    assertEquals(certs.token, undefined);

    const inline = connectionFromKubeconfig(await write("{ token: abc }"));
    assertEquals(await inline.token!(), "abc");
    const fromFile = connectionFromKubeconfig(await write("{ tokenFile: token }"));
    assertEquals(await fromFile.token!(), "file-token");

    const exec = connectionFromKubeconfig(
      await write(`
      exec:
        apiVersion: client.authentication.k8s.io/v1
        command: ${plugin}
        env: [{ name: F2S_TEST_ARG, value: "42" }]`),
    );
    assertEquals(await exec.token!(), "exec-42");
    assertEquals(await exec.token!(), "exec-42");
    assertEquals((await Deno.readTextFile(`${dir}/count`)).trim().split("\n").length, 1, "cached");

    const path = await write("{ token: abc }");
    assertThrows(
      () => connectionFromKubeconfig(path, "nope"),
      ConnectionError,
      'context "nope" not found',
    );
    assertThrows(
      () => connectionFromKubeconfig(path, "other"),
      ConnectionError,
      'user "missing" not found',
    );
    assertThrows(
      () => connectionFromKubeconfig(`${dir}/absent`),
      ConnectionError,
      "cannot read kubeconfig",
    );
    await Deno.writeTextFile(
      `${dir}/config`,
      config("{ token: x }").replace(
        "certificate-authority: ca.crt",
        "insecure-skip-tls-verify: true",
      ),
    );
    assertThrows(() => connectionFromKubeconfig(`${dir}/config`), ConnectionError, "not supported");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
