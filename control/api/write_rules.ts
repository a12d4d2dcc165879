/**
 * What a caller may write beyond "holds functions:create/update for this name", and what a
 * caller may read of a function:
 *
 * - `target.local` (the command and folder `f2s dev` runs on its host) is an operator's
 *   power: setting or changing it needs the unscoped `functions:local`;
 * - an endpoint is owned with everything below it, because routing gives a request to the
 *   function with the longest matching endpoint: `/billing/export` takes part of the
 *   traffic of `/billing`. A caller may place a function on an endpoint only where no
 *   function owns it that the caller may not update;
 * - env values are shown only to callers who may update the function;
 * - a Secret or ConfigMap reference makes the kubelet hand that object's value to the
 *   function, so a caller who may not update every function (a scoped user) may reference
 *   only the Secret/ConfigMap named like the function itself; otherwise a team could read
 *   another team's secrets through its own function.
 */

import type {
  EnvEntry,
  EnvRef,
  FieldError,
  FunctionDef,
  FunctionManifest,
} from "../../common/function.ts";
import { parseFunction } from "../../common/function.ts";
import type { AuthGate, Caller } from "../auth/gate.ts";

/**
 * A refused write: the status and message the API answers with; for refused fields,
 * `details` lists them as `{path, message}` like validation errors, so forms can place them.
 */
export interface Refusal {
  status: 403 | 409;
  message: string;
  details?: unknown;
}

/** The `target.local` fields `next` sets differently from `previous` (none when equal). */
export function changedLocalFields(next: FunctionDef, previous?: FunctionManifest): string[] {
  let before: FunctionDef["local"] = {};
  if (previous) {
    const parsed = parseFunction(previous);
    if (parsed.ok) before = parsed.fn.local;
  }
  return (["command", "dir"] as const)
    .filter((k) => (next.local[k] ?? "") !== (before[k] ?? ""))
    .map((k) => `target.local.${k}`);
}

/**
 * 403 naming the references to Secrets/ConfigMaps not named like the function, for a
 * caller without the unscoped `functions:update`; references kept unchanged are fine.
 */
export function refRefusal<C extends Caller>(
  auth: AuthGate<C>,
  caller: C,
  next: FunctionDef,
  previous?: FunctionManifest,
): Refusal | undefined {
  if (auth.can(caller, "functions:update")) return undefined;
  const before = previous ? parseFunction(previous) : undefined;
  const kept = before?.ok ? before.fn.envRefs : {};
  const fields: string[] = [];
  for (const [name, ref] of Object.entries(next.envRefs)) {
    const [kind, key] = "secretKeyRef" in ref
      ? ["secretKeyRef", ref.secretKeyRef]
      : ["configMapKeyRef", ref.configMapKeyRef];
    if (key.name === next.name) continue;
    if (JSON.stringify(kept[name]) === JSON.stringify(ref)) continue;
    fields.push(`target.env.${name}.valueFrom.${kind}.name`);
  }
  if (fields.length === 0) return undefined;
  return {
    status: 403,
    message: `${fields.join(", ")}: you may reference only the Secret or ConfigMap named ` +
      `"${next.name}" (like the function); others need the unscoped functions:update`,
    details: fields.map((path) => ({
      path,
      message: `may name only "${next.name}" without the unscoped functions:update`,
    })),
  };
}

/** 403 naming the host-level fields a caller without `functions:local` tried to set. */
export function localRefusal<C extends Caller>(
  auth: AuthGate<C>,
  caller: C,
  next: FunctionDef,
  previous?: FunctionManifest,
): Refusal | undefined {
  const changed = changedLocalFields(next, previous);
  if (changed.length === 0 || auth.can(caller, "functions:local")) return undefined;
  return {
    status: 403,
    message: `${changed.join(", ")}: setting how a function runs on the host needs the ` +
      "privilege functions:local",
    details: changed.map((path) => ({ path, message: "needs the privilege functions:local" })),
  };
}

/**
 * 409 when `fn`'s endpoint is another function's, or lies below the endpoint of a
 * function the caller may not update. The owner is named only to a caller who may see it.
 */
export function endpointRefusal<C extends Caller>(
  auth: AuthGate<C>,
  caller: C,
  fn: FunctionDef,
  existing: Iterable<FunctionDef>,
  replacing?: string,
): Refusal | undefined {
  for (const other of existing) {
    if (other.name === replacing || other.name === fn.name) continue;
    const same = other.endpoint === fn.endpoint;
    const below = fn.endpoint.startsWith(`${other.endpoint}/`);
    if (!same && !(below && !auth.can(caller, "functions:update", other.name))) continue;
    if (!auth.can(caller, "functions:list", other.name)) {
      return { status: 409, message: `endpoint "${fn.endpoint}" is taken` };
    }
    return {
      status: 409,
      message: same
        ? `endpoint "${fn.endpoint}" is already used by function "${other.name}"`
        : `endpoint "${fn.endpoint}" lies within endpoint "${other.endpoint}" of function ` +
          `"${other.name}", which you may not update`,
      details: { function: other.name, endpoint: other.endpoint },
    };
  }
  return undefined;
}

/** `manifest` with every env value replaced by `null` and marked `redacted: true`. */
export function redactEnv(manifest: FunctionManifest): FunctionManifest {
  const out = structuredClone(manifest) as FunctionManifest & { spec: { target?: unknown } };
  for (const target of [out.target, out.spec?.target as FunctionManifest["target"]]) {
    if (!target || typeof target !== "object" || target.env === undefined) continue;
    const env = target.env;
    const entries: { name?: unknown; valueFrom?: unknown }[] = Array.isArray(env)
      ? env
      : typeof env === "object" && env !== null
      ? Object.keys(env).map((name) => ({ name }))
      : [];
    target.env = entries.map((e): EnvEntry =>
      e?.valueFrom !== undefined
        ? { name: String(e.name), valueFrom: e.valueFrom as EnvRef } // a reference holds no secret
        : { name: String(e?.name), value: null, redacted: true }
    );
  }
  return out;
}

/** Warnings as the answer carries them ("path: message"). */
export function warningTexts(warnings: FieldError[]): string[] {
  return warnings.map((w) => `${w.path}: ${w.message}`);
}
