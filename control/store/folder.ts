/**
 * A function store backed by a folder of YAML manifests (`f2s dev --functions DIR`).
 * Files are read recursively (several documents per file allowed), watched for changes,
 * and written back when the API creates, updates or deletes a function, so a restart
 * loses nothing and a GitOps user can keep the folder in a repository.
 */

import { createHash } from "node:crypto";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { stringify } from "yaml";
import {
  type FieldError,
  type FunctionDef,
  type FunctionManifest,
  KIND,
  parseFunction,
  toManifest,
} from "../../common/function.ts";
import {
  FILE_LIMITS,
  ManifestTextError,
  parseYamlDocumentsLimited,
} from "../../common/manifest_text.ts";
import { createLogger } from "../../common/log.ts";
import type { EventLog } from "../events.ts";
import { conflictOf, type FunctionStore, StoreError, type StoreListener } from "./store.ts";

interface Entry {
  fn: FunctionDef;
  manifest: FunctionManifest;
  file: string;
}

export interface FolderStoreOptions {
  dir: string;
  events: EventLog;
  /** Watch the folder for edits made outside F2S (default true). */
  watch?: boolean;
  /**
   * Folders besides `dir` a function may run from (`--images`); `target.local.dir` must
   * lie inside one of them or `dir`, after resolving symlinks and `..`.
   */
  imageDirs?: string[];
  /**
   * Problems that keep a function from running here (the runtime's check): writes through
   * the API with any are refused with 400, so a mistake shows at apply, not at first call.
   */
  check?: (fn: FunctionDef) => FieldError[];
}

export async function createFolderStore(options: FolderStoreOptions): Promise<FunctionStore> {
  const dir = resolve(options.dir);
  const log = createLogger("store.folder", { dir });
  await Deno.mkdir(dir, { recursive: true });
  const roots = await Promise.all([dir, ...(options.imageDirs ?? [])].map(realPathOf));
  const listeners = new Set<StoreListener>();
  const scanFolder = () => scan(dir, roots, options.events);
  let entries = await scanFolder();
  let watcher: Deno.FsWatcher | undefined;
  let closed = false;
  // Writes are serialized so a rescan never sees half of an API change.
  let queue: Promise<unknown> = Promise.resolve();
  const serialized = <T>(work: () => Promise<T>): Promise<T> => {
    const next = queue.then(work, work);
    queue = next.catch(() => {});
    return next;
  };

  function emitDiff(before: Map<string, Entry>, after: Map<string, Entry>) {
    for (const [name, entry] of after) {
      const old = before.get(name);
      if (!old || JSON.stringify(old.fn) !== JSON.stringify(entry.fn)) {
        for (const l of listeners) l({ type: "put", fn: entry.fn });
      }
    }
    for (const name of before.keys()) {
      if (!after.has(name)) { for (const l of listeners) l({ type: "delete", name }); }
    }
  }

  async function rescan() {
    const next = await scanFolder();
    const before = entries;
    entries = next;
    emitDiff(before, next);
  }

  if (options.watch ?? true) {
    watcher = Deno.watchFs(dir, { recursive: true });
    (async () => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        for await (const event of watcher!) {
          if (!event.paths.some((p) => /\.(ya?ml|json)$/i.test(p))) continue;
          clearTimeout(timer);
          timer = setTimeout(
            () => serialized(rescan).catch((e) => log.error("rescan failed", { error: e })),
            100,
          );
        }
      } catch (e) {
        if (!closed) log.error("watching the folder stopped", { error: e });
      }
    })();
  }

  async function validate(
    manifest: unknown,
    file: string,
  ): Promise<{ fn: FunctionDef; manifest: FunctionManifest }> {
    const parsed = parseFunction(manifest);
    if (!parsed.ok) throw new StoreError(400, "invalid function manifest", parsed.errors);
    const fn = resolveLocalDir(parsed.fn, dirname(file));
    const errors = await hostErrors(fn, roots);
    if (errors.length > 0) throw new StoreError(400, "invalid function manifest", errors);
    const problems = options.check?.(fn) ?? [];
    if (problems.length > 0) throw new StoreError(400, "function cannot run here", problems);
    return { fn, manifest: manifestOf(parsed.fn) };
  }

  return {
    list: () => [...entries.values()].map((e) => e.fn),
    get: (name) => entries.get(name)?.fn,
    manifest: (name) => entries.get(name)?.manifest,
    create: (manifest) =>
      serialized(async () => {
        const file = join(dir, `${nameOf(manifest) ?? "function"}.yaml`);
        const { fn, manifest: clean } = await validate(manifest, file);
        const conflict = conflictOf(fn, [...entries.values()].map((e) => e.fn));
        if (conflict) throw new StoreError(409, conflict);
        const target = await freeFileName(dir, fn.name);
        await writeDocuments(target, [clean]);
        const before = entries;
        entries = new Map(entries).set(fn.name, { fn, manifest: clean, file: target });
        emitDiff(before, entries);
        return fn;
      }),
    update: (name, manifest) =>
      serialized(async () => {
        const current = entries.get(name);
        if (!current) throw new StoreError(404, `function "${name}" not found`);
        const { fn, manifest: clean } = await validate(manifest, current.file);
        if (fn.name !== name) {
          throw new StoreError(400, "invalid function manifest", [
            {
              path: "metadata.name",
              message: `must be "${name}" (renaming is not supported; create a new function)`,
            },
          ]);
        }
        const conflict = conflictOf(fn, [...entries.values()].map((e) => e.fn), name);
        if (conflict) throw new StoreError(409, conflict);
        await rewriteFile(current.file, name, clean);
        const before = entries;
        entries = new Map(entries).set(name, { fn, manifest: clean, file: current.file });
        emitDiff(before, entries);
        return fn;
      }),
    delete: (name) =>
      serialized(async () => {
        const current = entries.get(name);
        if (!current) throw new StoreError(404, `function "${name}" not found`);
        await rewriteFile(current.file, name, undefined);
        const before = entries;
        entries = new Map(entries);
        entries.delete(name);
        emitDiff(before, entries);
      }),
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      closed = true;
      watcher?.close();
    },
  };
}

function nameOf(manifest: unknown): string | undefined {
  const name = (manifest as { metadata?: { name?: unknown } })?.metadata?.name;
  return typeof name === "string" && /^[a-z0-9-]+$/.test(name) ? name : undefined;
}

/**
 * The manifest as F2S writes it: the user's fields, normalized, without status, and without
 * a uid that is only the derived one coming back (the API shows it; a file need not say it).
 */
function manifestOf(fn: FunctionDef): FunctionManifest {
  const manifest = toManifest(fn);
  if (manifest.metadata.uid === devUid(fn.namespace, fn.name)) delete manifest.metadata.uid;
  return manifest;
}

/**
 * `target.local.dir` is relative to the manifest's folder. A function without
 * `metadata.uid` gets one, as Kubernetes gives every resource one: the original F2S's API
 * and Kafka actions address functions by uid. It is derived from namespace and name, so it
 * stays the same across restarts and edits.
 */
function resolveLocalDir(fn: FunctionDef, base: string): FunctionDef {
  const uid = fn.uid ?? devUid(fn.namespace, fn.name);
  if (!fn.local.dir || isAbsolute(fn.local.dir)) return { ...fn, uid };
  return { ...fn, uid, local: { ...fn.local, dir: resolve(base, fn.local.dir) } };
}

/** A UUID (version 5 layout) from a SHA-1 of namespace and name. */
export function devUid(namespace: string, name: string): string {
  const h = createHash("sha1").update(`f2s.opensight.ch/function/${namespace}/${name}`).digest();
  h[6] = (h[6] & 0x0f) | 0x50;
  h[8] = (h[8] & 0x3f) | 0x80;
  const hex = Array.from(h.subarray(0, 16), (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${
    hex.slice(20)
  }`;
}

async function* walk(dir: string): AsyncGenerator<string> {
  let list: Deno.DirEntry[];
  try {
    list = [];
    for await (const e of Deno.readDir(dir)) list.push(e);
  } catch {
    return;
  }
  list.sort((a, b) => a.name.localeCompare(b.name));
  for (const e of list) {
    if (e.name.startsWith(".") || e.name === "node_modules") continue;
    const path = join(dir, e.name);
    if (e.isDirectory) yield* walk(path);
    else if (e.isFile && /\.(ya?ml|json)$/i.test(e.name)) yield path;
  }
}

/**
 * What `f2s dev` cannot run, or must not: Secret/ConfigMap references (there is no
 * cluster to resolve them) and a folder outside the functions and image folders.
 */
async function hostErrors(fn: FunctionDef, roots: string[]): Promise<FieldError[]> {
  const errors: FieldError[] = [];
  for (const name of Object.keys(fn.envRefs)) {
    errors.push({
      path: `target.env.${name}.valueFrom`,
      message: "Secret and ConfigMap references work on Kubernetes only, not under f2s dev",
    });
  }
  if (fn.local.dir) {
    const real = await realPathOf(fn.local.dir);
    if (!roots.some((root) => real === root || real.startsWith(`${root}/`))) {
      errors.push({
        path: "target.local.dir",
        message: "must lie inside the functions folder or an --images folder",
      });
    }
  }
  // The runtime looks an image's folder up by its last path component.
  const base = fn.image.replace(/[:@].*$/, "").split("/").pop();
  if (!fn.local.dir && (base === "." || base === ".." || base === "")) {
    errors.push({ path: "target.containerImage", message: "must name an image" });
  }
  return errors;
}

/**
 * `path` with symlinks and `..` resolved; for a path that does not exist (yet), its
 * nearest existing ancestor resolved and the rest appended.
 */
async function realPathOf(path: string): Promise<string> {
  const abs = resolve(path);
  try {
    return await Deno.realPath(abs);
  } catch {
    const parent = dirname(abs);
    if (parent === abs) return abs;
    return join(await realPathOf(parent), abs.slice(parent.length + 1));
  }
}

/** Reads every Function manifest below `dir`; invalid ones are reported and skipped. */
async function scan(
  dir: string,
  roots: string[],
  events: EventLog,
): Promise<Map<string, Entry>> {
  const out = new Map<string, Entry>();
  const log = createLogger("store.folder");
  for await (const file of walk(dir)) {
    let text: string;
    try {
      text = await Deno.readTextFile(file);
    } catch {
      continue;
    }
    if (!/kind:\s*["']?Function\b|"kind"\s*:\s*"Function"/.test(text)) continue;
    const where = relative(dir, file);
    let docs;
    try {
      docs = parseYamlDocumentsLimited(text, FILE_LIMITS);
    } catch (e) {
      if (!(e instanceof ManifestTextError)) throw e;
      events.record("function.invalid", `${where}: refused: ${e.message}`);
      log.warn("manifest file over the limits", { file: where, error: e.message });
      continue;
    }
    for (const doc of docs) {
      if ("error" in doc) {
        events.record("function.invalid", `${where}: not valid YAML: ${doc.error}`);
        log.warn("invalid YAML", { file: where, error: doc.error });
        continue;
      }
      // deno-lint-ignore no-explicit-any
      const raw = doc.value as any;
      if (!raw || raw.kind !== KIND) continue;
      const parsed = parseFunction(raw);
      if (!parsed.ok) {
        const message = `${where}: ${
          parsed.errors.map((e) => `${e.path}: ${e.message}`).join("; ")
        }`;
        events.record("function.invalid", message, { function: raw?.metadata?.name });
        log.warn("invalid function manifest", { file: where, errors: parsed.errors });
        continue;
      }
      const refused = await hostErrors(resolveLocalDir(parsed.fn, dirname(file)), roots);
      if (refused.length > 0) {
        const message = `${where}: ${refused.map((e) => `${e.path}: ${e.message}`).join("; ")}`;
        events.record("function.invalid", message, { function: parsed.fn.name });
        log.warn("function refused", { file: where, errors: refused });
        continue;
      }
      const fn = resolveLocalDir(parsed.fn, dirname(file));
      const conflict = conflictOf(fn, [...out.values()].map((e) => e.fn));
      if (conflict) {
        events.record("function.invalid", `${where}: ${conflict}; ignored`, { function: fn.name });
        log.warn("conflicting function manifest ignored", { file: where, conflict });
        continue;
      }
      out.set(fn.name, { fn, manifest: manifestOf(parsed.fn), file });
    }
  }
  return out;
}

async function freeFileName(dir: string, name: string): Promise<string> {
  for (let i = 0;; i++) {
    const file = join(dir, i === 0 ? `${name}.yaml` : `${name}-${i}.yaml`);
    try {
      await Deno.lstat(file);
    } catch {
      return file;
    }
  }
}

async function writeDocuments(file: string, docs: unknown[]) {
  const text = docs.map((d) => stringify(d)).join("---\n");
  // Write then rename, so a watcher or a crash never sees half a file.
  const tmp = `${file}.tmp-${crypto.randomUUID()}`;
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, file);
}

/** Replaces (or, with undefined, removes) the document of function `name` in `file`. */
async function rewriteFile(file: string, name: string, replacement: FunctionManifest | undefined) {
  let docs: unknown[] = [];
  try {
    docs = parseYamlDocumentsLimited(await Deno.readTextFile(file), FILE_LIMITS)
      .map((d) => "value" in d ? d.value : undefined);
  } catch {
    docs = [];
  }
  const kept: unknown[] = [];
  let replaced = false;
  for (const doc of docs) {
    const isIt = (doc as FunctionManifest)?.kind === KIND &&
      (doc as FunctionManifest)?.metadata?.name === name;
    if (!isIt) {
      if (doc !== null && doc !== undefined) kept.push(doc);
    } else if (replacement) {
      kept.push(replacement);
      replaced = true;
    }
  }
  if (replacement && !replaced) kept.push(replacement);
  if (kept.length === 0) await Deno.remove(file).catch(() => {});
  else await writeDocuments(file, kept);
}
