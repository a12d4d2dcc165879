/**
 * Small helpers for reading untyped configuration (parsed YAML) into typed values while
 * collecting every problem with its path, so start-up can report them all at once.
 */

import { parseDuration } from "./duration.ts";
import type { FieldError } from "./function.ts";

export type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Collects errors; every reader returns a usable value (the default) even when wrong. */
export class Reader {
  readonly errors: FieldError[] = [];

  error(path: string, message: string): void {
    this.errors.push({ path, message });
  }

  /** Reports keys of `obj` that are not in `known`. */
  known(obj: Obj, path: string, known: string[]): void {
    for (const key of Object.keys(obj)) {
      if (!known.includes(key)) {
        this.error(join(path, key), `is not a known key (expected one of: ${known.join(", ")})`);
      }
    }
  }

  obj(v: unknown, path: string): Obj {
    if (v === undefined || v === null) return {};
    if (!isObj(v)) {
      this.error(path, "must be a map");
      return {};
    }
    return v;
  }

  list(v: unknown, path: string): unknown[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) {
      this.error(path, "must be a list");
      return [];
    }
    return v;
  }

  str(v: unknown, path: string, dflt: string): string;
  str(v: unknown, path: string, dflt?: string): string | undefined;
  str(v: unknown, path: string, dflt?: string): string | undefined {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== "string") {
      this.error(path, `must be a string, got ${typeof v}`);
      return dflt;
    }
    return v;
  }

  bool(v: unknown, path: string, dflt: boolean): boolean {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== "boolean") {
      this.error(path, `must be true or false, got ${JSON.stringify(v)}`);
      return dflt;
    }
    return v;
  }

  num(v: unknown, path: string, dflt: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== "number" || !Number.isFinite(v)) {
      this.error(path, `must be a number, got ${JSON.stringify(v)}`);
      return dflt;
    }
    if (v < min || v > max) this.error(path, `must be between ${min} and ${max}`);
    return v;
  }

  duration(v: unknown, path: string, dflt: number): number {
    if (v === undefined || v === null) return dflt;
    const ms = parseDuration(v);
    if (typeof ms === "string") {
      this.error(path, ms);
      return dflt;
    }
    return ms;
  }
}

export function join(path: string, key: string | number): string {
  if (typeof key === "number") return `${path}[${key}]`;
  return path ? `${path}.${key}` : key;
}

/** Every problem found in one configuration source, for start-up to print at once. */
export class ConfigError extends Error {
  constructor(readonly source: string, readonly errors: FieldError[]) {
    super(
      `invalid configuration in ${source}:\n` +
        errors.map((e) => `  - ${e.path || "(root)"}: ${e.message}`).join("\n"),
    );
  }
}
