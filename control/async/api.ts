/**
 * The HTTP surface of asynchronous calls: `POST /async/invoke/{endpoint}` (202 once the
 * call is on disk), `GET /calls/{id}` and `GET /functions/{name}/calls`. Submitting needs
 * the same `functions:invoke` privilege as a synchronous call; a call's record is shown to
 * the caller who queued it or to a holder of `settings:view` (others get 404, so ids of
 * other callers' calls cannot be probed).
 */

import { type Clock, realClock } from "../../common/clock.ts";
import { nextTick } from "../../common/async_spec.ts";
import type { FunctionDef } from "../../common/function.ts";
import type { ServerRequest } from "../../common/http1_server.ts";
import {
  errorAnswer,
  errorResponse,
  headerGetter,
  headerValue,
  HOP_BY_HOP_HEADERS,
  jsonResponse,
  type PlainAnswer,
  REQUEST_ID_HEADER,
} from "../../common/protocol.ts";
import { PLATFORM_HEADERS } from "../../common/forward_headers.ts";
import { readUpTo } from "../../common/read_limited.ts";
import { fromResponse } from "../../common/web_bridge.ts";
import type { AuthGate, Caller } from "../auth/gate.ts";
import { invokeRefusal } from "../auth/invoke_refusal.ts";
import { callbackRefusal } from "./callback.ts";
import type { AsyncConfig } from "./config.ts";
import type { CallStore, NewCall } from "./store.ts";
import type { CallReader, CallRecord } from "./call_view.ts";

export const CALLBACK_HEADER = "x-callback-url";
export const CALL_ID_HEADER = "x-call-id";

export interface AsyncApiDeps {
  config: AsyncConfig;
  store: CallStore;
  /** Where GET /calls reads from: the shared view under Kafka, else `store`. */
  calls?: CallReader;
  /**
   * True while the shared view is still reading the calls accepted before this replica
   * started: an id it does not know may be one of those, so GET /calls/{id} answers 503
   * (try again) rather than 404.
   */
  loading?: () => boolean;
  /** Makes the call durable: the local queue, or the Kafka topic shared by replicas. */
  enqueue(call: NewCall): void | Promise<void>;
  auth: AuthGate;
  match(path: string): { fn: FunctionDef; suffix: string } | undefined;
  function(name: string): FunctionDef | undefined;
  /** A new call is queued: look for work now. */
  queued(): void;
  clock?: Clock;
}

export interface AsyncApi {
  submit(req: ServerRequest, url: { pathname: string; search: string }): Promise<PlainAnswer>;
  /** GET /calls/{id}, GET /functions/{name}/calls; undefined for other paths. */
  route(req: Request, url: URL): Promise<Response | undefined>;
}

/** Request headers never stored with a call: framing, and our own instructions. */
const DROPPED = new Set<string>([
  ...HOP_BY_HOP_HEADERS,
  "content-length",
  "host",
  "expect",
  CALLBACK_HEADER,
  // Only F2S sets them (common/forward_headers.ts); a client's would pose as the scheduler.
  ...PLATFORM_HEADERS,
]);
/** Credentials are dropped too when F2S authenticates (the dispatcher would drop them). */
const CREDENTIALS = new Set(["authorization", "cookie"]);

export function createAsyncApi(deps: AsyncApiDeps): AsyncApi {
  const clock = deps.clock ?? realClock;
  const now = () => clock.now();

  async function submit(
    req: ServerRequest,
    url: { pathname: string; search: string },
  ): Promise<PlainAnswer> {
    const caller = await deps.auth.authenticate({
      headers: headerGetter(req.headers),
      peer: req.remoteAddress,
    });
    if (caller instanceof Response) return fromResponse(caller);
    const endpoint = url.pathname.slice("/async/invoke".length);
    const match = deps.match(endpoint);
    if (!match) return errorAnswer(404, `no function at endpoint "${endpoint}"`);
    const { fn, suffix } = match;
    const method = req.method;
    const refusal = invokeRefusal(deps.auth, caller, fn, method);
    if (refusal) return refusal;
    const callback = headerValue(req.headers, CALLBACK_HEADER);
    if (callback !== undefined) {
      const refusal = await callbackRefusal(callback, deps.config.callbacks);
      if (refusal) return errorAnswer(400, refusal, { header: "X-Callback-Url" });
    }
    let body: Uint8Array | null = null;
    if (req.body instanceof Uint8Array) body = req.body;
    else if (req.body) {
      try {
        body = await readUpTo(req.body, deps.config.maxBodyBytes);
      } catch (e) {
        return errorAnswer(400, "could not read the request body", String(e));
      }
      if (body === null) {
        return errorAnswer(
          413,
          `an async call's body may be at most ${deps.config.maxBodyBytes} bytes`,
        );
      }
    }
    if (body && body.byteLength > deps.config.maxBodyBytes) {
      return errorAnswer(
        413,
        `an async call's body may be at most ${deps.config.maxBodyBytes} bytes`,
      );
    }
    const authenticated = deps.auth.type !== "none";
    const headers = req.headers.filter(([k]) =>
      !DROPPED.has(k) && !(authenticated && CREDENTIALS.has(k))
    );
    const id = crypto.randomUUID();
    try {
      await deps.enqueue({
        id,
        function: fn.name,
        method,
        suffix,
        search: url.search,
        headers: [...headers.filter(([k]) => k !== REQUEST_ID_HEADER), [REQUEST_ID_HEADER, id]],
        body,
        client: req.remoteAddress,
        caller: authenticated ? { name: caller.name, group: caller.group } : undefined,
        callback,
        source: "http",
        createdAt: now(),
      });
    } catch (e) {
      return errorAnswer(503, "the call could not be queued", String(e));
    }
    deps.queued();
    return {
      status: 202,
      headers: [
        ["content-type", "application/json"],
        [CALL_ID_HEADER, id],
        ["location", `/calls/${id}`],
        [REQUEST_ID_HEADER, id],
      ],
      body: new TextEncoder().encode(JSON.stringify({ id, function: fn.name, state: "queued" })),
    };
  }

  const calls: CallReader = deps.calls ?? deps.store;

  function visible(caller: Caller, call: CallRecord): boolean {
    if (deps.auth.can(caller, "settings:view")) return true;
    if (deps.auth.type === "none") return true;
    return call.caller?.name === caller.name;
  }

  async function route(req: Request, url: URL): Promise<Response | undefined> {
    const one = /^\/calls\/([0-9a-zA-Z._:-]{1,200})$/.exec(url.pathname);
    const list = /^\/functions\/([^/]+)\/calls\/?$/.exec(url.pathname);
    if (!one && !list) return undefined;
    if (req.method !== "GET") {
      return errorResponse(405, "method not allowed; use GET", undefined, { allow: "GET" });
    }
    const caller = await deps.auth.authenticate(req);
    if (caller instanceof Response) return caller;
    if (one) {
      const call = calls.get(one[1]);
      if (!call && deps.loading?.()) {
        return errorResponse(
          503,
          "this replica is still reading the shared call state; try again",
          undefined,
          { "retry-after": "1" },
        );
      }
      if (!call || !visible(caller, call)) return errorResponse(404, `no call "${one[1]}"`);
      return jsonResponse(callView(call, true));
    }
    let name: string;
    try {
      name = decodeURIComponent(list![1]);
    } catch {
      return errorResponse(400, "the function name in the path is not valid percent-encoding");
    }
    const all = deps.auth.can(caller, "settings:view");
    if (!all && !deps.auth.can(caller, "functions:invoke", name)) {
      return errorResponse(403, `missing privilege functions:invoke for function "${name}"`);
    }
    const limit = Number(url.searchParams.get("limit") ?? 50);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
      return errorResponse(400, "query parameter limit must be an integer between 1 and 1000");
    }
    const mine = all || deps.auth.type === "none" ? undefined : caller.name;
    const fn = deps.function(name);
    return jsonResponse({
      function: name,
      counts: all ? calls.counts(name) : undefined,
      schedule: fn?.schedule
        ? {
          expression: fn.schedule.text,
          timeZone: timeZoneOf(fn),
          nextRuns: nextRuns(fn, 5, now()),
        }
        : undefined,
      calls: calls.list(name, limit, mine).map((c) => callView(c, false)),
    });
  }

  return { submit, route };
}

function timeZoneOf(fn: FunctionDef): string | undefined {
  return fn.schedule?.kind === "cron" ? fn.schedule.timeZone : undefined;
}

/** The next `n` run times (ISO) of a function's schedule. */
export function nextRuns(fn: FunctionDef, n: number, from: number): string[] {
  const out: string[] = [];
  let t = from;
  while (fn.schedule && out.length < n) {
    const next = nextTick(fn.schedule, t);
    if (next === undefined) break;
    out.push(new Date(next).toISOString());
    t = next;
  }
  return out;
}

const iso = (t: number | undefined) => (t === undefined ? undefined : new Date(t).toISOString());

/** A call as the API shows it; the result (bounded when stored) only in the single view. */
export function callView(c: CallRecord, withResult: boolean) {
  const finished = c.finishedAt !== undefined;
  return {
    id: c.id,
    function: c.function,
    state: c.state,
    attempts: c.attempts,
    source: c.source,
    caller: c.caller?.name,
    createdAt: iso(c.createdAt),
    startedAt: iso(c.startedAt),
    finishedAt: iso(c.finishedAt),
    nextAttemptAt: c.state === "queued" && c.attempts > 0 ? iso(c.nextAt) : undefined,
    durationMs: finished && c.startedAt !== undefined ? c.finishedAt! - c.startedAt : undefined,
    status: c.status,
    error: c.error,
    callback: c.callback
      ? {
        url: c.callback,
        state: c.callbackState,
        attempts: c.callbackAttempts,
        error: c.callbackError,
      }
      : undefined,
    result: withResult && finished ? resultView(c) : undefined,
  };
}

function resultView(c: CallRecord) {
  const bytes = c.resultBody ?? new Uint8Array();
  let body: string;
  let encoding: "utf-8" | "base64" = "utf-8";
  try {
    body = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    encoding = "base64";
    let binary = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    }
    body = btoa(binary);
  }
  return {
    status: c.status,
    headers: Object.fromEntries(c.resultHeaders ?? []),
    body,
    bodyEncoding: encoding,
    truncated: c.resultTruncated || undefined,
  };
}
