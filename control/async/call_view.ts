/**
 * Every replica's view of every call when Kafka shares the work: the call records (no
 * request) published to the compacted call-state topic by whichever replica accepted or
 * ran a call, merged into a local SQLite table that GET /calls/{id} and
 * GET /functions/{name}/calls read. Records may arrive twice, late or out of order (a
 * replica's own changes are applied at once, then come back from the topic; a call
 * redelivered after a crash is run by another replica), so a record replaces the held
 * one only when it is further along: see `progress`.
 */

import { DatabaseSync } from "node:sqlite";
import { dirname } from "node:path";
import { type Call, type CallState, countsOf, type NewCall } from "./store.ts";

/** What GET /calls/{id} shows of a call: everything but the request. */
export type CallRecord = Omit<Call, "method" | "suffix" | "search" | "headers" | "body" | "client">;

/** The reads of the call API, answered by the local queue or by the shared view. */
export interface CallReader {
  get(id: string): CallRecord | undefined;
  /** Newest first; only `caller`'s calls when given. */
  list(fn: string, limit: number, caller?: string): CallRecord[];
  counts(fn?: string): Record<CallState, number>;
}

export interface CallView extends CallReader {
  /** Keeps the record unless the held one is as far along; true when it was kept. */
  apply(record: CallRecord): boolean;
  /** Deletes finished calls (callback settled) older than `before`, and unfinished ones older than `stale`. */
  purge(before: number, stale: number): number;
  close(): void;
}

/**
 * How far along a call is, as one number that only grows while a call proceeds: finished
 * beats unfinished; then attempts; within an attempt, waiting for a retry beats running,
 * which beats queued; once finished, callback attempts, then the callback settled.
 */
export function progress(c: CallRecord): number {
  const cap = (n: number, max: number) => Math.max(0, Math.min(n, max));
  if (c.finishedAt !== undefined) {
    const settled = c.callbackState === "delivered" || c.callbackState === "failed" ? 1 : 0;
    return 1e9 + cap(c.attempts, 9999) * 1e5 + cap(c.callbackAttempts, 999) * 10 + settled;
  }
  const phase = c.state === "running" ? 1 : c.attempts > 0 ? 2 : 0;
  return cap(c.attempts, 9999) * 1e5 + phase * 1e4;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS shared_calls (
  id TEXT PRIMARY KEY, function TEXT NOT NULL, caller TEXT, state TEXT NOT NULL,
  progress INTEGER NOT NULL, created_at INTEGER NOT NULL, finished_at INTEGER,
  callback_state TEXT, record TEXT NOT NULL, result_body BLOB
);
CREATE INDEX IF NOT EXISTS shared_calls_fn ON shared_calls(function, created_at);
`;

/** Opens the view in the queue's SQLite file (its own table and connection). */
export function openCallView(path: string): CallView {
  if (path !== ":memory:") Deno.mkdirSync(dirname(path), { recursive: true });
  const db = new DatabaseSync(path);
  // Rebuilt from the topic at every start: no need to wait for the disk.
  db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; PRAGMA busy_timeout=5000;");
  db.exec(SCHEMA);
  const q = (sql: string) => db.prepare(sql);
  const applySql = q(`INSERT INTO shared_calls (id, function, caller, state, progress,
    created_at, finished_at, callback_state, record, result_body) VALUES (?,?,?,?,?,?,?,?,?,?)
    ON CONFLICT(id) DO UPDATE SET state = excluded.state, progress = excluded.progress,
    finished_at = excluded.finished_at, callback_state = excluded.callback_state,
    record = excluded.record, result_body = excluded.result_body
    WHERE excluded.progress > shared_calls.progress`);
  const getSql = q("SELECT record, result_body FROM shared_calls WHERE id = ?");
  const listSql = q(`SELECT record, result_body FROM shared_calls WHERE function = ?
    ORDER BY created_at DESC LIMIT ?`);
  const listMineSql = q(`SELECT record, result_body FROM shared_calls WHERE function = ?
    AND caller = ? ORDER BY created_at DESC LIMIT ?`);
  const countSql = q("SELECT state, COUNT(*) AS n FROM shared_calls GROUP BY state");
  const countFnSql = q(
    "SELECT state, COUNT(*) AS n FROM shared_calls WHERE function = ? GROUP BY state",
  );
  const purgeSql = q(`DELETE FROM shared_calls WHERE (finished_at IS NOT NULL
    AND finished_at < ? AND (callback_state IS NULL OR callback_state != 'pending'))
    OR (finished_at IS NULL AND created_at < ?)`);

  const toRecord = (r: Record<string, unknown> | undefined): CallRecord | undefined => {
    if (!r) return undefined;
    const rec = JSON.parse(String(r.record)) as CallRecord;
    if (r.result_body instanceof Uint8Array) rec.resultBody = r.result_body;
    return rec;
  };

  return {
    apply(c) {
      const { resultBody, ...rest } = c;
      return Number(
        applySql.run(
          c.id,
          c.function,
          c.caller?.name ?? null,
          c.state,
          progress(c),
          c.createdAt,
          c.finishedAt ?? null,
          c.callbackState ?? null,
          JSON.stringify(rest),
          resultBody ?? null,
        ).changes,
      ) === 1;
    },
    get: (id) => toRecord(getSql.get(id)),
    list: (fn, limit, caller) =>
      (caller === undefined ? listSql.all(fn, limit) : listMineSql.all(fn, caller, limit))
        .map((r) => toRecord(r)!),
    counts: (fn) => countsOf(fn === undefined ? countSql.all() : countFnSql.all(fn)),
    purge: (before, stale) => Number(purgeSql.run(before, stale).changes),
    close: () => db.close(),
  };
}

/** The record of a call just accepted. */
export function queuedRecord(c: NewCall): CallRecord {
  const { method: _m, suffix: _s, search: _q, headers: _h, body: _b, client: _c, ...rest } = c;
  return { ...rest, state: "queued", attempts: 0, nextAt: c.createdAt, callbackAttempts: 0 };
}

/** A call's record without its request (what the call-state topic carries). */
export function recordOf(c: Call): CallRecord {
  const { method: _m, suffix: _s, search: _q, headers: _h, body: _b, client: _c, ...rest } = c;
  return rest;
}
