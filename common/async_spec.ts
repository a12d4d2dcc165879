/**
 * The Function fields for asynchronous calls and schedules: `spec.async` (retries and
 * concurrency of queued calls) and `spec.schedule` (cron with an optional time zone, or
 * `@every 30s`). Kept apart from common/function.ts so that file only wires them in.
 */

import { Cron } from "croner";
import { parseDuration } from "./duration.ts";

export interface AsyncSpec {
  /** Retries after the first attempt on 5xx/429/timeouts before the call is dead-lettered. */
  maxRetries: number;
  /** Calls of this function running at once from the queue. */
  maxConcurrency: number;
}

export type Schedule =
  | { kind: "every"; everyMs: number; text: string }
  | { kind: "cron"; cron: string; timeZone?: string; text: string };

export const ASYNC_DEFAULTS: AsyncSpec = { maxRetries: 3, maxConcurrency: 10 };

type Err = (path: string, message: string) => void;

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

export function parseAsyncSpec(raw: unknown, err: Err): AsyncSpec {
  const out = { ...ASYNC_DEFAULTS };
  if (raw === undefined) return out;
  if (!isObj(raw)) {
    err("spec.async", "must be an object {maxRetries, maxConcurrency}");
    return out;
  }
  for (const [key, value] of Object.entries(raw)) {
    const path = `spec.async.${key}`;
    if (key !== "maxRetries" && key !== "maxConcurrency") {
      err(path, "is not a known field (maxRetries, maxConcurrency)");
      continue;
    }
    const [min, max] = key === "maxRetries" ? [0, 100] : [1, 10_000];
    if (!Number.isInteger(value) || (value as number) < min || (value as number) > max) {
      err(path, `must be an integer between ${min} and ${max}`);
    } else out[key] = value as number;
  }
  return out;
}

/**
 * `"*\/5 * * * *"`, `"@every 30s"`, or `{cron, timeZone}`. A cron expression has five
 * fields (minute precision) or six (seconds first); croner parses it.
 */
export function parseSchedule(raw: unknown, err: Err): Schedule | undefined {
  if (raw === undefined || raw === null) return undefined;
  let text: unknown = raw;
  let timeZone: unknown;
  if (isObj(raw)) {
    for (const key of Object.keys(raw)) {
      if (key !== "cron" && key !== "timeZone") {
        err(`spec.schedule.${key}`, "is not a known field (cron, timeZone)");
      }
    }
    text = raw.cron;
    timeZone = raw.timeZone;
  }
  if (typeof text !== "string" || text.trim() === "" || text.length > 200) {
    err("spec.schedule", 'must be a cron expression, "@every DURATION" or {cron, timeZone}');
    return undefined;
  }
  text = text.trim();
  const every = /^@every\s+(\S+)$/.exec(text as string);
  if (every) {
    if (timeZone !== undefined) err("spec.schedule.timeZone", "does not apply to @every");
    const ms = parseDuration(every[1]);
    if (typeof ms === "string") err("spec.schedule", ms);
    else if (ms < 1000 || ms % 1000 !== 0) {
      err("spec.schedule", "@every needs a whole number of seconds, at least 1s");
    } else return { kind: "every", everyMs: ms, text: text as string };
    return undefined;
  }
  if (timeZone !== undefined) {
    if (typeof timeZone !== "string" || !validTimeZone(timeZone)) {
      err("spec.schedule.timeZone", "must be an IANA time zone such as Europe/Zurich");
      return undefined;
    }
  }
  try {
    new Cron(text as string, { paused: true, timezone: timeZone as string | undefined });
  } catch (e) {
    err("spec.schedule", `not a valid cron expression: ${(e as Error).message}`);
    return undefined;
  }
  return {
    kind: "cron",
    cron: text as string,
    timeZone: timeZone as string | undefined,
    text: text as string,
  };
}

/** The schedule as a manifest writes it. */
export function scheduleManifest(s: Schedule): string | { cron: string; timeZone: string } {
  return s.kind === "cron" && s.timeZone ? { cron: s.cron, timeZone: s.timeZone } : s.text;
}

function validTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/**
 * The first tick strictly after `afterMs` (epoch ms). `@every` ticks sit on multiples of the
 * interval since the epoch, so every replica computes the same tick times; that is what
 * lets a new leader continue exactly where the old one stopped.
 */
export function nextTick(s: Schedule, afterMs: number): number | undefined {
  if (s.kind === "every") return (Math.floor(afterMs / s.everyMs) + 1) * s.everyMs;
  const cron = new Cron(s.cron, { paused: true, timezone: s.timeZone });
  return cron.nextRun(new Date(afterMs))?.getTime();
}
