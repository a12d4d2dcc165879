/**
 * The `Function` resource (f2s.opensight.ch/v1alpha1): its manifest shape, the defaults
 * F2S fills in, and validation that reports every problem with its field path.
 *
 * Manifests written for the seed's CRD load unchanged: `spec` holds the public endpoint,
 * the top-level `target` says what runs behind it. Everything F2S added is optional.
 */

import { parseDuration } from "./duration.ts";
import {
  ASYNC_DEFAULTS,
  type AsyncSpec,
  parseAsyncSpec,
  parseSchedule,
  type Schedule,
  scheduleManifest,
} from "./async_spec.ts";

export const API_GROUP = "f2s.opensight.ch";
export const API_VERSION = `${API_GROUP}/v1alpha1`;
export const KIND = "Function";

export const HTTP_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "ANY"];

/** A manifest as written by a user (what YAML, the API and the CRD carry). */
export interface FunctionManifest {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; uid?: string; [k: string]: unknown };
  spec: {
    endpoint: string;
    method: string;
    description?: string;
    /** Per-function overrides of the global timeouts (ms or "30s"). */
    timeouts?: {
      requestTimeout?: number | string;
      httpTimeout?: number | string;
      scalingTimeout?: number | string;
      /** Limit on the whole exchange once the answer has started (streaming answers). */
      maxDuration?: number | string;
    };
    /** Queued calls (`POST /async/invoke/...`): see common/async_spec.ts. */
    async?: { maxRetries?: number; maxConcurrency?: number };
    /** Invokes the function on a schedule through the async queue. */
    schedule?: string | { cron: string; timeZone?: string };
  };
  target: {
    containerImage: string;
    port?: number;
    endpoint?: string;
    minReplicas?: number;
    maxReplicas?: number;
    env?: Record<string, string> | EnvEntry[];
    resources?: {
      requests?: { cpu?: string; memory?: string };
      limits?: { cpu?: string; memory?: string };
    };
    scaling?: {
      /** Concurrent requests one instance should serve (the autoscaler's target). */
      targetConcurrency?: number;
      /** Hard limit of concurrent requests the dispatcher sends to one instance (0 = none). */
      containerConcurrency?: number;
      /** Time without requests before a function with minReplicas 0 goes to zero. */
      idleTimeout?: number | string;
      stableWindow?: number | string;
      panicWindow?: number | string;
      panicThreshold?: number;
    };
    /** Only used by `f2s dev`: where the function lives and how its app starts. */
    local?: { dir?: string; command?: string };
  };
  status?: unknown;
}

/**
 * A variable of `target.env` in list form: a value, or (Kubernetes only) a reference to a
 * key of a Secret or ConfigMap that the kubelet resolves, so the value never passes through
 * F2S. A redacted entry (`value: null, redacted: true`) is how the API shows a value to a
 * caller who may not change the function.
 */
export interface EnvEntry {
  name: string;
  value?: string | null;
  valueFrom?: EnvRef;
  redacted?: boolean;
}

/** A reference to one key of a Secret or a ConfigMap in the function's namespace. */
export type EnvRef =
  | { secretKeyRef: KeyRef }
  | { configMapKeyRef: KeyRef };

export interface KeyRef {
  name: string;
  key: string;
  optional?: boolean;
}

/** A validated function with every default filled in: what the rest of F2S works with. */
export interface FunctionDef {
  name: string;
  namespace: string;
  uid?: string;
  endpoint: string;
  method: string;
  description: string;
  image: string;
  port: number;
  targetPath: string;
  minReplicas: number;
  maxReplicas: number;
  env: Record<string, string>;
  /** Variables whose values come from Secrets/ConfigMaps (Kubernetes only); never in `env`. */
  envRefs: Record<string, EnvRef>;
  resources: {
    requests: { cpu?: string; memory?: string };
    limits: { cpu?: string; memory?: string };
  };
  timeouts: {
    requestTimeout?: number;
    httpTimeout?: number;
    scalingTimeout?: number;
    maxDuration?: number;
  };
  /** Unset values fall back to the global `f2s.autoscaling` settings. */
  scaling: {
    targetConcurrency?: number;
    containerConcurrency: number;
    idleTimeout?: number;
    stableWindow?: number;
    panicWindow?: number;
    panicThreshold?: number;
  };
  local: { dir?: string; command?: string };
  async: AsyncSpec;
  schedule?: Schedule;
}

export interface FieldError {
  path: string;
  message: string;
}

export type ParseResult =
  | { ok: true; fn: FunctionDef; warnings: FieldError[] }
  | { ok: false; errors: FieldError[] };

export const FUNCTION_DEFAULTS = {
  namespace: "f2s",
  port: 9092,
  targetPath: "/",
  minReplicas: 1,
  maxReplicas: 1,
  containerConcurrency: 0,
} as const;

const NAME_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const ENDPOINT_RE = /^\/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$/;
// The path F2S forwards to inside the instance: visible ASCII only (it goes into a request line).
const TARGET_PATH_RE = /^\/[\x21-\x7e]*$/;
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
// Kubernetes object names (DNS-1123 subdomain) and Secret/ConfigMap keys.
const OBJECT_NAME_RE = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const KEY_RE = /^[-._a-zA-Z0-9]{1,253}$/;
const QUANTITY_RE = /^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$/;

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Checks a manifest (parsed YAML or JSON of unknown shape) and returns the function with
 * defaults, or every problem found, each with its field path.
 */
export function parseFunction(input: unknown): ParseResult {
  const errors: FieldError[] = [];
  const err = (path: string, message: string) => errors.push({ path, message });

  if (!isObj(input)) return { ok: false, errors: [{ path: "", message: "must be an object" }] };

  if (input.apiVersion !== undefined && input.apiVersion !== API_VERSION) {
    err("apiVersion", `must be "${API_VERSION}"`);
  }
  if (input.kind !== undefined && input.kind !== KIND) err("kind", `must be "${KIND}"`);

  const meta = isObj(input.metadata) ? input.metadata : undefined;
  if (!meta) err("metadata", "is required");
  const name = meta?.name;
  if (meta && typeof name !== "string") err("metadata.name", "is required");
  else if (meta && !NAME_RE.test(name as string)) {
    err(
      "metadata.name",
      "must be a DNS-1123 label: lower-case letters, digits and '-', at most 63 characters",
    );
  }
  const namespace = meta?.namespace ?? FUNCTION_DEFAULTS.namespace;
  if (typeof namespace !== "string" || !NAME_RE.test(namespace)) {
    err("metadata.namespace", "must be a DNS-1123 label");
  }

  const spec = isObj(input.spec) ? input.spec : undefined;
  if (!spec) err("spec", "is required");
  const endpoint = spec?.endpoint;
  if (spec && typeof endpoint !== "string") err("spec.endpoint", "is required");
  else if (spec && (!ENDPOINT_RE.test(endpoint as string) || (endpoint as string).length > 200)) {
    err("spec.endpoint", "must be a path starting with '/' without spaces or '?'");
  } else if (spec && endpoint === "/") err("spec.endpoint", "must not be '/' alone");
  else if (spec && hasDotSegment(endpoint as string)) {
    err("spec.endpoint", "must not contain '.' or '..' segments");
  }
  const methodRaw = spec?.method;
  let method = "GET";
  if (spec && typeof methodRaw !== "string") err("spec.method", "is required");
  else if (typeof methodRaw === "string") {
    method = methodRaw.toUpperCase();
    if (!HTTP_METHODS.includes(method)) {
      err("spec.method", `must be one of ${HTTP_METHODS.join(", ")}`);
    }
  }
  const description = spec?.description ?? "";
  if (typeof description !== "string") err("spec.description", "must be a string");

  const timeouts: FunctionDef["timeouts"] = {};
  if (spec?.timeouts !== undefined) {
    if (!isObj(spec.timeouts)) err("spec.timeouts", "must be an object");
    else {
      for (const [key, value] of Object.entries(spec.timeouts)) {
        if (!["requestTimeout", "httpTimeout", "scalingTimeout", "maxDuration"].includes(key)) {
          err(
            `spec.timeouts.${key}`,
            "is not a known field (requestTimeout, httpTimeout, scalingTimeout, maxDuration)",
          );
          continue;
        }
        const ms = parseDuration(value);
        if (typeof ms === "string") err(`spec.timeouts.${key}`, ms);
        else if (ms <= 0) err(`spec.timeouts.${key}`, "must be greater than 0");
        else timeouts[key as keyof FunctionDef["timeouts"]] = ms;
      }
    }
  }

  const asyncSpec = parseAsyncSpec(spec?.async, err);
  const schedule = parseSchedule(spec?.schedule, err);

  // The seed puts `target` beside `spec`; accept it inside `spec` too, as people write both.
  const targetRaw = input.target ?? spec?.target;
  const target = isObj(targetRaw) ? targetRaw : undefined;
  if (!target) err("target", "is required");
  const image = target?.containerImage;
  if (target && (typeof image !== "string" || image.trim() === "")) {
    err("target.containerImage", "is required");
  }
  const int = (path: string, v: unknown, dflt: number, min: number, max: number): number => {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== "number" || !Number.isInteger(v)) {
      err(path, "must be an integer");
      return dflt;
    }
    if (v < min || v > max) err(path, `must be between ${min} and ${max}`);
    return v;
  };
  const port = int("target.port", target?.port, FUNCTION_DEFAULTS.port, 1, 65535);
  const targetPath = target?.endpoint ?? FUNCTION_DEFAULTS.targetPath;
  if (
    typeof targetPath !== "string" || !TARGET_PATH_RE.test(targetPath) || targetPath.length > 200
  ) {
    err(
      "target.endpoint",
      "must be a path starting with '/' of printable characters (no spaces, CR/LF or controls)",
    );
  } else if (hasDotSegment(targetPath)) {
    err("target.endpoint", "must not contain '.' or '..' segments");
  }
  const minReplicas = int(
    "target.minReplicas",
    target?.minReplicas,
    FUNCTION_DEFAULTS.minReplicas,
    0,
    1000,
  );
  const maxReplicas = int(
    "target.maxReplicas",
    target?.maxReplicas,
    Math.max(FUNCTION_DEFAULTS.maxReplicas, minReplicas),
    1,
    1000,
  );
  if (maxReplicas < minReplicas) err("target.maxReplicas", "must be at least target.minReplicas");

  const env: Record<string, string> = {};
  const envRefs: Record<string, EnvRef> = {};
  const envRaw = target?.env;
  if (Array.isArray(envRaw)) {
    envRaw.forEach((e, i) => {
      const path = `target.env[${i}]`;
      if (!isObj(e) || typeof e.name !== "string") err(`${path}.name`, "is required");
      else if (!ENV_NAME_RE.test(e.name)) err(`${path}.name`, "is not a valid variable name");
      else if (e.valueFrom !== undefined) {
        if (e.value !== undefined) err(`${path}`, "has both value and valueFrom; give one");
        const ref = envRefOf(e.valueFrom, `${path}.valueFrom`, err);
        if (ref) envRefs[e.name] = ref;
      } else if (typeof e.value !== "string") err(`${path}.value`, "must be a string");
      else env[e.name] = e.value;
    });
  } else if (isObj(envRaw)) {
    for (const [k, v] of Object.entries(envRaw)) {
      if (!ENV_NAME_RE.test(k)) err(`target.env.${k}`, "is not a valid variable name");
      else if (typeof v !== "string" && typeof v !== "number" && typeof v !== "boolean") {
        err(`target.env.${k}`, "must be a string");
      } else env[k] = String(v);
    }
  } else if (envRaw !== undefined) {
    err("target.env", "must be a map or a list of {name, value} or {name, valueFrom}");
  }

  const resources: FunctionDef["resources"] = { requests: {}, limits: {} };
  if (target?.resources !== undefined) {
    if (!isObj(target.resources)) err("target.resources", "must be an object");
    else {
      for (const [kind, value] of Object.entries(target.resources)) {
        if (kind !== "requests" && kind !== "limits") {
          err(`target.resources.${kind}`, "is not a known field (requests, limits)");
          continue;
        }
        if (!isObj(value)) {
          err(`target.resources.${kind}`, "must be an object");
          continue;
        }
        for (const [res, q] of Object.entries(value)) {
          if (res !== "cpu" && res !== "memory") {
            err(`target.resources.${kind}.${res}`, "is not a known resource (cpu, memory)");
          } else if (typeof q !== "string" && typeof q !== "number") {
            err(`target.resources.${kind}.${res}`, "must be a quantity like 100m or 128Mi");
          } else if (!QUANTITY_RE.test(String(q))) {
            err(`target.resources.${kind}.${res}`, `"${q}" is not a quantity like 100m or 128Mi`);
          } else resources[kind][res] = String(q);
        }
      }
    }
  }

  const scaling: FunctionDef["scaling"] = {
    containerConcurrency: FUNCTION_DEFAULTS.containerConcurrency,
  };
  const sc = target?.scaling;
  if (sc !== undefined && !isObj(sc)) err("target.scaling", "must be an object");
  if (isObj(sc)) {
    for (const [key, value] of Object.entries(sc)) {
      const path = `target.scaling.${key}`;
      switch (key) {
        case "targetConcurrency":
        case "panicThreshold":
          if (typeof value !== "number" || !(value > 0)) {
            err(path, "must be a number greater than 0");
          } else scaling[key] = value;
          break;
        case "containerConcurrency":
          scaling.containerConcurrency = int(path, value, 0, 0, 100_000);
          break;
        case "idleTimeout":
        case "stableWindow":
        case "panicWindow": {
          const ms = parseDuration(value);
          if (typeof ms === "string") err(path, ms);
          else scaling[key] = ms;
          break;
        }
        default:
          err(path, "is not a known field");
      }
    }
  }

  const local: FunctionDef["local"] = {};
  if (target?.local !== undefined) {
    if (!isObj(target.local)) err("target.local", "must be an object");
    else {
      for (const [key, value] of Object.entries(target.local)) {
        if (key !== "dir" && key !== "command") {
          err(`target.local.${key}`, "is not a known field (dir, command)");
        } else if (typeof value !== "string" || value === "") {
          err(`target.local.${key}`, "must be a non-empty string");
        } else local[key] = value;
      }
    }
  }

  if (errors.length > 0) return { ok: false, errors };
  return {
    ok: true,
    warnings: unknownFields(input),
    fn: {
      name: name as string,
      namespace: namespace as string,
      uid: typeof meta?.uid === "string" ? meta.uid : undefined,
      endpoint: normalizeEndpoint(endpoint as string),
      method,
      description: description as string,
      image: (image as string).trim(),
      port,
      targetPath: targetPath as string,
      minReplicas,
      maxReplicas,
      env,
      envRefs,
      resources,
      timeouts,
      scaling,
      local,
      async: asyncSpec,
      ...(schedule ? { schedule } : {}),
    },
  };
}

/** "/hello/" and "/hello" name the same endpoint. */
export function normalizeEndpoint(endpoint: string): string {
  return endpoint.length > 1 ? endpoint.replace(/\/+$/, "") : endpoint;
}

/** The manifest that describes `fn` (what the API returns and `f2s dev` writes to disk). */
export function toManifest(fn: FunctionDef): FunctionManifest {
  const target: FunctionManifest["target"] = {
    containerImage: fn.image,
    port: fn.port,
    endpoint: fn.targetPath,
    minReplicas: fn.minReplicas,
    maxReplicas: fn.maxReplicas,
  };
  const refs = Object.keys(fn.envRefs ?? {});
  if (refs.length > 0) {
    // References need the list form; values keep their names' order before them.
    target.env = [
      ...Object.entries(fn.env).map(([name, value]) => ({ name, value })),
      ...refs.map((name) => ({ name, valueFrom: structuredClone(fn.envRefs[name]) })),
    ];
  } else if (Object.keys(fn.env).length > 0) target.env = { ...fn.env };
  if (Object.keys(fn.resources.requests).length + Object.keys(fn.resources.limits).length > 0) {
    target.resources = structuredClone(fn.resources);
  }
  const scaling: NonNullable<FunctionManifest["target"]["scaling"]> = {};
  if (fn.scaling.containerConcurrency !== FUNCTION_DEFAULTS.containerConcurrency) {
    scaling.containerConcurrency = fn.scaling.containerConcurrency;
  }
  for (
    const k of [
      "targetConcurrency",
      "idleTimeout",
      "stableWindow",
      "panicWindow",
      "panicThreshold",
    ] as const
  ) {
    if (fn.scaling[k] !== undefined) scaling[k] = fn.scaling[k];
  }
  if (Object.keys(scaling).length > 0) target.scaling = scaling;
  if (fn.local.dir || fn.local.command) target.local = { ...fn.local };
  const spec: FunctionManifest["spec"] = { endpoint: fn.endpoint, method: fn.method };
  if (fn.description) spec.description = fn.description;
  if (Object.keys(fn.timeouts).length > 0) spec.timeouts = { ...fn.timeouts };
  const a = fn.async ?? ASYNC_DEFAULTS;
  if (a.maxRetries !== ASYNC_DEFAULTS.maxRetries) spec.async = { maxRetries: a.maxRetries };
  if (a.maxConcurrency !== ASYNC_DEFAULTS.maxConcurrency) {
    spec.async = { ...spec.async, maxConcurrency: a.maxConcurrency };
  }
  if (fn.schedule) spec.schedule = scheduleManifest(fn.schedule);
  const metadata: FunctionManifest["metadata"] = { name: fn.name, namespace: fn.namespace };
  if (fn.uid) metadata.uid = fn.uid;
  return { apiVersion: API_VERSION, kind: KIND, metadata, spec, target };
}

/** A short human summary of validation errors, e.g. for a log line or a CLI message. */
export function formatErrors(errors: FieldError[]): string {
  return errors.map((e) => (e.path ? `${e.path}: ${e.message}` : e.message)).join("; ");
}

/** Whether a path has a "." or ".." segment (which a proxy or a server could resolve away). */
function hasDotSegment(path: string): boolean {
  return path.split("/").some((s) => s === "." || s === "..");
}

/** Parses `valueFrom` of an env entry: exactly one of secretKeyRef, configMapKeyRef. */
function envRefOf(
  raw: unknown,
  path: string,
  err: (path: string, message: string) => void,
): EnvRef | undefined {
  const kinds = ["secretKeyRef", "configMapKeyRef"] as const;
  if (!isObj(raw)) {
    err(path, "must be an object with secretKeyRef or configMapKeyRef");
    return undefined;
  }
  const present = Object.keys(raw);
  const kind = kinds.find((k) => present.includes(k));
  if (present.length !== 1 || !kind) {
    err(path, "must have exactly one of secretKeyRef, configMapKeyRef");
    return undefined;
  }
  const ref = raw[kind];
  const at = `${path}.${kind}`;
  if (!isObj(ref)) {
    err(at, "must be an object {name, key, optional?}");
    return undefined;
  }
  let ok = true;
  for (const key of Object.keys(ref)) {
    if (!["name", "key", "optional"].includes(key)) {
      err(`${at}.${key}`, "is not a known field (name, key, optional)");
      ok = false;
    }
  }
  if (typeof ref.name !== "string" || !OBJECT_NAME_RE.test(ref.name)) {
    err(`${at}.name`, "must be the name of a Kubernetes object (DNS-1123 subdomain)");
    ok = false;
  }
  if (typeof ref.key !== "string" || !KEY_RE.test(ref.key)) {
    err(`${at}.key`, "must be a key: letters, digits, '-', '_' and '.'");
    ok = false;
  }
  if (ref.optional !== undefined && typeof ref.optional !== "boolean") {
    err(`${at}.optional`, "must be true or false");
    ok = false;
  }
  if (!ok) return undefined;
  const out: KeyRef = { name: ref.name as string, key: ref.key as string };
  if (ref.optional !== undefined) out.optional = ref.optional as boolean;
  return kind === "secretKeyRef" ? { secretKeyRef: out } : { configMapKeyRef: out };
}

/** Fields a manifest may carry that F2S knows, by object path ("*": any key is fine). */
const KNOWN_FIELDS: Record<string, readonly string[] | "*"> = {
  "": ["apiVersion", "kind", "metadata", "spec", "target", "status"],
  metadata: "*", // Kubernetes metadata: labels, annotations, resourceVersion, ...
  spec: ["endpoint", "method", "description", "timeouts", "target", "async", "schedule"],
  target: [
    "containerImage",
    "port",
    "endpoint",
    "minReplicas",
    "maxReplicas",
    "env",
    "resources",
    "scaling",
    "local",
  ],
};

/**
 * Fields F2S ignores (misspelt or from a newer version), reported like the Kubernetes API's
 * warnings rather than dropped silently. Fields of nested objects it checks strictly
 * (timeouts, scaling, resources, local) are errors instead.
 */
export function unknownFields(input: unknown): FieldError[] {
  const out: FieldError[] = [];
  if (!isObj(input)) return out;
  const check = (value: unknown, path: string) => {
    const known = KNOWN_FIELDS[path];
    if (!isObj(value) || known === "*" || known === undefined) return;
    for (const key of Object.keys(value)) {
      const at = path ? `${path}.${key}` : key;
      if (!known.includes(key)) {
        out.push({ path: at, message: "is not a known field; ignored" });
      } else if (at !== "spec.target") check(value[key], at);
    }
  };
  check(input, "");
  if (isObj(input.spec) && isObj(input.spec.target)) {
    for (const key of Object.keys(input.spec.target)) {
      if (!(KNOWN_FIELDS.target as readonly string[]).includes(key)) {
        out.push({ path: `spec.target.${key}`, message: "is not a known field; ignored" });
      }
    }
  }
  return out.slice(0, 50);
}
