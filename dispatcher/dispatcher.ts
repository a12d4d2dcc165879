/**
 * The dispatcher: takes an invocation for a function, finds a ready instance (least
 * outstanding requests, per-instance concurrency limit), holds the request while the
 * function scales up from zero, enforces scaling/http/request timeouts, sends a request
 * to another instance only when common/delivery.ts allows it (never delivered, or safe to
 * repeat), and keeps the metrics the autoscaler reads.
 *
 * It learns about instances from events (`instanceChanged`), never by polling, with one
 * exception: an instance whose connection just failed (refused, reset before an answer, or
 * its fizzlet reporting that the app was unreachable) is suspended from the routing table
 * at once, so held and new requests go to the others, and its /f2s/ready is asked (50 ms,
 * doubling to 1 s) until it answers 200 or the runtime reports on it.
 */

import { type Clock, realClock } from "../common/clock.ts";
import {
  createDeadlines,
  type Deadline,
  type Deadlines,
  deadlines as sharedDeadlines,
} from "../common/deadlines.ts";
import { NotDeliveredError } from "../common/delivery.ts";
import { createLimiter, type Limiter } from "../common/limiter.ts";
import { RequestBodyError } from "../common/http1.ts";
import type { FunctionDef } from "../common/function.ts";
import { createLogger, type Logger } from "../common/log.ts";
import type { ServerRequest } from "../common/http1_server.ts";
import { errorAnswer, type PlainAnswer, REQUEST_ID_HEADER } from "../common/protocol.ts";
import type { DispatchMetrics, EventRecorder, Instance, StartFailure, Timeouts } from "./needs.ts";
import { ClientGoneError, TimeoutError } from "../common/cut_short.ts";
import {
  createForwarder,
  type ForwardBody,
  type ForwardedResponse,
  type Forwarder,
  requestBody,
} from "./forward.ts";
import { createRoutingTable, type RoutingTable, type Slot } from "./routing.ts";

/** How long a request runs before the dispatcher starts watching for its client leaving. */
export const CLIENT_WATCH_DELAY_MS = 50;

export interface DispatchOptions {
  requestId: string;
  /** Path after the function's endpoint, e.g. "/items/1" ("" for none). */
  suffix: string;
  /** The query string including "?", or "". */
  search: string;
  clientAddress?: string;
  /** Where the request came from, for logs and events ("http", "kafka"). */
  source?: string;
  /** "http" or "https", for X-Forwarded-Proto. */
  protocol?: string;
  /**
   * The authenticated caller. When set, the caller's own credentials are not forwarded to
   * the function (it must not be able to collect them); it gets X-F2S-Caller and
   * X-F2S-Group instead.
   */
  caller?: { name: string; group: string };
  /**
   * Headers F2S sets itself (X-F2S-Schedule-Tick, X-F2S-Attempt on async calls). Any the
   * request carries are dropped first: a client cannot pose as the scheduler or a retry.
   */
  platformHeaders?: [string, string][];
}

export interface DispatcherDeps {
  timeouts: Timeouts;
  /** Asks for at least one instance of a function that has none ready. */
  wake(name: string): void;
  /** Concurrency signal for the autoscaler: +1 when a request arrives, -1 when it is done. */
  onLoad?(name: string, delta: 1 | -1): void;
  metrics: DispatchMetrics;
  events: EventRecorder;
  table?: RoutingTable;
  /** Durations and timeouts run on it (default: the real one). */
  clock?: Clock;
  /**
   * Timer for per-request timeouts: default the process's shared one on the real clock,
   * a new one on any other clock.
   */
  deadlines?: Deadlines;
  log?: Logger;
}

export interface Dispatcher {
  readonly table: RoutingTable;
  /** Invokes the function; the answer is plain data (common/web_bridge.ts makes a Response). */
  dispatch(fn: FunctionDef, req: ServerRequest, options: DispatchOptions): Promise<PlainAnswer>;
  /** Feed from the runtime's subscription: keeps the routing table current. */
  instanceChanged(instance: Instance): void;
  setFunction(fn: FunctionDef): void;
  /** Forgets a function; requests held for it fail with 404. */
  removeFunction(name: string): void;
  /** Requests in flight (including held ones) for one function or all. */
  inflight(name?: string): number;
  /** Resolves when no request is in flight (for shutdown), or after `timeoutMs`. */
  drain(timeoutMs: number): Promise<boolean>;
  /** Stops checking on suspended instances and closes pooled connections. */
  close(): void;
}

interface FunctionSeries {
  duration: { observe(value: number): void };
  byCode: Map<number, { inc(): void }>;
}

/** Why held requests of a function stop waiting before a slot or their time. */
type WaitEnd = "removed" | { failed: StartFailure };

/** One function's limiter over its instances' slots; `tried` excludes instances on a retry. */
interface FunctionLimit {
  limiter: Limiter<Slot, Set<string>, WaitEnd>;
  /** containerConcurrency of the definition the latest request came with (0: no limit). */
  perInstance: number;
}

export function createDispatcher(deps: DispatcherDeps): Dispatcher {
  const table = deps.table ?? createRoutingTable();
  const clock = deps.clock ?? realClock;
  const now = () => clock.monotonic();
  const deadlines = deps.deadlines ??
    (clock === realClock ? sharedDeadlines : createDeadlines(clock));
  const forwarder: Forwarder = createForwarder(deadlines);
  const log = deps.log ?? createLogger("dispatcher");
  const limits = new Map<string, FunctionLimit>();
  const inflightByFn = new Map<string, number>();
  const coldSince = new Map<string, number>();
  let inflightTotal = 0;
  const drainWaiters = new Set<() => void>();
  /** Ends the readiness checks of suspended instances when the dispatcher closes. */
  const lifetime = new AbortController();
  const rechecks = new Set<Deadline>();

  // Label lookups hash their labels on every call; the hot path keeps its series at hand.
  const seriesByFn = new Map<string, FunctionSeries>();
  function series(name: string): FunctionSeries {
    let m = seriesByFn.get(name);
    if (!m) {
      m = {
        duration: deps.metrics.duration.labels(name),
        byCode: new Map(),
      };
      seriesByFn.set(name, m);
    }
    return m;
  }

  // The in-flight gauge is read when scraped, not set twice per request.
  deps.metrics.onCollect(() => {
    for (const name of new Set([...seriesByFn.keys(), ...inflightByFn.keys()])) {
      deps.metrics.inflight.set({ function: name }, inflightByFn.get(name) ?? 0);
    }
  });

  function changeLoad(name: string, delta: 1 | -1) {
    const n = (inflightByFn.get(name) ?? 0) + delta;
    if (n === 0) inflightByFn.delete(name);
    else inflightByFn.set(name, n);
    inflightTotal += delta;
    deps.onLoad?.(name, delta);
    if (inflightTotal === 0) { for (const done of drainWaiters) done(); }
  }

  function limitOf(fn: FunctionDef): FunctionLimit {
    let entry = limits.get(fn.name);
    if (!entry) {
      const name = fn.name;
      const created: FunctionLimit = {
        perInstance: fn.scaling.containerConcurrency,
        limiter: createLimiter((tried) => table.pick(name, created.perInstance, tried), {
          deadlines,
        }),
      };
      limits.set(name, entry = created);
    } else entry.perInstance = fn.scaling.containerConcurrency;
    return entry;
  }

  function countReady(name: string) {
    deps.metrics.readyInstances.set({ function: name }, table.ready(name).length);
  }

  /** Takes an instance that just failed out of the table until it answers ready again. */
  function suspend(instance: Instance, reason: unknown) {
    if (!table.suspend(instance.function, instance.id)) return;
    countReady(instance.function);
    log.warn("instance failed; suspended until it answers ready", {
      function: instance.function,
      instance: instance.id,
      error: String(reason),
    });
    deps.events.record(
      "instance.suspended",
      `instance ${instance.id} failed a request; no new requests until it is ready again`,
      { function: instance.function, data: { instance: instance.id } },
    );
    recheck(instance, 50);
  }

  function recheck(instance: Instance, delayMs: number) {
    const still = () =>
      !lifetime.signal.aborted && table.isSuspended(instance.function, instance.id);
    const timer = deadlines.after(delayMs, async () => {
      rechecks.delete(timer);
      if (!still()) return;
      const probe = new AbortController();
      const stop = () => probe.abort();
      lifetime.signal.addEventListener("abort", stop);
      const limit = deadlines.after(1000, stop);
      const ready = await forwarder.ready(instance.url, probe.signal);
      limit.cancel();
      lifetime.signal.removeEventListener("abort", stop);
      if (!still()) return;
      if (!ready) return recheck(instance, Math.min(delayMs * 2, 1000));
      table.reinstate(instance.function, instance.id);
      countReady(instance.function);
      log.info("suspended instance is ready again", {
        function: instance.function,
        instance: instance.id,
      });
      limits.get(instance.function)?.limiter.serve();
    });
    rechecks.add(timer);
  }

  async function dispatch(
    fn: FunctionDef,
    req: ServerRequest,
    options: DispatchOptions,
  ): Promise<PlainAnswer> {
    const started = now();
    const timeouts = {
      requestTimeout: fn.timeouts.requestTimeout ?? deps.timeouts.requestTimeout,
      httpTimeout: fn.timeouts.httpTimeout ?? deps.timeouts.httpTimeout,
      scalingTimeout: fn.timeouts.scalingTimeout ?? deps.timeouts.scalingTimeout,
    };
    // Once the answer has started, the exchange may run until maxDuration (streaming
    // answers) instead of requestTimeout; unset, it is requestTimeout as before.
    const maxDuration = fn.timeouts.maxDuration ?? timeouts.requestTimeout;
    let answering = false;
    const requestLog = () => log.with({ function: fn.name, requestId: options.requestId });
    // One controller per request: the request timeout, the client going away and (while
    // waiting for headers) the http timeout all end the exchange through it.
    const exchange = new AbortController();
    const signal = exchange.signal;
    // The client going away is watched only once a request takes a while (or is held):
    // a quick answer costs less without the watch, and is just discarded if no one is left.
    let stopWatching: (() => void) | undefined;
    const onClientGone = () => exchange.abort(new ClientGoneError());
    const watchClient = () => {
      if (stopWatching || finished) return;
      stopWatching = req.watchClient(onClientGone);
    };
    // One deadline per request: first it starts watching the client, then it ends the
    // request at request_timeout.
    const onDeadline = () => {
      const limit = answering ? maxDuration : timeouts.requestTimeout;
      const left = limit - (now() - started);
      if (left <= 0) {
        return exchange.abort(
          new TimeoutError(answering ? "max_duration" : "request_timeout"),
        );
      }
      watchClient();
      requestTimer = deadlines.after(left, onDeadline);
    };
    let requestTimer = deadlines.after(
      Math.min(CLIENT_WATCH_DELAY_MS, timeouts.requestTimeout),
      onDeadline,
    );
    changeLoad(fn.name, 1);
    let finished = false;
    let slot: Slot | undefined;
    const finish = (status: number) => {
      if (finished) return;
      finished = true;
      requestTimer.cancel();
      stopWatching?.();
      if (slot) limiter.release(slot);
      changeLoad(fn.name, -1);
      const m = series(fn.name);
      let counter = m.byCode.get(status);
      if (!counter) {
        counter = deps.metrics.invocations.labels(fn.name, String(status));
        m.byCode.set(status, counter);
      }
      counter.inc();
      m.duration.observe((now() - started) / 1000);
    };
    const fail = (status: number, message: string, details?: unknown) => {
      finish(status);
      requestLog().warn(message, { status, details });
      return errorAnswer(status, message, details, [[REQUEST_ID_HEADER, options.requestId]]);
    };

    const { limiter } = limitOf(fn);
    let tried: Set<string> | undefined; // instances that refused the connection
    let body: ForwardBody = null;
    if (req.body !== null) {
      try {
        body = await requestBody(req);
      } catch (e) {
        return fail(400, "could not read the request body", String(e));
      }
    }
    while (true) {
      slot = limiter.tryAcquire(tried);
      if (!slot) {
        const ready = table.ready(fn.name);
        if (tried && ready.every((s) => tried!.has(s.instance.id))) {
          slot = undefined;
          return fail(502, `no instance of function "${fn.name}" could take the request`, {
            tried: tried.size,
          });
        }
        // Suspended instances are expected back shortly: waiting for them is no cold start.
        const noneReady = ready.length === 0;
        const cold = noneReady && table.suspended(fn.name) === 0;
        if (cold) {
          if (!coldSince.has(fn.name)) {
            coldSince.set(fn.name, now());
            deps.metrics.coldStarts.inc({ function: fn.name });
            deps.events.record(
              "function.cold_start",
              `request ${options.requestId} woke ${fn.name} from zero`,
              {
                function: fn.name,
              },
            );
          }
        }
        const remaining = timeouts.requestTimeout - (now() - started);
        const wait = noneReady ? Math.min(timeouts.scalingTimeout, remaining) : remaining;
        watchClient();
        // Held first, then woken: a start that fails at once must find this request waiting.
        const held = limiter.acquire(signal, wait);
        if (held === "full") throw new Error("unreachable: the dispatcher's lines are unbounded");
        deps.metrics.held.inc({ function: fn.name });
        if (cold) deps.wake(fn.name);
        const got = await held;
        deps.metrics.held.dec({ function: fn.name });
        if (got === "aborted") {
          return signal.reason instanceof ClientGoneError
            ? fail(499, "client closed the request")
            : fail(
              504,
              `request_timeout (${timeouts.requestTimeout} ms) passed while waiting for an instance`,
            );
        }
        if (got === "timeout") {
          return noneReady
            ? fail(
              503,
              `function "${fn.name}" has no ready instance after scaling_timeout (${timeouts.scalingTimeout} ms)`,
              { function: fn.name, scalingTimeout: timeouts.scalingTimeout },
            )
            : fail(
              504,
              `request_timeout (${timeouts.requestTimeout} ms) passed while all instances were busy`,
            );
        }
        if ("ended" in got) {
          const end = got.ended;
          if (end === "removed") return fail(404, `function "${fn.name}" was removed`);
          return fail(503, `function "${fn.name}" could not start: ${end.failed.message}`, {
            function: fn.name,
            reason: end.failed.reason,
          });
        }
        slot = got;
      }
      const target = joinPath(fn.targetPath, options.suffix) + options.search;
      let response: ForwardedResponse;
      try {
        response = await forwarder.forward(slot.instance.url, target, req, body, {
          requestId: options.requestId,
          exchange,
          httpTimeout: timeouts.httpTimeout,
          clientAddress: options.clientAddress,
          protocol: options.protocol,
          caller: options.caller,
          platformHeaders: options.platformHeaders,
        });
      } catch (e) {
        if (e instanceof TimeoutError) {
          const which = e.limit === "request_timeout"
            ? `request_timeout (${timeouts.requestTimeout} ms)`
            : `http_timeout (${timeouts.httpTimeout} ms)`;
          return fail(504, `function "${fn.name}" did not answer within ${which}`);
        }
        if (e instanceof ClientGoneError) return fail(499, "client closed the request");
        if (e instanceof RequestBodyError) {
          return fail(400, "the request body broke off before it was all sent", e.message);
        }
        // The instance (or its app) failed before answering: it leaves the table at once.
        suspend(slot.instance, e);
        if (!(e instanceof NotDeliveredError)) {
          return fail(502, `function "${fn.name}" failed before answering`, String(e));
        }
        if (body instanceof ReadableStream && e.written) {
          return fail(502, `function "${fn.name}" failed before answering`, {
            error: String(e),
            retry: "not possible: the streamed request body was already sent",
          });
        }
        requestLog().info("request not delivered; trying another instance", {
          instance: slot.instance.id,
          error: e.message,
        });
        (tried ??= new Set()).add(slot.instance.id);
        limiter.release(slot);
        slot = undefined;
        continue;
      }
      if (maxDuration !== timeouts.requestTimeout) {
        answering = true;
        requestTimer.cancel();
        onDeadline();
        if (exchange.signal.aborted) {
          if (response.body instanceof ReadableStream) await response.body.cancel().catch(() => {});
          return fail(504, `function "${fn.name}" did not answer within max_duration`);
        }
      }
      try {
        return passThrough(response, exchange.signal, finish);
      } catch (e) {
        if (e instanceof TimeoutError) {
          return fail(
            504,
            `function "${fn.name}" did not finish its answer within request_timeout`,
          );
        }
        if (e instanceof ClientGoneError) return fail(499, "client closed the request");
        return fail(502, `function "${fn.name}" broke off its answer`, String(e));
      }
    }
  }

  return {
    table,
    dispatch,
    instanceChanged(instance) {
      const gained = table.updateInstance(instance);
      if (instance.state === "gone") forwarder.forget(instance.url);
      else if (instance.socket) forwarder.viaSocket(instance.url, instance.socket);
      if (instance.failure && table.ready(instance.function).length === 0) {
        // Nothing can serve the held requests: they get the reason now, not at scaling_timeout.
        limits.get(instance.function)?.limiter.endWaits({ failed: instance.failure });
      }
      if (gained) {
        const since = coldSince.get(instance.function);
        if (since !== undefined) {
          coldSince.delete(instance.function);
          deps.metrics.coldStartDuration.observe(
            { function: instance.function },
            (now() - since) / 1000,
          );
        }
        limits.get(instance.function)?.limiter.serve();
      }
      countReady(instance.function);
    },
    setFunction(fn) {
      table.setFunction(fn);
    },
    removeFunction(name) {
      table.removeFunction(name);
      seriesByFn.delete(name);
      deps.metrics.inflight.remove(name);
      limits.get(name)?.limiter.endWaits("removed");
      limits.delete(name);
      coldSince.delete(name);
    },
    inflight: (name) => (name === undefined ? inflightTotal : inflightByFn.get(name) ?? 0),
    close() {
      lifetime.abort();
      for (const timer of rechecks) timer.cancel();
      rechecks.clear();
      forwarder.close();
    },
    drain(timeoutMs) {
      if (inflightTotal === 0) return Promise.resolve(true);
      return new Promise((resolve) => {
        const done = () => {
          clock.clearTimeout(timer);
          drainWaiters.delete(done);
          resolve(true);
        };
        const timer = clock.setTimeout(() => {
          drainWaiters.delete(done);
          resolve(false);
        }, timeoutMs);
        drainWaiters.add(done);
      });
    },
  };
}

/** Joins the function's target path and the request's path suffix. */
export function joinPath(targetPath: string, suffix: string): string {
  let path = targetPath;
  if (suffix) path = path.endsWith("/") ? path + suffix.replace(/^\/+/, "") : path + suffix;
  return path.startsWith("/") ? path : "/" + path;
}

/**
 * The instance's response as the caller's, calling `finish` once the body has been sent
 * (or abandoned), so in-flight counts cover the whole exchange. Small bodies arrive whole
 * and finish at once; streamed ones end early when the exchange is aborted
 * (request_timeout, client gone).
 */
function passThrough(
  response: ForwardedResponse,
  signal: AbortSignal,
  finish: (status: number) => void,
): PlainAnswer {
  const { status, headers } = response;
  if (!(response.body instanceof ReadableStream)) {
    finish(status);
    return response;
  }
  const reader = response.body.getReader();
  const onAbort = () => reader.cancel(signal.reason).catch(() => {});
  signal.addEventListener("abort", onAbort, { once: true });
  const done = () => {
    signal.removeEventListener("abort", onAbort);
    finish(status);
  };
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done: end, value } = await reader.read();
        if (end) {
          controller.close();
          done();
        } else controller.enqueue(value);
      } catch (e) {
        done();
        controller.error(e);
      }
    },
    cancel(reason) {
      done();
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
  return { status, headers, body };
}
