/**
 * Runs queued calls: takes due calls per function up to its `spec.async.maxConcurrency`,
 * sends each through the dispatcher (auth was checked at submit; scale from zero and
 * timeouts are the dispatcher's), retries 5xx/429/timeouts with doubling backoff and
 * jitter up to `spec.async.maxRetries`, then dead-letters. Finished calls with a callback
 * get their answer POSTed, retried the same way. All state lives in the CallStore, so a
 * restart continues where the last process stopped (calls it left running run again).
 */

import { type Clock, realClock, type TimerId } from "../../common/clock.ts";
import type { FunctionDef } from "../../common/function.ts";
import { ATTEMPT_HEADER, PLATFORM_HEADERS } from "../../common/forward_headers.ts";
import { ASYNC_DEFAULTS } from "../../common/async_spec.ts";
import type { ServerRequest } from "../../common/http1_server.ts";
import type { Logger } from "../../common/log.ts";
import type { PlainAnswer } from "../../common/protocol.ts";
import type { DispatchOptions } from "../../dispatcher/dispatcher.ts";
import type { EventLog } from "../events.ts";
import { postCallback } from "./callback.ts";
import type { AsyncConfig } from "./config.ts";
import type { Call, CallStore } from "./store.ts";

export interface WorkerDeps {
  store: CallStore;
  config: AsyncConfig;
  resolve(name: string): FunctionDef | undefined;
  dispatch(fn: FunctionDef, req: ServerRequest, options: DispatchOptions): Promise<PlainAnswer>;
  events: EventLog;
  log: Logger;
  clock?: Clock;
  /** A call reached a final state (the Kafka queue commits its offset then). */
  onFinished?: (id: string) => void;
}

export interface Worker {
  /** Looks for due work now (after a submit). */
  poke(): void;
  running(fn?: string): number;
  /** Stops taking calls; resolves when the running ones finished (or after `ms`). */
  stop(ms: number): Promise<void>;
}

/** The longest the worker sleeps without looking (calls due later, clock changes). */
const IDLE_POLL_MS = 1000;

export function startWorker(deps: WorkerDeps): Worker {
  const { store, config, log } = deps;
  const clock = deps.clock ?? realClock;
  const now = () => clock.now();
  const runningByFn = new Map<string, number>();
  const callbacksRunning = new Set<string>();
  const work = new Set<Promise<void>>();
  let stopped = false;
  let timer: TimerId;
  let scheduled = false;
  let lastPurge = 0;

  const recovered = store.recover();
  if (recovered > 0) {
    log.warn("calls left running by the last process go back to the queue", { recovered });
  }

  function poke() {
    if (stopped || scheduled) return;
    scheduled = true;
    queueMicrotask(pump);
  }

  function track(p: Promise<void>) {
    const q = p.catch((e) => log.error("async call handling failed", { error: e }));
    work.add(q);
    q.finally(() => work.delete(q));
  }

  function pump() {
    scheduled = false;
    if (stopped) return;
    clock.clearTimeout(timer);
    const t = now();
    try {
      for (const name of store.dueFunctions(t)) {
        const fn = deps.resolve(name);
        const limit = fn?.async.maxConcurrency ?? ASYNC_DEFAULTS.maxConcurrency;
        const free = limit - (runningByFn.get(name) ?? 0);
        if (free <= 0) continue;
        for (const call of store.claim(name, t, free)) {
          runningByFn.set(name, (runningByFn.get(name) ?? 0) + 1);
          track(
            run(call, fn).finally(() => {
              const n = (runningByFn.get(name) ?? 1) - 1;
              if (n === 0) runningByFn.delete(name);
              else runningByFn.set(name, n);
              poke();
            }),
          );
        }
      }
      for (const call of store.dueCallbacks(t, 100)) {
        if (callbacksRunning.has(call.id)) continue;
        callbacksRunning.add(call.id);
        track(
          callback(call).finally(() => {
            callbacksRunning.delete(call.id);
            poke();
          }),
        );
      }
      if (t - lastPurge > 60_000) {
        lastPurge = t;
        const purged = store.purge(t - config.retention);
        if (purged > 0) log.info("finished calls past retention deleted", { purged });
      }
    } catch (e) {
      log.error("async queue pass failed", { error: e });
    }
    const next = store.nextDue();
    const wait = next === undefined ? IDLE_POLL_MS : Math.min(IDLE_POLL_MS, next - now());
    timer = clock.setTimeout(poke, Math.max(10, wait));
  }

  function backoff(attempt: number): number {
    const base = Math.min(config.retryBackoffMax, config.retryBackoff * 2 ** (attempt - 1));
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }

  async function run(call: Call, fn: FunctionDef | undefined) {
    const callLog = log.with({ function: call.function, callId: call.id, attempt: call.attempts });
    if (!fn) {
      return finish(call, 404, [], `function "${call.function}" no longer exists`, "failed");
    }
    let answer: PlainAnswer;
    try {
      answer = await deps.dispatch(fn, requestOf(call), {
        requestId: call.id,
        suffix: call.suffix,
        search: call.search,
        clientAddress: call.client,
        source: "async",
        protocol: "http",
        caller: call.caller,
        platformHeaders: platformHeaders(call),
      });
    } catch (e) {
      answer = { status: 500, headers: [], body: new TextEncoder().encode(String(e)) };
    }
    const { bytes, truncated } = await readBounded(answer.body, config.maxResultBytes);
    const status = answer.status;
    const retryable = status >= 500 || status === 429 || status === 408;
    if (retryable && call.attempts <= fn.async.maxRetries) {
      const wait = Math.max(backoff(call.attempts), retryAfter(answer.headers, config));
      callLog.warn("async call failed; retrying", { status, waitMs: wait });
      store.retry(call.id, now() + wait, status, `attempt ${call.attempts} answered ${status}`);
      return;
    }
    const state = retryable ? "dead-lettered" : status < 400 ? "succeeded" : "failed";
    if (state === "dead-lettered") {
      deps.events.record(
        "async.dead_letter",
        `call ${call.id} failed ${call.attempts} times (last ${status}); dead-lettered`,
        { function: call.function, data: { callId: call.id, status, attempts: call.attempts } },
      );
    }
    finish(call, status, answer.headers, undefined, state, bytes, truncated);
  }

  function finish(
    call: Call,
    status: number,
    headers: [string, string][],
    error: string | undefined,
    state: "succeeded" | "failed" | "dead-lettered",
    body: Uint8Array = new TextEncoder().encode(error ?? ""),
    truncated = false,
  ) {
    const t = now();
    store.finish(call.id, {
      state,
      status,
      headers: headers.filter(([k]) => !HIDDEN_RESULT_HEADERS.has(k)),
      body,
      truncated,
      error: error ?? (state === "succeeded" ? undefined : `answered ${status}`),
      finishedAt: t,
    }, call.callback ? t : undefined);
    deps.onFinished?.(call.id);
  }

  async function callback(call: Call) {
    const attempts = call.callbackAttempts + 1;
    try {
      await postCallback(call, config.callbacks);
      store.callbackDone(call.id, "delivered", attempts);
    } catch (e) {
      const error = String((e as Error).message ?? e);
      if (attempts >= config.callbacks.maxAttempts) {
        log.warn("callback given up", { callId: call.id, attempts, error });
        deps.events.record("async.callback_failed", `callback of ${call.id} failed: ${error}`, {
          function: call.function,
          data: { callId: call.id, attempts },
        });
        store.callbackDone(call.id, "failed", attempts, undefined, error);
      } else {
        store.callbackDone(call.id, "pending", attempts, now() + backoff(attempts), error);
      }
    }
  }

  pump();
  return {
    poke,
    running: (fn) =>
      fn === undefined
        ? [...runningByFn.values()].reduce((a, b) => a + b, 0)
        : runningByFn.get(fn) ?? 0,
    async stop(ms) {
      stopped = true;
      clock.clearTimeout(timer);
      const waited = new AbortController();
      await Promise.race([Promise.allSettled([...work]), clock.sleep(ms, waited.signal)]);
      waited.abort();
    },
  };
}

/** Headers of an answer that describe the exchange, not the result. */
const HIDDEN_RESULT_HEADERS = new Set(["set-cookie", "connection", "transfer-encoding"]);

/** The stored request as the dispatcher takes it: body whole, no client to watch. */
function requestOf(call: Call): ServerRequest {
  return {
    method: call.method,
    target: call.suffix + call.search,
    headers: call.headers,
    body: call.body ? new Uint8Array(call.body) : null,
    remoteAddress: call.client,
    watchClient: () => () => {},
  };
}

/**
 * What F2S tells the function about this delivery: the attempt (1 on the first; a higher
 * one is a retry or a call the last process left running, which the app may have seen) and,
 * for a schedule's call, its tick. Only the scheduler stores platform headers in a call
 * (the async API drops a client's), so a stored one is the scheduler's.
 */
function platformHeaders(call: Call): [string, string][] {
  const out: [string, string][] = [[ATTEMPT_HEADER, String(call.attempts)]];
  if (call.source !== "schedule") return out;
  for (const pair of call.headers) if (PLATFORM_HEADERS.has(pair[0])) out.push(pair);
  return out;
}

/** Retry-After in seconds from a 429/503, capped by the backoff limit. */
function retryAfter(headers: [string, string][], config: AsyncConfig): number {
  const v = headers.find(([k]) => k === "retry-after")?.[1];
  const s = v && /^\d+$/.test(v) ? Number(v) * 1000 : 0;
  return Math.min(s, config.retryBackoffMax);
}

async function readBounded(
  body: PlainAnswer["body"],
  limit: number,
): Promise<{ bytes: Uint8Array; truncated: boolean }> {
  if (body === null) return { bytes: new Uint8Array(), truncated: false };
  if (body instanceof Uint8Array) {
    return { bytes: body.slice(0, limit), truncated: body.byteLength > limit };
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  let truncated = false;
  try {
    for await (const chunk of body) {
      // Read to the end even past the limit, so the instance's slot is released cleanly.
      if (size >= limit) {
        truncated = true;
        continue;
      }
      chunks.push(chunk.subarray(0, limit - size));
      if (chunk.byteLength > limit - size) truncated = true;
      size += Math.min(chunk.byteLength, limit - size);
    }
  } catch {
    truncated = true;
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return { bytes: out, truncated };
}
