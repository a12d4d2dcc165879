/**
 * The fizzlet's HTTP server: answers /f2s/health, /f2s/ready and /f2s/metrics itself and
 * hands every other request to the current mode (reverse proxy or start.sh), within the
 * in-flight limit and its bounded queue, under one deadline per request.
 *
 * It runs on common/http1_server.ts, the control plane's server, not Deno.serve: requests
 * arrive as plain data (method, target, header pairs, body as framed), so proxy mode
 * forwards exactly what was received (Deno.serve hands a GET body over as null while its
 * Content-Length stays, which desynchronised the app's connections), one header policy
 * covers both hops, and the fizzlet's own paths come from the target, never from Host.
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

import { ConfigError } from "../common/config_util.ts";
import { type Counted, type CountLimiter, createCountLimiter } from "../common/limiter.ts";
import { createLogger, type Logger } from "../common/log.ts";
import {
  errorAnswer,
  FIZZLET_PATHS,
  headerGetter,
  headerValue,
  jsonResponse,
  REQUEST_ID_HEADER,
  requestIdFrom,
} from "../common/protocol.ts";
import { type Deadline, deadlines } from "../common/deadlines.ts";
import { serveHttp1, type ServerRequest, type ServerResponse } from "../common/http1_server.ts";
import { fromResponse } from "../common/web_bridge.ts";
import { type AppProcess, startApp } from "./app_process.ts";
import { createCommandRunner } from "./command.ts";
import { createStdinRunner, Cut, streamDone } from "./command_stdin.ts";
import { NOT_DELIVERED_HEADER } from "../common/delivery.ts";
import { createMetrics, type FizzletMetrics } from "./metrics.ts";
import { effectiveMaxInflight, type FizzletOptions } from "./options.ts";
import { acceptsConnections } from "./probe.ts";
import { createProxy, originForm } from "./proxy.ts";
import {
  CLIENT_GONE,
  type Receiver,
  type RequestContext,
  type ScriptRequest,
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

async function fileExists(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/** Marks the fizzlet's own refusals: the function never saw the request (common/delivery.ts). */
const NOT_DELIVERED: [string, string] = [NOT_DELIVERED_HEADER, "1"];

/**
 * A mode's work for one request, once it holds a slot. `done`, when given, is the end of an
 * answer that streams on after the handler returned: the slot is held until then.
 */
type Run = (ctx: RequestContext) => Promise<ServerResponse & { done?: Promise<void> }>;

/**
 * What a mode does before it may take a slot: an early answer, or the work to run once it
 * holds one and what to free afterwards.
 */
type Prepare = (
  ctx: RequestContext,
) => Promise<ServerResponse | { run: Run; release(): void }>;

/**
 * Command mode runs on Request/Response (fizzlet/command.ts): the script sees a Request, and
 * its body is read whole (under --body-timeout) before the request takes a slot, so slow
 * senders cannot hold the slots.
 */
function commandPrepare(req: ServerRequest, receive: Receiver): Prepare {
  return async (ctx) => {
    // A Request cannot carry a GET or HEAD body: refuse it rather than drop it unseen.
    if ((req.method === "GET" || req.method === "HEAD") && req.body !== null) {
      return errorAnswer(400, `a ${req.method} request with a body cannot run in command mode`);
    }
    // The URL's path and query come from the request target alone, never from Host.
    const url = new URL(originForm(req.target), "http://fizzlet").href;
    const sreq: ScriptRequest = {
      method: req.method,
      url,
      headers: headerGetter(req.headers),
      body: req.body,
    };
    const got = await receive(sreq, ctx);
    if (got instanceof Response) return await fromResponse(got);
    return {
      run: async (ctx) => {
        const res = await got.handle(sreq, ctx);
        if (!(res instanceof Response)) return res;
        const done = streamDone(res);
        try {
          return { ...await fromResponse(res), done };
        } catch (e) {
          // A streamed answer that failed before its headers went out can still say so.
          if (!done) throw e;
          await done;
          return errorAnswer(500, "start.sh failed", {
            error: (e as Error).message,
            stderr: e instanceof Cut ? e.stderr : undefined,
          });
        }
      },
      release: got.release,
    };
  };
}

export async function startFizzlet(
  options: FizzletOptions,
  log: Logger = createLogger("fizzlet"),
): Promise<Fizzlet> {
  const script = `${options.dir}/start.sh`;
  const hasScript = await fileExists(script);
  if (options.mode === "command" && !hasScript) {
    // The options cannot work together with what is on disk.
    throw new ConfigError("the fizzlet's options", [{
      path: "--mode",
      message: `command needs ${script}, which does not exist`,
    }]);
  }

  const metrics = createMetrics();
  let mode: Mode;
  if (options.mode === "proxy") mode = "proxy";
  else if (options.mode === "command") mode = "command";
  else if (!options.appCommand && await acceptsConnections(options.appPort, 250)) mode = "proxy";
  else mode = hasScript && !options.appCommand ? "command" : "pending";
  metrics.setMode(mode);

  const proxy = createProxy(options.appPort);
  const commands = !hasScript
    ? undefined
    : options.input === "stdin"
    ? createStdinRunner(options.dir, {
      bodyTimeout: options.bodyTimeout,
      maxDuration: options.maxDuration || options.timeout,
      start: options.start,
    })
    : createCommandRunner(options.dir, {
      bodyTimeout: options.bodyTimeout,
      start: options.start,
      log,
    });
  const limiters: Record<"proxy" | "command", CountLimiter | undefined> = {
    proxy: undefined,
    command: undefined,
  };
  for (const m of ["proxy", "command"] as const) {
    const max = effectiveMaxInflight(options.maxInflight, m);
    if (Number.isFinite(max)) limiters[m] = createCountLimiter(max, options.queue);
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

  const serveFunction = async (
    req: ServerRequest,
    work: { run: Run } | { prepare: Prepare },
    limiter: CountLimiter | undefined,
  ): Promise<ServerResponse> => {
    const requestId = requestIdFrom(headerGetter(req.headers));
    const controller = new AbortController();
    let timer: Deadline | undefined;
    // After the answer starts, a vanished client is noticed by the server writing it.
    const unwatch = req.watchClient(() => controller.abort(CLIENT_GONE));
    active.add(controller);
    const ctx: RequestContext = {
      requestId,
      remoteAddress: req.remoteAddress,
      signal: controller.signal,
      timeout: options.timeout,
      log,
    };
    const idHeader: [string, string][] = [[REQUEST_ID_HEADER, requestId]];
    let slot: Counted | undefined;
    let entered = false;
    let release: (() => void) | undefined;
    let done: Promise<void> | undefined;
    try {
      let run: Run;
      if ("prepare" in work) {
        // The body is in before the slot is taken; the timeout counts from then.
        const got = await work.prepare(ctx);
        if (!("run" in got)) {
          if (!got.headers.some(([name]) => name === REQUEST_ID_HEADER)) {
            got.headers.push(...idHeader);
          }
          return got;
        }
        ({ run, release } = got);
      } else run = work.run;
      // The shared deadlines, not a setTimeout per request (see common/deadlines.ts).
      timer = deadlines.after(options.timeout, () => controller.abort(TIMEOUT));
      if (limiter && !(slot = limiter.tryAcquire())) {
        const waiting = limiter.acquire(controller.signal);
        if (waiting === "full") {
          log.warn("queue full; request refused", { requestId, queue: options.queue });
          return errorAnswer(429, "too many requests", {
            maxInflight: limiter.max,
            queue: options.queue,
          }, [["retry-after", "1"], ...idHeader]);
        }
        queued++;
        metrics.queued.inc();
        try {
          const got = await waiting;
          if (typeof got === "object" && "inflight" in got) slot = got;
        } finally {
          queued--;
          metrics.queued.dec();
        }
        if (!slot) {
          // The signal ended the wait: the request's timeout, or shutdown.
          const reason = controller.signal.reason;
          if (reason === TIMEOUT) {
            return errorAnswer(504, "request waited in the queue past its timeout", {
              timeoutMs: options.timeout,
            }, idHeader);
          }
          return errorAnswer(503, String(reason?.message ?? reason), undefined, [
            ["retry-after", "1"],
            NOT_DELIVERED,
          ]);
        }
      }
      entered = true;
      inflight++;
      metrics.inflight.inc();
      // The answer goes out as it is: the server reads only status, headers and body.
      const res = await run(ctx);
      done = res.done;
      if (headerValue(res.headers, REQUEST_ID_HEADER) === undefined) res.headers.push(idHeader[0]);
      return res;
    } catch (e) {
      log.error("request failed", { requestId, error: e });
      return errorAnswer(500, "fizzlet error", (e as Error).message, idHeader);
    } finally {
      timer?.cancel();
      const after = () => {
        release?.();
        active.delete(controller);
        if (entered) {
          inflight--;
          metrics.inflight.dec();
          if (slot) limiter?.release(slot);
        }
        unwatch();
      };
      // A streaming answer keeps its slot (and its abort on shutdown) until it has ended.
      if (done) done.finally(after);
      else after();
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

  const handler = async (req: ServerRequest): Promise<ServerResponse> => {
    // The fizzlet's own paths, like the function's, come from the target alone, as sent.
    const target = originForm(req.target);
    const q = target.indexOf("?");
    const path = q < 0 ? target : target.slice(0, q);
    if (path.startsWith("/f2s/")) {
      if (path === FIZZLET_PATHS.health) {
        return fromResponse(jsonResponse({ status: "ok", mode, draining, inflight, queued }));
      }
      if (path === FIZZLET_PATHS.ready) {
        const r = await readiness();
        return fromResponse(jsonResponse({ ...r, mode }, r.ready ? 200 : 503));
      }
      if (path === FIZZLET_PATHS.metrics) {
        const { body, contentType } = await metrics.render();
        return fromResponse(new Response(body, { headers: { "content-type": contentType } }));
      }
    }
    const started = performance.now();
    let res: ServerResponse;
    if (draining) {
      res = errorAnswer(503, "fizzlet is shutting down", undefined, [
        ["retry-after", "1"],
        NOT_DELIVERED,
      ]);
    } else if (mode === "proxy") {
      res = await serveFunction(req, { run: (ctx) => proxy.handle(req, ctx) }, limiters.proxy);
    } else if (mode === "command" && commands) {
      const prepare = commandPrepare(req, commands.receive);
      res = await serveFunction(req, { prepare }, limiters.command);
    } else {
      res = errorAnswer(503, "app not started yet", { appPort: options.appPort }, [
        ["retry-after", "1"],
        NOT_DELIVERED,
      ]);
    }
    metrics.observe(res.status, (performance.now() - started) / 1000);
    return res;
  };

  const serverOptions = {
    hostname: options.host,
    port: options.port,
    maxConnections: options.maxConnections || undefined,
    // Small bodies are read by the server before any mode sees them: same limit, same 408.
    bodyTimeout: options.bodyTimeout,
    log,
    onError: (e: unknown) => {
      log.error("unhandled error", { error: e });
      return errorAnswer(500, "fizzlet error", (e as Error)?.message);
    },
  };
  const servers = [serveHttp1(serverOptions, handler)];
  // The same answers on a Unix socket too (f2s dev's dispatcher connects through it).
  if (options.socket) {
    removeSocket(options.socket);
    servers.push(serveHttp1({ ...serverOptions, path: options.socket }, handler));
  }
  const server = {
    shutdown: () => Promise.all(servers.map((s) => s.shutdown())),
    finished: Promise.all(servers.map((s) => s.finished)),
  };
  const port = servers[0].addr.port;
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
      if (options.socket) removeSocket(options.socket);
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

/** Removes a Unix socket left at `path` (by an earlier run); anything else there stays. */
function removeSocket(path: string) {
  try {
    if (Deno.lstatSync(path).isSocket) Deno.removeSync(path);
  } catch {
    // Nothing there.
  }
}
