/**
 * The function store: where Function definitions live (a folder of manifests under
 * `f2s dev`, Function resources on Kubernetes). The API writes through it and everything
 * downstream (desired state, routing) follows its change events.
 */

import type { FieldError, FunctionDef, FunctionManifest } from "../../common/function.ts";

export type StoreEvent =
  | { type: "put"; fn: FunctionDef }
  | { type: "delete"; name: string };

export type StoreListener = (event: StoreEvent) => void;

/** A rejected write, carrying the HTTP status the API answers with. */
export class StoreError extends Error {
  constructor(
    readonly status: 400 | 404 | 409 | 500,
    message: string,
    readonly details?: FieldError[] | unknown,
  ) {
    super(message);
  }
}

export interface FunctionStore {
  list(): FunctionDef[];
  get(name: string): FunctionDef | undefined;
  /** The manifest as stored (what `GET /functions/{name}` shows). */
  manifest(name: string): FunctionManifest | undefined;
  create(manifest: unknown): Promise<FunctionDef>;
  update(name: string, manifest: unknown): Promise<FunctionDef>;
  delete(name: string): Promise<void>;
  /** Events for every change, whoever made it (API, file edit, kubectl). */
  subscribe(listener: StoreListener): () => void;
  close(): void;
}

/** Checks that `fn` can join `existing` without clashing names or endpoints. */
export function conflictOf(
  fn: FunctionDef,
  existing: Iterable<FunctionDef>,
  replacing?: string,
): string | undefined {
  for (const other of existing) {
    if (other.name === replacing) continue;
    if (other.name === fn.name) return `a function named "${fn.name}" already exists`;
    if (other.endpoint === fn.endpoint) {
      return `endpoint "${fn.endpoint}" is already used by function "${other.name}"`;
    }
  }
  return undefined;
}
