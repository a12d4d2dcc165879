/**
 * What a function looks like in `f2s-containers`: the Deployment and the Service F2S
 * applies for it (pure functions of the FunctionDef), their labels, and the fingerprint
 * that tells whether a live object still matches (drift) regardless of server defaults.
 */

import type { FunctionDef } from "../../common/function.ts";
import { FIZZLET_PATHS, FIZZLET_PORT } from "../../common/protocol.ts";
import type { KubeObject } from "./client.ts";

export const FIELD_MANAGER = "f2s";
export const FUNCTION_LABEL = "f2s.opensight.ch/function";
export const MANAGED_BY_LABEL = "app.kubernetes.io/managed-by";
export const MANAGED_SELECTOR = `${MANAGED_BY_LABEL}=f2s`;
export const SPEC_HASH_ANNOTATION = "f2s.opensight.ch/spec-hash";
export const FUNCTION_UID_ANNOTATION = "f2s.opensight.ch/function-uid";
export const CONTAINER_NAME = "function";
/** The user function pods run as (the fizzlet base image's user), whatever the image says. */
export const FUNCTION_UID = 10001;
const TMP_VOLUME = "tmp";

export function functionLabels(name: string): Record<string, string> {
  return {
    "app.kubernetes.io/name": name,
    "app.kubernetes.io/component": "function",
    "app.kubernetes.io/part-of": "f2s",
    [MANAGED_BY_LABEL]: "f2s",
    [FUNCTION_LABEL]: name,
  };
}

/**
 * Platform variables first, then the function's own (a duplicate name would break apply).
 * Secret and ConfigMap references stay references: the kubelet resolves them, so a secret's
 * value is never in the Function, the Deployment or F2S's memory.
 */
function containerEnv(fn: FunctionDef): KubeObject[] {
  const env: KubeObject[] = [
    { name: "F2S_FUNCTION", value: fn.name },
    { name: "F2S_INSTANCE", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
  ];
  if (fn.port !== FIZZLET_PORT) env.push({ name: "F2S_FIZZLET_PORT", value: String(fn.port) });
  const refs = fn.envRefs ?? {};
  const own = [...new Set([...Object.keys(fn.env), ...Object.keys(refs)])].sort();
  const taken = new Set(own);
  return [
    ...env.filter((e) => !taken.has(e.name)),
    ...own.map((name) =>
      refs[name] ? { name, valueFrom: structuredClone(refs[name]) } : { name, value: fn.env[name] }
    ),
  ];
}

function resources(fn: FunctionDef): KubeObject | undefined {
  const out: KubeObject = {};
  if (Object.keys(fn.resources.requests).length) out.requests = { ...fn.resources.requests };
  if (Object.keys(fn.resources.limits).length) out.limits = { ...fn.resources.limits };
  return Object.keys(out).length ? out : undefined;
}

function podTemplate(fn: FunctionDef): KubeObject {
  const container: KubeObject = {
    name: CONTAINER_NAME,
    image: fn.image,
    ports: [{ name: "http", containerPort: fn.port, protocol: "TCP" }],
    env: containerEnv(fn),
    readinessProbe: {
      httpGet: { path: FIZZLET_PATHS.ready, port: fn.port },
      // Scale from zero waits on the first ready probe: probe often, give up fast.
      periodSeconds: 1,
      failureThreshold: 1,
      timeoutSeconds: 1,
    },
    livenessProbe: {
      httpGet: { path: FIZZLET_PATHS.health, port: fn.port },
      periodSeconds: 10,
      failureThreshold: 3,
      timeoutSeconds: 2,
    },
  };
  const res = resources(fn);
  if (res) container.resources = res;
  // Pod Security "restricted", and a read-only root file system: functions are untrusted
  // code. /tmp (the fizzlet's request folders, an app's scratch files) is the one place to write.
  container.securityContext = {
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ["ALL"] },
  };
  container.volumeMounts = [{ name: TMP_VOLUME, mountPath: "/tmp" }];
  return {
    metadata: { labels: functionLabels(fn.name) },
    spec: {
      containers: [container],
      // Functions get no API credentials and no env vars for every other function's Service.
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      securityContext: {
        runAsNonRoot: true,
        runAsUser: FUNCTION_UID,
        runAsGroup: FUNCTION_UID,
        seccompProfile: { type: "RuntimeDefault" },
      },
      volumes: [{ name: TMP_VOLUME, emptyDir: {} }],
    },
  };
}

/** Name, labels and owning Function's uid: what F2S writes on every object it makes for `fn`. */
function ownedMetadata(fn: FunctionDef, namespace: string): KubeObject {
  return {
    name: fn.name,
    namespace,
    labels: functionLabels(fn.name),
    annotations: fn.uid ? { [FUNCTION_UID_ANNOTATION]: fn.uid } : {},
  };
}

/** The Deployment for `fn` (what F2S server-side applies), without the spec hash yet. */
export function deploymentFor(fn: FunctionDef, namespace: string, replicas: number): KubeObject {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: ownedMetadata(fn, namespace),
    spec: {
      replicas,
      selector: { matchLabels: { [FUNCTION_LABEL]: fn.name } },
      revisionHistoryLimit: 2,
      // A new instance is ready before an old one goes: updates never drop to zero.
      strategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: podTemplate(fn),
    },
  };
}

/** The Service whose EndpointSlices the dispatcher follows. */
export function serviceFor(fn: FunctionDef, namespace: string): KubeObject {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: ownedMetadata(fn, namespace),
    spec: {
      type: "ClusterIP",
      selector: { [FUNCTION_LABEL]: fn.name },
      ports: [{ name: "http", port: FIZZLET_PORT, targetPort: fn.port, protocol: "TCP" }],
    },
  };
}

/** Adds the spec hash (of what runs: template and service) to both objects. */
export async function withSpecHash(
  deployment: KubeObject,
  service: KubeObject,
): Promise<{ deployment: KubeObject; service: KubeObject; hash: string }> {
  const hash = await specHash(deploymentFingerprint(deployment) + serviceFingerprint(service));
  const d = structuredClone(deployment);
  const s = structuredClone(service);
  d.metadata.annotations = { ...d.metadata.annotations, [SPEC_HASH_ANNOTATION]: hash };
  d.spec.template.metadata.annotations = { [SPEC_HASH_ANNOTATION]: hash };
  s.metadata.annotations = { ...s.metadata.annotations, [SPEC_HASH_ANNOTATION]: hash };
  return { deployment: d, service: s, hash };
}

export async function specHash(text: string): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)),
  );
  return [...digest.slice(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The parts of a Deployment F2S decides (replicas aside), in a canonical form: equal for the
 * applied object and the live one unless someone changed them. Server defaults (probe
 * scheme, fieldRef apiVersion, quantity spelling) do not count.
 */
export function deploymentFingerprint(d: KubeObject): string {
  const pod = d?.spec?.template?.spec ?? {};
  const containers: KubeObject[] = pod.containers ?? [];
  const probe = (p: KubeObject | undefined) =>
    p
      ? [
        p.httpGet?.path,
        String(p.httpGet?.port),
        p.periodSeconds ?? 10,
        p.failureThreshold ?? 3,
        p.timeoutSeconds ?? 1,
      ]
      : null;
  return JSON.stringify({
    selector: d?.spec?.selector?.matchLabels ?? {},
    labels: ourLabels(d?.spec?.template?.metadata?.labels),
    automount: pod.automountServiceAccountToken ?? true,
    podSecurity: sorted(pod.securityContext),
    serviceLinks: pod.enableServiceLinks ?? true,
    strategy: d?.spec?.strategy?.rollingUpdate ?? {},
    containers: containers.map((c) => ({
      name: c.name,
      image: c.image,
      command: c.command ?? null,
      args: c.args ?? null,
      ports: (c.ports ?? []).map((p: KubeObject) => [p.name, p.containerPort, p.protocol ?? "TCP"]),
      env: (c.env ?? []).map((e: KubeObject) => [
        e.name,
        e.value ?? "",
        // Secret/ConfigMap references compared whole, whatever the server's key order.
        e.valueFrom?.fieldRef?.fieldPath ??
          (e.valueFrom ? JSON.stringify(sorted(e.valueFrom)) : null),
      ]),
      envFrom: c.envFrom ?? null,
      readiness: probe(c.readinessProbe),
      liveness: probe(c.livenessProbe),
      resources: quantities(c.resources),
      volumeMounts: sorted(c.volumeMounts),
      security: sorted(c.securityContext),
    })),
    volumes: sorted(pod.volumes),
  });
}

/** `value` with every object's keys in order: the API answers in its own field order. */
function sorted(value: unknown): unknown {
  if (value === undefined || value === null) return null;
  if (Array.isArray(value)) return value.map(sorted);
  if (typeof value !== "object") return value;
  return Object.fromEntries(
    Object.keys(value).sort().map((k) => [k, sorted((value as KubeObject)[k])]),
  );
}

export function serviceFingerprint(s: KubeObject): string {
  return JSON.stringify({
    selector: s?.spec?.selector ?? {},
    labels: ourLabels(s?.metadata?.labels),
    ports: (s?.spec?.ports ?? []).map((p: KubeObject) => [
      p.name,
      p.port,
      String(p.targetPort),
      p.protocol ?? "TCP",
    ]),
  });
}

function ourLabels(labels: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of Object.keys(labels ?? {}).sort()) {
    if (key.startsWith("app.kubernetes.io/") || key === FUNCTION_LABEL) out[key] = labels![key];
  }
  return out;
}

function quantities(r: KubeObject | undefined): KubeObject {
  const out: KubeObject = {};
  for (const kind of ["requests", "limits"]) {
    for (const [res, q] of Object.entries(r?.[kind] ?? {}).sort()) {
      out[`${kind}.${res}`] = parseQuantity(String(q));
    }
  }
  return out;
}

const SUFFIX: Record<string, number> = {
  "": 1,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** The value of a Kubernetes quantity ("500m", "0.5", "128Mi", "1e3"), NaN if malformed. */
export function parseQuantity(q: string): number {
  const m = /^([+-]?[0-9.]+)(?:([eE][+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?)$/.exec(
    q.trim(),
  );
  if (!m) return NaN;
  const base = Number(m[1]);
  if (m[2]) return Number(m[1] + m[2]);
  // Rounded so "0.1" and "100m" compare equal despite binary floating point.
  return Math.round(base * SUFFIX[m[3] ?? ""] * 1e6) / 1e6;
}
