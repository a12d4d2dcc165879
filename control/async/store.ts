/**
 * The embedded durable queue of asynchronous calls: one SQLite file (node:sqlite, WAL,
 * synchronous=FULL, so a call is on disk before its 202 is sent and survives kill -9).
 * The same table is the call record GET /calls/{id} reads: state, attempts, timings and
 * the bounded result. Chosen over Deno KV (see docs/async.md for the figures): KV's queue
 * cannot bound concurrency per function or list a function's calls, and needs a flag.
 */

import { DatabaseSync, type SQLInputValue } from "node:sqlite";
import { dirname } from "node:path";

export type CallState = "queued" | "running" | "succeeded" | "failed" | "dead-lettered";
export type CallbackState = "pending" | "delivered" | "failed";

export interface NewCall {
  id: string;
  function: string;
  method: string;
  suffix: string;
  search: string;
  headers: [string, string][];
  body: Uint8Array | null;
  client: string;
  caller?: { name: string; group: string };
  callback?: string;
  source: string;
  createdAt: number;
}

export interface Call extends NewCall {
  state: CallState;
  attempts: number;
  nextAt: number;
  startedAt?: number;
  finishedAt?: number;
  status?: number;
  resultHeaders?: [string, string][];
  resultBody?: Uint8Array;
  resultTruncated?: boolean;
  error?: string;
  callbackState?: CallbackState;
  callbackAttempts: number;
  callbackNextAt?: number;
  callbackError?: string;
}

export interface Outcome {
  state: CallState;
  status: number;
  headers: [string, string][];
  body: Uint8Array;
  truncated: boolean;
  error?: string;
  finishedAt: number;
}

export interface CallStore {
  /**
   * Durable on return. False when a call with this id exists (schedule ticks). `attempts`
   * made elsewhere count against the retry limit (a call Kafka redelivered after a crash).
   */
  insert(call: NewCall, nextAt?: number, attempts?: number): boolean;
  get(id: string): Call | undefined;
  /** Newest first; only `caller`'s calls when given. */
  list(fn: string, limit: number, caller?: string): Call[];
  /** Functions that have calls due now. */
  dueFunctions(now: number): string[];
  /** Marks up to `limit` due calls of `fn` running (attempts + 1) and returns them. */
  claim(fn: string, now: number, limit: number): Call[];
  /** Earliest time a queued call or pending callback is due, if any. */
  nextDue(): number | undefined;
  retry(id: string, nextAt: number, status: number, error: string): void;
  finish(id: string, outcome: Outcome, callbackAt?: number): void;
  /** Callbacks due now (their calls are finished). */
  dueCallbacks(now: number, limit: number): Call[];
  callbackDone(
    id: string,
    state: CallbackState,
    attempts: number,
    nextAt?: number,
    error?: string,
  ): void;
  /** Puts calls left running by a crashed process back in the queue; returns how many. */
  recover(): number;
  /**
   * Forgets unfinished calls that Kafka will deliver again (their offsets are not
   * committed): all but schedule ticks, or only `ids` when given. Returns how many.
   */
  forgetUnfinished(ids?: string[]): number;
  /** Deletes finished calls (callback settled) older than `before`. */
  purge(before: number): number;
  /** Schedule bookkeeping: the last tick enqueued for a function. */
  lastTick(fn: string): number | undefined;
  /** Enqueues a tick's call and records the tick in one transaction (no double, no skip). */
  insertTick(call: NewCall, tick: number): boolean;
  /** Records a tick enqueued elsewhere (Kafka) as the last one fired. */
  recordTick(fn: string, tick: number): void;
  /** Records where a schedule starts, unless it has a last tick already. */
  startTicks(fn: string, tick: number): void;
  counts(fn?: string): Record<CallState, number>;
  close(): void;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS calls (
  id TEXT PRIMARY KEY, function TEXT NOT NULL, method TEXT NOT NULL, suffix TEXT NOT NULL,
  search TEXT NOT NULL, headers TEXT NOT NULL, body BLOB, client TEXT NOT NULL,
  caller TEXT, caller_group TEXT, callback TEXT, source TEXT NOT NULL,
  state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER, status INTEGER,
  result_headers TEXT, result_body BLOB, result_truncated INTEGER, error TEXT,
  callback_state TEXT, callback_attempts INTEGER NOT NULL DEFAULT 0, callback_next_at INTEGER,
  callback_error TEXT
);
CREATE INDEX IF NOT EXISTS calls_due ON calls(state, function, next_at);
CREATE INDEX IF NOT EXISTS calls_fn ON calls(function, created_at);
CREATE INDEX IF NOT EXISTS calls_cb ON calls(callback_state, callback_next_at);
CREATE TABLE IF NOT EXISTS schedule_ticks (function TEXT PRIMARY KEY, last_tick INTEGER NOT NULL);
`;

export function openCallStore(path: string): CallStore {
  if (path !== ":memory:") Deno.mkdirSync(dirname(path), { recursive: true });
  const db = new DatabaseSync(path);
  db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;");
  db.exec(SCHEMA);
  const q = (sql: string) => db.prepare(sql);
  const insertSql = q(`INSERT OR IGNORE INTO calls (id, function, method, suffix, search,
    headers, body, client, caller, caller_group, callback, source, state, next_at, created_at,
    attempts) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,'queued',?,?,?)`);
  const getSql = q("SELECT * FROM calls WHERE id = ?");
  const listSql = q("SELECT * FROM calls WHERE function = ? ORDER BY created_at DESC LIMIT ?");
  const listMineSql = q(
    "SELECT * FROM calls WHERE function = ? AND caller = ? ORDER BY created_at DESC LIMIT ?",
  );
  const dueFnSql = q(
    "SELECT DISTINCT function FROM calls WHERE state = 'queued' AND next_at <= ?",
  );
  const dueSql = q(`SELECT * FROM calls WHERE state = 'queued' AND function = ? AND next_at <= ?
    ORDER BY next_at, created_at LIMIT ?`);
  const runSql = q(
    "UPDATE calls SET state = 'running', attempts = attempts + 1, started_at = ? WHERE id = ?",
  );
  const nextSql = q("SELECT MIN(next_at) AS t FROM calls WHERE state = 'queued'");
  const nextCbSql = q(
    "SELECT MIN(callback_next_at) AS t FROM calls WHERE callback_state = 'pending'",
  );
  const retrySql = q(
    "UPDATE calls SET state = 'queued', next_at = ?, status = ?, error = ? WHERE id = ?",
  );
  const finishSql = q(`UPDATE calls SET state = ?, status = ?, result_headers = ?,
    result_body = ?, result_truncated = ?, error = ?, finished_at = ?, body = NULL,
    callback_state = ?, callback_next_at = ? WHERE id = ?`);
  const dueCbSql = q(`SELECT * FROM calls WHERE callback_state = 'pending'
    AND callback_next_at <= ? ORDER BY callback_next_at LIMIT ?`);
  const cbSql = q(`UPDATE calls SET callback_state = ?, callback_attempts = ?,
    callback_next_at = ?, callback_error = ? WHERE id = ?`);
  const recoverSql = q("UPDATE calls SET state = 'queued' WHERE state = 'running'");
  const forgetAllSql = q(
    "DELETE FROM calls WHERE state IN ('queued', 'running') AND source != 'schedule'",
  );
  const forgetSql = q("DELETE FROM calls WHERE id = ? AND state = 'queued'");
  const purgeSql = q(`DELETE FROM calls WHERE finished_at IS NOT NULL AND finished_at < ?
    AND (callback_state IS NULL OR callback_state != 'pending')`);
  const lastTickSql = q("SELECT last_tick FROM schedule_ticks WHERE function = ?");
  const setTickSql = q(`INSERT INTO schedule_ticks (function, last_tick) VALUES (?, ?)
    ON CONFLICT(function) DO UPDATE SET last_tick = MAX(last_tick, excluded.last_tick)`);
  const startTickSql = q(
    "INSERT OR IGNORE INTO schedule_ticks (function, last_tick) VALUES (?, ?)",
  );
  const countSql = q("SELECT state, COUNT(*) AS n FROM calls GROUP BY state");
  const countFnSql = q("SELECT state, COUNT(*) AS n FROM calls WHERE function = ? GROUP BY state");

  const insert = (c: NewCall, nextAt = c.createdAt, attempts = 0) =>
    Number(
      insertSql.run(
        c.id,
        c.function,
        c.method,
        c.suffix,
        c.search,
        JSON.stringify(c.headers),
        c.body,
        c.client,
        c.caller?.name ?? null,
        c.caller?.group ?? null,
        c.callback ?? null,
        c.source,
        nextAt,
        c.createdAt,
        attempts,
      ).changes,
    ) === 1;

  function tx<T>(work: () => T): T {
    db.exec("BEGIN IMMEDIATE");
    try {
      const out = work();
      db.exec("COMMIT");
      return out;
    } catch (e) {
      db.exec("ROLLBACK");
      throw e;
    }
  }

  return {
    insert,
    get: (id) => rowToCall(getSql.get(id)),
    list: (fn, limit, caller) =>
      (caller === undefined ? listSql.all(fn, limit) : listMineSql.all(fn, caller, limit))
        .map((r) => rowToCall(r)!),
    dueFunctions: (now) => dueFnSql.all(now).map((r) => String(r.function)),
    claim: (fn, now, limit) =>
      tx(() => {
        const rows = dueSql.all(fn, now, limit).map((r) => rowToCall(r)!);
        for (const c of rows) {
          runSql.run(now, c.id);
          c.state = "running";
          c.attempts++;
          c.startedAt = now;
        }
        return rows;
      }),
    nextDue() {
      const a = nextSql.get()?.t;
      const b = nextCbSql.get()?.t;
      const times = [a, b].filter((t) => t !== null && t !== undefined).map(Number);
      return times.length ? Math.min(...times) : undefined;
    },
    retry: (id, nextAt, status, error) => void retrySql.run(nextAt, status, error, id),
    finish(id, o, callbackAt) {
      finishSql.run(
        o.state,
        o.status,
        JSON.stringify(o.headers),
        o.body,
        o.truncated ? 1 : 0,
        o.error ?? null,
        o.finishedAt,
        callbackAt === undefined ? null : "pending",
        callbackAt ?? null,
        id,
      );
    },
    dueCallbacks: (now, limit) => dueCbSql.all(now, limit).map((r) => rowToCall(r)!),
    callbackDone: (id, state, attempts, nextAt, error) =>
      void cbSql.run(state, attempts, nextAt ?? null, error ?? null, id),
    recover: () => Number(recoverSql.run().changes),
    forgetUnfinished: (ids) =>
      ids === undefined
        ? Number(forgetAllSql.run().changes)
        : tx(() => ids.reduce((n, id) => n + Number(forgetSql.run(id).changes), 0)),
    purge: (before) => Number(purgeSql.run(before).changes),
    lastTick(fn) {
      const v = lastTickSql.get(fn)?.last_tick;
      return v === undefined || v === null ? undefined : Number(v);
    },
    insertTick: (call, tick) =>
      tx(() => {
        const added = insert(call);
        setTickSql.run(call.function, tick);
        return added;
      }),
    recordTick: (fn, tick) => void setTickSql.run(fn, tick),
    startTicks: (fn, tick) => void startTickSql.run(fn, tick),
    counts: (fn) => countsOf(fn === undefined ? countSql.all() : countFnSql.all(fn)),
    close: () => db.close(),
  };
}

/** Rows of (state, n) as a count for every state, zero for the missing ones. */
export function countsOf(rows: Record<string, unknown>[]): Record<CallState, number> {
  const out: Record<CallState, number> = {
    queued: 0,
    running: 0,
    succeeded: 0,
    failed: 0,
    "dead-lettered": 0,
  };
  for (const r of rows) out[r.state as CallState] = Number(r.n);
  return out;
}

function rowToCall(r: Record<string, SQLInputValue> | undefined): Call | undefined {
  if (!r) return undefined;
  const opt = <T>(
    v: unknown,
    f: (x: unknown) => T,
  ) => (v === null || v === undefined ? undefined : f(v));
  return {
    id: String(r.id),
    function: String(r.function),
    method: String(r.method),
    suffix: String(r.suffix),
    search: String(r.search),
    headers: JSON.parse(String(r.headers)),
    body: r.body instanceof Uint8Array ? r.body : null,
    client: String(r.client),
    caller: r.caller === null
      ? undefined
      : { name: String(r.caller), group: String(r.caller_group ?? "") },
    callback: opt(r.callback, String),
    source: String(r.source),
    createdAt: Number(r.created_at),
    state: String(r.state) as CallState,
    attempts: Number(r.attempts),
    nextAt: Number(r.next_at),
    startedAt: opt(r.started_at, Number),
    finishedAt: opt(r.finished_at, Number),
    status: opt(r.status, Number),
    resultHeaders: opt(r.result_headers, (v) => JSON.parse(String(v))),
    resultBody: r.result_body instanceof Uint8Array ? r.result_body : undefined,
    resultTruncated: r.result_truncated === 1 || r.result_truncated === 1n,
    error: opt(r.error, String),
    callbackState: opt(r.callback_state, (v) => String(v) as CallbackState),
    callbackAttempts: Number(r.callback_attempts),
    callbackNextAt: opt(r.callback_next_at, Number),
    callbackError: opt(r.callback_error, String),
  };
}
