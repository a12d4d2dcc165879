/**
 * The create/edit form's model: which manifest fields it offers (each named by the field
 * path the API's validator reports), how form text becomes a manifest and back, and which
 * field a validation error belongs to. Validation itself is the API's (dry run), so the
 * form never disagrees with what a write would say.
 */

import { durationText } from "./format.js";

/**
 * @typedef {{ values: Record<string, string>, env: { name: string, value: string }[] }} FormState
 * @typedef {{ path: string, message: string }} FieldError
 * @typedef {{
 *   fields: Record<string, string[]>,
 *   env: Record<number, { name?: string[], value?: string[] }>,
 *   other: FieldError[],
 * }} PlacedErrors
 */

export const API_VERSION = "f2s.opensight.ch/v1alpha1";
export const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "ANY"];

/**
 * The form's fields, by section. `kind`: text, int (whole numbers), number, duration (ms or
 * "30s"), method. Text that does not look like the kind is sent as typed, so the API's
 * validator words the problem.
 */
export const SECTIONS = [
  {
    id: "basics",
    title: "Basics",
    fields: [
      {
        path: "metadata.name",
        label: "Name",
        kind: "text",
        required: true,
        placeholder: "hello-world",
        help: "Lower-case letters, digits and dashes. Cannot be changed later.",
      },
      {
        path: "spec.description",
        label: "Description",
        kind: "text",
        placeholder: "What the function does",
      },
      {
        path: "spec.endpoint",
        label: "Endpoint",
        kind: "text",
        required: true,
        placeholder: "/hello-world",
        help: "Callers reach the function at /invoke followed by this path.",
      },
      {
        path: "spec.method",
        label: "HTTP method",
        kind: "method",
        help: "ANY accepts every method.",
      },
      {
        path: "target.containerImage",
        label: "Container image",
        kind: "text",
        required: true,
        placeholder: "registry.example.com/team/hello:1.0",
        help: "The image that runs the function (with the fizzlet inside).",
      },
    ],
  },
  {
    id: "instances",
    title: "Instances",
    fields: [
      {
        path: "target.minReplicas",
        label: "Minimum instances",
        kind: "int",
        placeholder: "1",
        help: "0 lets the function scale to zero when idle.",
      },
      {
        path: "target.maxReplicas",
        label: "Maximum instances",
        kind: "int",
        placeholder: "1",
      },
    ],
  },
  {
    id: "advanced",
    title: "Advanced",
    advanced: true,
    fields: [
      { path: "target.port", label: "Container port", kind: "int", placeholder: "9092" },
      {
        path: "target.endpoint",
        label: "Path inside the container",
        kind: "text",
        placeholder: "/",
      },
      {
        path: "target.scaling.targetConcurrency",
        label: "Target concurrent requests per instance",
        kind: "number",
        placeholder: "10",
      },
      {
        path: "target.scaling.containerConcurrency",
        label: "Hard limit of concurrent requests per instance",
        kind: "int",
        placeholder: "0 (no limit)",
      },
      {
        path: "target.scaling.idleTimeout",
        label: "Idle time before scaling to zero",
        kind: "duration",
        placeholder: "60s",
      },
      {
        path: "spec.timeouts.requestTimeout",
        label: "Request timeout",
        kind: "duration",
        placeholder: "global setting",
      },
      {
        path: "spec.timeouts.httpTimeout",
        label: "Response headers timeout",
        kind: "duration",
        placeholder: "global setting",
      },
      {
        path: "spec.timeouts.scalingTimeout",
        label: "Scale-from-zero timeout",
        kind: "duration",
        placeholder: "global setting",
      },
      {
        path: "target.resources.requests.cpu",
        label: "CPU request",
        kind: "text",
        placeholder: "100m",
      },
      {
        path: "target.resources.requests.memory",
        label: "Memory request",
        kind: "text",
        placeholder: "128Mi",
      },
      {
        path: "target.resources.limits.cpu",
        label: "CPU limit",
        kind: "text",
        placeholder: "1",
      },
      {
        path: "target.resources.limits.memory",
        label: "Memory limit",
        kind: "text",
        placeholder: "256Mi",
      },
    ],
  },
  {
    id: "local",
    title: "Local runtime (f2s dev)",
    advanced: true,
    fields: [
      {
        path: "target.local.command",
        label: "Start command",
        kind: "text",
        placeholder: "node server.js",
        help: "How f2s dev starts the app behind the fizzlet. Empty: the fizzlet's own mode.",
      },
      {
        path: "target.local.dir",
        label: "Folder",
        kind: "text",
        placeholder: "found by image name",
        help: "Where the function's files are. Empty: a folder named after the image.",
      },
    ],
  },
];

export const FIELDS = SECTIONS.flatMap((s) => s.fields);

/**
 * An empty form: every field blank except the method.
 * @returns {FormState}
 */
export function emptyForm() {
  const values = Object.fromEntries(FIELDS.map((f) => [f.path, ""]));
  values["spec.method"] = "ANY";
  return { values, env: [] };
}

/** The form's text for a stored manifest (what the API's GET answers). */
export function manifestToForm(manifest) {
  const form = emptyForm();
  for (const f of FIELDS) {
    const v = getPath(manifest, f.path);
    if (v === undefined || v === null) continue;
    form.values[f.path] = f.kind === "duration" && typeof v === "number"
      ? durationText(v)
      : String(v);
  }
  const env = manifest?.target?.env;
  if (Array.isArray(env)) {
    // Secret/ConfigMap references are not form rows; formToManifest keeps them from `base`.
    form.env = env.filter((e) => e?.valueFrom === undefined)
      .map((e) => ({ name: String(e?.name ?? ""), value: String(e?.value ?? "") }));
  } else if (env && typeof env === "object") {
    form.env = Object.entries(env).map(([name, value]) => ({ name, value: String(value) }));
  }
  return form;
}

/**
 * The manifest for the form's text. `base` (the stored manifest when editing) keeps fields
 * the form does not show, such as `scaling.stableWindow`. Returns `{manifest, envRows}`,
 * where `envRows[i]` is the form row of `target.env[i]` (blank rows are not sent).
 */
export function formToManifest(form, base) {
  const manifest = base ? structuredClone(base) : {};
  delete manifest.status;
  manifest.apiVersion = API_VERSION;
  manifest.kind = "Function";
  for (const key of ["metadata", "spec", "target"]) {
    if (!isObj(manifest[key])) manifest[key] = {};
  }
  for (const f of FIELDS) {
    const text = String(form.values[f.path] ?? "").trim();
    if (text === "") deletePath(manifest, f.path);
    else setPath(manifest, f.path, typed(f.kind, text));
  }
  const envRows = [];
  const env = [];
  form.env.forEach((row, i) => {
    if (row.name.trim() === "" && row.value === "") return;
    envRows.push(i);
    env.push({ name: row.name.trim(), value: row.value });
  });
  // References come after the rows, so target.env[i] is still form row envRows[i].
  const rowNames = new Set(env.map((e) => e.name));
  const refs = Array.isArray(base?.target?.env)
    ? base.target.env.filter((e) => e?.valueFrom !== undefined && !rowNames.has(e.name))
    : [];
  env.push(...refs);
  if (env.length > 0) manifest.target.env = env;
  else delete manifest.target.env;
  return { manifest, envRows };
}

function typed(kind, text) {
  switch (kind) {
    case "int":
    case "number":
      return /^-?\d+(\.\d+)?$/.test(text) ? Number(text) : text;
    case "duration":
      return /^\d+$/.test(text) ? Number(text) : text;
    case "method":
      return text.toUpperCase();
    default:
      return text;
  }
}

/**
 * Where each validation error goes: under a field, under an env row (the form row, not
 * the index sent), or in `other` when no form control shows that field.
 * @param {FieldError[]} errors
 * @param {number[]} envRows
 * @returns {PlacedErrors}
 */
export function placeErrors(errors, envRows) {
  const known = new Set(FIELDS.map((f) => f.path));
  /** @type {PlacedErrors} */
  const out = { fields: {}, env: {}, other: [] };
  for (const e of errors) {
    if (known.has(e.path)) {
      (out.fields[e.path] ??= []).push(e.message);
      continue;
    }
    const m = /^target\.env\[(\d+)\]\.(name|value)$/.exec(e.path);
    const row = m ? envRows[Number(m[1])] : undefined;
    if (row !== undefined) {
      const slot = (out.env[row] ??= {});
      (slot[m[2]] ??= []).push(e.message);
      continue;
    }
    out.other.push(e);
  }
  return out;
}

/** The label a person knows a field path by ("Name" for metadata.name), or the path. */
export function labelOf(path) {
  return FIELDS.find((f) => f.path === path)?.label ?? path;
}

function isObj(v) {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function getPath(obj, path) {
  let cur = obj;
  for (const key of path.split(".")) {
    if (!isObj(cur)) return undefined;
    cur = cur[key];
  }
  return cur;
}

function setPath(obj, path, value) {
  const keys = path.split(".");
  let cur = obj;
  for (const key of keys.slice(0, -1)) {
    if (!isObj(cur[key])) cur[key] = {};
    cur = cur[key];
  }
  cur[keys[keys.length - 1]] = value;
}

/** Deletes the field, then any object it leaves empty (an empty `scaling: {}` is noise). */
function deletePath(obj, path) {
  const keys = path.split(".");
  const chain = [obj];
  for (const key of keys.slice(0, -1)) {
    const next = chain[chain.length - 1][key];
    if (!isObj(next)) return;
    chain.push(next);
  }
  delete chain[chain.length - 1][keys[keys.length - 1]];
  for (let i = chain.length - 1; i >= 2; i--) {
    if (Object.keys(chain[i]).length > 0) break;
    delete chain[i - 1][keys[i - 1]];
  }
}
