/**
 * The fizzlet's HTTP server: answers /f2s/health, /f2s/ready and /f2s/metrics itself and
 * hands every other request to the current mode (reverse proxy or start.sh), within the
 * in-flight limit and its bounded queue, under one deadline per request.
 *
 * How the mode is chosen (`--mode auto`):
 * - With `--app-command`, or without a start.sh, the function is an app: the mode is
 *   "pending" (not ready; requests get 503 with Retry-After) until the app port accepts
 *   connections, then "proxy" for good.
 * - With a start.sh and no app command, the mode is "command" at once, but the app port
 *   keeps being probed (every 150 ms for 30 s, then every second): an app that comes up
 *   later, even seconds after the fizzlet, switches it to "proxy". The switch is logged.
 * `--mode proxy` and `--mode command` fix the mode (command needs a start.sh).
 *
 * Shutdown (`stop()`): new requests get 503, the listener closes, in-flight requests get
 * the grace period to finish; what is left is then aborted (scripts killed), and the app
 * started by `--app-command` is stopped last.
 */

import { createLogger, type Logger } from "../common/log.ts";
import {
  errorResponse,
  FIZZLET_PATHS,
  jsonResponse,
  REQUEST_ID_HEADER,
  requestIdFrom,
} from "../common/protocol.ts";
import { type AppProcess, startApp } from "./app_process.ts";
import { createCommandRunner } from "./command.ts";
import { createLimiter, type Limiter } from "./limiter.ts";
import { createMetrics, type FizzletMetrics } from "./metrics.ts";
import { effectiveMaxInflight, type FizzletOptions } from "./options.ts";
import { acceptsConnections } from "./probe.ts";
import { createProxy } from "./proxy.ts";
import {
  CLIENT_GONE,
  type ModeHandler,
  type Received,
  type Receiver,
  type RequestContext,
  SHUTTING_DOWN,
  TIMEOUT,
} from "./request.ts";

export type Mode = "proxy" | "command" | "pending";

export interface Fizzlet {
  /** The port actually bound (differs from the option when that was 0). */
  readonly port: number;
  readonly mode: Mode;
  readonly metrics: FizzletMetrics;
  /** Graceful stop; resolves once everything the fizzlet started has ended. */
  stop(): Promise<void>;
}

/** Probe interval while an app may still come up, then the slower steady interval. */
const FAST_PROBE = 150;
const FAST_PROBE_FOR = 30_000;
const SLOW_PROBE = 1000;

/** The options cannot work together with what is on disk (e.g. command mode, no start.sh). */
export class ConfigError extends Error {}

async function fileExists(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

function pathOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start < 0) return "/";
  const q = url.indexOf("?", start);
  return q < 0 ? url.slice(start) : url.slice(start, q);
}

export async function startFizzlet(
  options: FizzletOptions,
  log: Logger = createLogger("fizzlet"),
): Promise<Fizzlet> {
  const script = `${options.dir}/start.sh`;
  const hasScript = await fileExists(script);
  if (options.mode === "command" && !hasScript) {
    throw new ConfigError(`--mode command needs ${script}, which does not exist`);
  }

  const metrics = createMetrics();
  let mode: Mode;
  if (options.mode === "proxy") mode = "proxy";
  else if (options.mode === "command") mode = "command";
  else if (!options.appCommand && await acceptsConnections(options.appPort, 250)) mode = "proxy";
  else mode = hasScript && !options.appCommand ? "command" : "pending";
  metrics.setMode(mode);

  const proxy = createProxy(options.appPort);
  const commands = hasScript
    ? createCommandRunner(options.dir, { bodyTimeout: options.bodyTimeout })
    : undefined;
  const limiters: Record<"proxy" | "command", Limiter | undefined> = {
    proxy: undefined,
    command: undefined,
  };
  for (const m of ["proxy", "command"] as const) {
    const max = effectiveMaxInflight(options.maxInflight, m);
    if (Number.isFinite(max)) limiters[m] = createLimiter(max, options.queue);
  }

  let draining = false;
  let inflight = 0;
  let queued = 0;
  const active = new Set<AbortController>();

  const setMode = (next: Mode, why: string) => {
    log.info("mode changed", { from: mode, mode: next, reason: why });
    mode = next;
    metrics.setMode(next);
  };

  /**
   * Serves one function request with `handler`, or, for a mode with a `receive` step (command),
   * with the handler that step returns once the whole body is in: the slot is taken only then,
   * and the request's timeout starts only then (the body has its own, --body-timeout).
   */
  const serveFunction = async (
    req: Request,
    handler: ModeHandler | undefined,
    limiter: Limiter | undefined,
    remoteAddress: string,
    receive?: Receiver,
  ): Promise<Response> => {
    const requestId = requestIdFrom(req.headers);
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const onClientGone = () => controller.abort(CLIENT_GONE);
    req.signal.addEventListener("abort", onClientGone);
    active.add(controller);
    const ctx: RequestContext = {
      requestId,
      remoteAddress,
      signal: controller.signal,
      timeout: options.timeout,
      log,
    };
    let entered = false;
    let received: Received | undefined;
    try {
      if (receive) {
        const got = await receive(req, ctx);
        if (got instanceof Response) {
          if (!got.headers.has(REQUEST_ID_HEADER)) got.headers.set(REQUEST_ID_HEADER, requestId);
          return got;
        }
        received = got;
        handler = got.handle;
      }
      timer = setTimeout(() => controller.abort(TIMEOUT), options.timeout);
      if (limiter && !limiter.tryEnter()) {
        const waiting = limiter.wait(controller.signal);
        if (!waiting) {
          log.warn("queue full; request refused", { requestId, queue: options.queue });
          return errorResponse(429, "too many requests", {
            maxInflight: limiter.max,
            queue: options.queue,
          }, { "retry-after": "1", [REQUEST_ID_HEADER]: requestId });
        }
        queued++;
        metrics.queued.inc();
        try {
          await waiting;
        } catch {
          const reason = controller.signal.reason;
          if (reason === TIMEOUT) {
            return errorResponse(504, "request waited in the queue past its timeout", {
              timeoutMs: options.timeout,
            }, { [REQUEST_ID_HEADER]: requestId });
          }
          return errorResponse(503, String(reason?.message ?? reason), undefined, {
            "retry-after": "1",
          });
        } finally {
          queued--;
          metrics.queued.dec();
        }
      }
      entered = true;
      inflight++;
      metrics.inflight.inc();
      const res = await handler!(req, ctx);
      if (!res.headers.has(REQUEST_ID_HEADER)) res.headers.set(REQUEST_ID_HEADER, requestId);
      return res;
    } catch (e) {
      log.error("request failed", { requestId, error: e });
      return errorResponse(500, "fizzlet error", (e as Error).message, {
        [REQUEST_ID_HEADER]: requestId,
      });
    } finally {
      clearTimeout(timer);
      received?.release();
      active.delete(controller);
      if (entered) {
        inflight--;
        metrics.inflight.dec();
        limiter?.leave();
      }
      // After the answer starts, a vanished client is noticed by the response stream itself.
      req.signal.removeEventListener("abort", onClientGone);
    }
  };

  const readiness = async (): Promise<{ ready: boolean; reason?: string }> => {
    if (draining) return { ready: false, reason: "shutting down" };
    if (mode === "pending") {
      return { ready: false, reason: `waiting for the app on port ${options.appPort}` };
    }
    if (mode === "proxy" && !(await acceptsConnections(options.appPort, 1000))) {
      return { ready: false, reason: `app not reachable on port ${options.appPort}` };
    }
    return { ready: true };
  };

  const handler = async (req: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => {
    const path = pathOf(req.url);
    if (path.startsWith("/f2s/")) {
      if (path === FIZZLET_PATHS.health) {
        return jsonResponse({ status: "ok", mode, draining, inflight, queued });
      }
      if (path === FIZZLET_PATHS.ready) {
        const r = await readiness();
        return jsonResponse({ ...r, mode }, r.ready ? 200 : 503);
      }
      if (path === FIZZLET_PATHS.metrics) {
        const { body, contentType } = await metrics.render();
        return new Response(body, { headers: { "content-type": contentType } });
      }
    }
    const started = performance.now();
    let res: Response;
    if (draining) {
      res = errorResponse(503, "fizzlet is shutting down", undefined, { "retry-after": "1" });
    } else if (mode === "proxy") {
      res = await serveFunction(req, proxy.handle, limiters.proxy, info.remoteAddr.hostname);
    } else if (mode === "command" && commands) {
      const addr = info.remoteAddr.hostname;
      res = await serveFunction(req, undefined, limiters.command, addr, commands.receive);
    } else {
      res = errorResponse(503, "app not started yet", { appPort: options.appPort }, {
        "retry-after": "1",
      });
    }
    metrics.observe(res.status, (performance.now() - started) / 1000);
    return res;
  };

  let resolveListening: (port: number) => void;
  const listening = new Promise<number>((r) => resolveListening = r);
  const server = Deno.serve({
    hostname: options.host,
    port: options.port,
    onListen: (addr) => resolveListening(addr.port),
    onError: (e) => {
      log.error("unhandled error", { error: e });
      return errorResponse(500, "fizzlet error", (e as Error)?.message);
    },
  }, handler);
  const port = await listening;
  // The first log line: a parent that passed --port 0 reads the port from it.
  log.info("listening", {
    port,
    host: options.host,
    mode,
    appPort: options.appPort,
    dir: options.dir,
    startScript: hasScript,
  });

  let app: AppProcess | undefined;
  if (options.appCommand) {
    app = startApp({
      command: options.appCommand,
      dir: options.dir,
      port: options.appPort,
      log,
    });
  }

  // Auto mode: watch for the app until it is up (see the top comment).
  let probeTimer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  if (options.mode === "auto" && mode !== "proxy") {
    const since = Date.now();
    const probe = async () => {
      probeTimer = undefined;
      if (stopped) return;
      if (await acceptsConnections(options.appPort, 250)) {
        if (!stopped) setMode("proxy", `app accepts connections on port ${options.appPort}`);
        return;
      }
      if (stopped) return;
      const wait = Date.now() - since < FAST_PROBE_FOR ? FAST_PROBE : SLOW_PROBE;
      probeTimer = setTimeout(probe, wait);
    };
    probeTimer = setTimeout(probe, FAST_PROBE);
  }

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      const began = Date.now();
      draining = true;
      stopped = true;
      clearTimeout(probeTimer);
      log.info("shutting down", { inflight, queued, graceMs: options.grace });
      let graceTimer: ReturnType<typeof setTimeout> | undefined;
      const drained = await Promise.race([
        server.shutdown().then(() => true),
        new Promise<boolean>((r) => graceTimer = setTimeout(() => r(false), options.grace)),
      ]);
      clearTimeout(graceTimer);
      if (!drained) {
        log.warn("grace period over; aborting requests still running", { inflight: active.size });
        for (const c of active) c.abort(SHUTTING_DOWN);
        // Streams still flowing after their handler returned get a last moment, no more.
        let lastTimer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          server.finished,
          new Promise((r) => lastTimer = setTimeout(r, 2000)),
        ]);
        clearTimeout(lastTimer);
      }
      proxy.close();
      metrics.close();
      await commands?.settled();
      if (app) await app.stop(Math.max(1000, options.grace - (Date.now() - began)));
      log.info("stopped", { tookMs: Date.now() - began });
    })();
    return stopping;
  };

  return {
    port,
    get mode() {
      return mode;
    },
    metrics,
    stop,
  };
}
