/**
 * Handles one consumed message: finds the actions it fires, invokes each of their
 * functions (retrying failures with backoff), and produces every answer. It resolves only
 * when all of that is acknowledged, so the caller may then commit the offset: a message is
 * never committed before its work is done (at least once).
 *
 * Failure rules: a status >= 500 or a request that could not be made is retried
 * `retries` times; a 4xx is the function's final answer. A function that cannot be found
 * is answered with 404 at once. Final failures go to the dead-letter topic when set.
 */

import type { FunctionDef } from "../../common/function.ts";
import type { Logger } from "../../common/log.ts";
import type { EventLog } from "../events.ts";
import type { KafkaAction } from "./config.ts";
import { actionMatches } from "./match.ts";
import {
  type ConsumedMessage,
  deadLetterRecord,
  hopsOf,
  invocationRequest,
  KAFKA_HEADERS,
  MAX_HOPS,
  type OutgoingRecord,
  requestIdOf,
  responseRecord,
  text,
  viewOf,
} from "./message.ts";
import type { KafkaMetrics } from "./metrics.ts";

/** One action bound to where its answers go. */
export interface Route {
  action: KafkaAction;
  /** Identifies the action in the `x-f2s-action` header: "topic/name". */
  id: string;
  responseTopic: string;
  deadLetterTopic?: string;
}

export interface RetryPolicy {
  retries: number;
  retryBackoff: number;
  retryBackoffMax: number;
}

export interface DeliveryDeps {
  resolve(ref: string): FunctionDef | undefined;
  invoke(fn: FunctionDef, req: Request, requestId: string): Promise<Response>;
  /** Resolves once the broker acknowledged the records; throws when it did not. */
  produce(records: OutgoingRecord[]): Promise<void>;
  /** Waits `ms`, or rejects when `signal` aborts. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
  /** Aborts on shutdown: waits end, and an unfinished message stays uncommitted. */
  signal: AbortSignal;
  policy: RetryPolicy;
  metrics: KafkaMetrics;
  events: EventLog;
  log: Logger;
}

/** What one function answered to one message, after retries. */
export interface Outcome {
  route: Route;
  ref: string;
  status: number;
  attempts: number;
}

/** Milliseconds before retry number `attempt` (0-based): doubling, capped. */
export function backoffFor(policy: RetryPolicy, attempt: number): number {
  return Math.min(policy.retryBackoffMax, policy.retryBackoff * 2 ** attempt);
}

/**
 * The routes a message fires. An action never fires on a record it produced itself, and a
 * chain of responses firing further actions stops after MAX_HOPS (a loop between actions).
 */
export function firedRoutes(message: ConsumedMessage, routes: Route[]): Route[] {
  if (hopsOf(message) >= MAX_HOPS) return [];
  const view = viewOf(message);
  const producedBy = view.headers.get(KAFKA_HEADERS.action) ?? [];
  return routes.filter((r) => !producedBy.includes(r.id) && actionMatches(r.action, view));
}

export async function deliver(
  message: ConsumedMessage,
  routes: Route[],
  deps: DeliveryDeps,
): Promise<Outcome[]> {
  const fired = firedRoutes(message, routes);
  if (fired.length === 0) {
    if (hopsOf(message) >= MAX_HOPS) {
      deps.log.warn("response loop stopped", { topic: message.topic, offset: message.offset });
      deps.events.record("kafka.loop", `a chain of ${MAX_HOPS} responses was stopped`, {
        data: { topic: message.topic, partition: message.partition, offset: message.offset },
      });
    }
    return [];
  }
  const requestId = requestIdOf(message);
  const work = fired.flatMap((route) =>
    route.action.functions.map((ref) => deliverOne(message, route, ref, requestId, deps))
  );
  // allSettled, then rethrow: every sibling must have finished before the caller decides
  // anything, so a shutdown never leaves an invocation running behind a commit.
  const settled = await Promise.allSettled(work);
  const failed = settled.find((s) => s.status === "rejected");
  if (failed) throw (failed as PromiseRejectedResult).reason;
  return settled.map((s) => (s as PromiseFulfilledResult<Outcome>).value);
}

async function deliverOne(
  message: ConsumedMessage,
  route: Route,
  ref: string,
  requestId: string,
  deps: DeliveryDeps,
): Promise<Outcome> {
  const fn = deps.resolve(ref);
  const log = deps.log.with({ function: fn?.name ?? ref, requestId, action: route.action.name });
  let status: number;
  let body: Uint8Array;
  let contentType: string | null = "application/json";
  let attempts = 0;
  let error: string | undefined;
  const name = fn?.name ?? ref;

  if (!fn) {
    status = 404;
    error = `function "${ref}" is not deployed`;
    body = errorBody(error, { function: ref, topic: message.topic });
    deps.metrics.errors.inc({ kind: "not_found" });
    deps.events.record("kafka.error", error, {
      function: ref,
      data: { topic: message.topic, partition: message.partition, offset: message.offset },
    });
  } else {
    for (;;) {
      attempts++;
      const answer = await attempt(fn, message, requestId, route.action.contentType, deps);
      status = answer.status;
      body = answer.body;
      contentType = answer.contentType;
      if (status < 500) break;
      error = answer.error ?? `function answered ${status}`;
      if (attempts > deps.policy.retries) break;
      const wait = backoffFor(deps.policy, attempts - 1);
      deps.metrics.invocations.inc({ function: name, outcome: "retried" });
      log.warn("invocation failed; retrying", { status, attempt: attempts, waitMs: wait, error });
      await deps.sleep(wait, deps.signal);
    }
    const outcome = status < 400 ? "ok" : status < 500 ? "rejected" : "failed";
    deps.metrics.invocations.inc({ function: name, outcome });
    if (outcome === "failed") {
      log.error("invocation failed for good", { status, attempts, error });
      deps.events.record("kafka.error", `invocation failed after ${attempts} attempts`, {
        function: name,
        data: { status, error, topic: message.topic, offset: message.offset },
      });
    }
  }

  const records: OutgoingRecord[] = [responseRecord({
    topic: route.responseTopic,
    key: route.action.response.key,
    message,
    action: route.id,
    functionName: name,
    status,
    body,
    contentType,
    requestId,
  })];
  const finalFailure = status >= 500 || !fn;
  if (finalFailure && route.deadLetterTopic) {
    records.push(deadLetterRecord({
      topic: route.deadLetterTopic,
      message,
      action: route.id,
      functionName: name,
      status,
      error: error ?? `status ${status}`,
      requestId,
    }));
  }
  await produceUntilAcknowledged(records, deps, log);
  records.forEach((r, i) =>
    deps.metrics.produced.inc({ topic: r.topic, kind: i === 0 ? "response" : "dead_letter" })
  );
  log.debug("message delivered", {
    status,
    attempts,
    topic: message.topic,
    partition: message.partition,
    offset: message.offset,
    key: text(message.key),
  });
  return { route, ref, status, attempts };
}

interface Answer {
  status: number;
  body: Uint8Array;
  contentType: string | null;
  error?: string;
}

/** One invocation; a throw or an unreadable body counts as a 502 (never reached/answered). */
async function attempt(
  fn: FunctionDef,
  message: ConsumedMessage,
  requestId: string,
  contentType: string,
  deps: DeliveryDeps,
): Promise<Answer> {
  try {
    const req = invocationRequest(fn, message, requestId, contentType);
    const res = await deps.invoke(fn, req, requestId);
    const body = new Uint8Array(await res.arrayBuffer());
    return {
      status: res.status,
      body,
      contentType: res.headers.get("content-type"),
      error: res.status >= 500 ? errorText(body, res.status) : undefined,
    };
  } catch (e) {
    deps.metrics.errors.inc({ kind: "invoke" });
    const error = `invocation failed: ${(e as Error).message}`;
    return {
      status: 502,
      body: errorBody(error, { function: fn.name }),
      contentType: "application/json",
      error,
    };
  }
}

/**
 * The answer is already computed, so a produce failure (broker away) is retried here
 * instead of invoking again; only a shutdown gives up, leaving the message uncommitted.
 */
async function produceUntilAcknowledged(
  records: OutgoingRecord[],
  deps: DeliveryDeps,
  log: Logger,
): Promise<void> {
  for (let n = 0;; n++) {
    try {
      await deps.produce(records);
      return;
    } catch (e) {
      deps.metrics.errors.inc({ kind: "produce" });
      if (deps.signal.aborted) throw e;
      const wait = backoffFor(deps.policy, Math.min(n, 10));
      log.warn("producing the response failed; retrying", { error: e, waitMs: wait });
      await deps.sleep(wait, deps.signal);
    }
  }
}

function errorBody(error: string, details: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ error, details }));
}

/** The `error` of an F2S JSON error body, or the start of whatever the function sent. */
function errorText(body: Uint8Array, status: number): string {
  const s = new TextDecoder().decode(body.subarray(0, 2000));
  try {
    const parsed = JSON.parse(s);
    if (parsed && typeof parsed.error === "string") return parsed.error;
  } catch {
    // Not JSON: use the text itself.
  }
  return s.trim().slice(0, 200) || `status ${status}`;
}
