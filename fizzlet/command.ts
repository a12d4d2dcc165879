/**
 * Command-line mode: each request runs `start.sh <input file>` in the function folder.
 *
 * The request body goes to a file in a private temporary folder made for this request
 * (`input.json` for JSON, which must parse, else `input.txt` for text/*, `input.bin` for
 * anything else), never onto the command line. The body is read whole before the request
 * takes a slot, within the body timeout (else 408), so slow senders cannot hold the few slots.
 * The script runs in its own session; a timeout, a vanished client or shutdown kills it
 * together with everything it started, also what left its group or session (sweep.ts).
 * Its stdout is the answer (JSON content type when it parses as JSON); a non-zero exit is a
 * 500 with the exit code and the tail of stderr. stderr is logged line by line, never
 * returned whole. The folder is removed afterwards, whatever happened.
 */

import { dirname, join } from "node:path";
import { ClientGoneError, ShuttingDownError, TimeoutError } from "../common/cut_short.ts";
import { errorResponse, REQUEST_ID_HEADER } from "../common/protocol.ts";
import { readUpTo } from "../common/read_limited.ts";
import { readBodyWithin } from "./body_deadline.ts";
import { createTail, forEachLine } from "./lines.ts";
import type { Received, Receiver, RequestContext } from "./request.ts";
import { type Marker, sweep, ticksNow } from "./sweep.ts";

/** Characters of stderr returned with a failure. */
export const STDERR_TAIL = 2000;
/** stdout beyond this is refused rather than buffered (the answer is built in memory). */
export const MAX_OUTPUT = 64 * 1024 * 1024;
/** After the script exits, how long leftover pipes may stay open before we stop reading. */
const DRAIN_AFTER_EXIT = 1000;
/** Pipes still open this long after the exit: something left the group holds them; sweep. */
const SWEEP_AFTER_EXIT = 50;

export function killGroup(pid: number): void {
  try {
    Deno.kill(-pid, "SIGKILL");
  } catch {
    // No such group: already gone, or setsid has not made it yet, so hit the process itself.
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // Gone.
    }
  }
}

function mediaType(contentType: string | null): string {
  if (!contentType) return "";
  const semi = contentType.indexOf(";");
  return (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
}

function isJsonType(type: string): boolean {
  return type === "application/json" || type.endsWith("+json");
}

/** The input file's name for a request body of media type `type`. */
export function inputFileName(type: string): string {
  if (isJsonType(type)) return "input.json";
  if (type.startsWith("text/")) return "input.txt";
  return "input.bin";
}

/** Reads stdout up to MAX_OUTPUT; true in `overflow` when the script wrote more. */
async function collect(
  stream: ReadableStream<Uint8Array>,
): Promise<{ bytes: Uint8Array<ArrayBuffer>; overflow: boolean }> {
  const bytes = await readUpTo(stream, MAX_OUTPUT);
  return bytes ? { bytes, overflow: false } : { bytes: new Uint8Array(), overflow: true };
}

/** Content type for the script's output: JSON when it parses as JSON, else text. */
function outputType(text: string): string {
  const t = text.trim();
  if (t !== "") {
    try {
      JSON.parse(t);
      return "application/json";
    } catch {
      // Not JSON: plain text.
    }
  }
  return "text/plain; charset=utf-8";
}

/**
 * Reads the request body into `folder` within `timeoutMs`; returns the file's path, or an
 * answer: 400 (invalid JSON, unreadable body), 408 (too slow). JSON is held in memory to be
 * parsed; anything else is written to the file as it arrives.
 */
async function receiveInput(
  req: Request,
  folder: string,
  timeoutMs: number,
  ctx: RequestContext,
): Promise<string | Response> {
  const type = mediaType(req.headers.get("content-type"));
  const path = join(folder, inputFileName(type));
  const decoder = new TextDecoder();
  let text = "";
  const file = isJsonType(type)
    ? undefined
    : await Deno.open(path, { write: true, createNew: true, mode: 0o600 });
  let outcome;
  try {
    outcome = await readBodyWithin(req.body, timeoutMs, ctx.signal, async (chunk) => {
      if (!file) text += decoder.decode(chunk, { stream: true });
      else for (let at = 0; at < chunk.length;) at += await file.write(chunk.subarray(at));
    });
  } catch (e) {
    if (ctx.signal.aborted) return abortedResponse(ctx);
    return errorResponse(400, "could not read the request body", (e as Error).message);
  } finally {
    file?.close();
  }
  if (outcome === "aborted") return abortedResponse(ctx);
  if (outcome === "timeout") {
    ctx.log.warn("request body not received in time", {
      requestId: ctx.requestId,
      bodyTimeoutMs: timeoutMs,
    });
    return errorResponse(408, "request body not received in time", {
      bodyTimeoutMs: timeoutMs,
    }, { connection: "close" });
  }
  if (file) return path;
  text += decoder.decode();
  if (text.trim() !== "") {
    try {
      JSON.parse(text);
    } catch (e) {
      return errorResponse(400, "request body is not valid JSON", (e as Error).message);
    }
  }
  // Small and synchronous on purpose: a thread-pool round trip per request costs more.
  Deno.writeTextFileSync(path, text, { mode: 0o600 });
  return path;
}

/**
 * How start.sh is run for one request: `start.sh <input>` (through `sh` when not executable,
 * through `setsid` where present) in the function folder, with the request's variables; the
 * options still lack stdio.
 */
export function scriptCommand(
  script: string,
  setsid: string | undefined,
  req: Request,
  requestId: string,
  input: string,
  marker: Marker,
): [string, Deno.CommandOptions] {
  const url = new URL(req.url);
  const executable = (Deno.statSync(script).mode ?? 0o755) & 0o111;
  const argv = executable ? [script, input] : ["sh", script, input];
  if (setsid) argv.unshift(setsid);
  return [argv[0], {
    args: argv.slice(1),
    cwd: dirname(script),
    env: {
      F2S_METHOD: req.method,
      F2S_PATH: url.pathname,
      F2S_QUERY: url.search.slice(1),
      F2S_CONTENT_TYPE: req.headers.get("content-type") ?? "",
      F2S_REQUEST_ID: requestId,
      F2S_INPUT: input,
      // Also the marker by which sweep.ts finds the request's detached processes.
      [marker.name]: marker.value,
    },
    detached: !setsid,
  }];
}

export interface CommandRunner {
  /** Reads the body (before a slot is taken); the handler it returns runs the script. */
  receive: Receiver;
  /** Resolves when every request folder has been removed. */
  settled(): Promise<void>;
}

/**
 * Where `setsid` lives, if it does. Starting the script through it gives the script its own
 * process group for a fraction of the cost of Deno's `detached` (which forks the whole
 * runtime instead of spawning).
 */
export function findSetsid(): string | undefined {
  for (const path of ["/usr/bin/setsid", "/bin/setsid"]) {
    try {
      if (Deno.statSync(path).isFile) return path;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

export interface CommandOptions {
  /** How long the whole request body may take to arrive, in ms. */
  bodyTimeout: number;
}

export function createCommandRunner(dir: string, options: CommandOptions): CommandRunner {
  const script = join(dir, "start.sh");
  const setsid = findSetsid();
  const cleanups = new Set<Promise<void>>();
  /** Folders (markers) of the requests whose processes may run: a sweep spares those. */
  const running = new Set<string>();
  const track = (work: Promise<void>) => {
    const tracked: Promise<void> = work.finally(() => cleanups.delete(tracked));
    cleanups.add(tracked);
  };

  const receive: Receiver = async (req, ctx) => {
    const folder = Deno.makeTempDirSync({ prefix: "f2s-request-" });
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      // Removal runs after the answer is on its way; stop() waits for it via settled().
      track(
        Deno.remove(folder, { recursive: true }).catch((e) =>
          ctx.log.warn("could not remove request folder", {
            requestId: ctx.requestId,
            folder,
            error: e,
          })
        ),
      );
    };
    let input: string | Response;
    try {
      input = await receiveInput(req, folder, options.bodyTimeout, ctx);
    } catch (e) {
      release();
      throw e;
    }
    if (input instanceof Response) {
      release();
      return input;
    }
    const path = input;
    const received: Received = {
      handle: (req, ctx) => run(req, ctx, folder, path),
      release,
    };
    return received;
  };

  const run = async (
    req: Request,
    ctx: RequestContext,
    folder: string,
    input: string,
  ): Promise<Response> => {
    const { requestId, signal } = ctx;
    if (signal.aborted) return abortedResponse(ctx);
    let pid: number | undefined;
    let swept = false;
    const since = ticksNow();
    const marker: Marker = { name: "F2S_REQUEST_DIR", value: folder };
    // Kills the script and everything it started (sweep.ts); what it returns is logged.
    const killAll = () => {
      if (pid === undefined) return;
      swept = true;
      const killed = sweep(pid, since, marker, running);
      if (killed > 0) ctx.log.debug("request processes killed", { requestId, killed });
    };
    const onAbort = () => killAll();
    signal.addEventListener("abort", onAbort, { once: true });
    running.add(folder);
    try {
      const [cmd, opts] = scriptCommand(script, setsid, req, requestId, input, marker);
      const child = new Deno.Command(cmd, {
        ...opts,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      pid = child.pid;
      if (signal.aborted) killAll();

      const tail = createTail(STDERR_TAIL);
      const stderrDone = forEachLine(child.stderr, (line, truncated) => {
        tail.push(line + "\n");
        ctx.log.info("script stderr", { requestId, line, truncated: truncated || undefined });
      }).catch(() => {});
      const stdout = collect(child.stdout).then((out) => {
        if (out.overflow) killGroup(child.pid);
        return out;
      });
      const status = await child.status;
      // Whatever the script left running dies with the request: its group at once, the
      // rest (sweep) when it holds the pipes, else after the answer.
      killGroup(child.pid);
      const outputs = Promise.all([stdout, stderrDone]).then(([out]) => out);
      let drained = await within(outputs, SWEEP_AFTER_EXIT);
      if (!drained) {
        killAll();
        drained = await within(outputs, DRAIN_AFTER_EXIT);
      }
      if (!drained) {
        // A process that escaped even the sweep still holds the pipes: stop waiting for it.
        child.stdout.cancel().catch(() => {});
        child.stderr.cancel().catch(() => {});
      }

      if (signal.aborted) return abortedResponse(ctx, tail.text());
      if (drained?.overflow) {
        ctx.log.warn("script output too large", { requestId, limitBytes: MAX_OUTPUT });
        return errorResponse(500, "start.sh wrote more than the output limit", {
          limitBytes: MAX_OUTPUT,
        });
      }
      if (!status.success) {
        const details = {
          exitCode: status.code,
          signal: status.signal ?? undefined,
          stderr: tail.text(),
        };
        ctx.log.warn("script failed", { requestId, exitCode: status.code, signal: status.signal });
        return errorResponse(500, "start.sh failed", details, { [REQUEST_ID_HEADER]: requestId });
      }
      const body: Uint8Array<ArrayBuffer> = drained?.bytes ?? new Uint8Array();
      const type = outputType(new TextDecoder().decode(body));
      return new Response(body, {
        headers: { "content-type": type, [REQUEST_ID_HEADER]: requestId },
      });
    } finally {
      signal.removeEventListener("abort", onAbort);
      if (!swept && pid !== undefined) {
        // Off the answer's path: the answer need not wait for the scan of /proc.
        track(
          new Promise<void>((resolve) =>
            setTimeout(() => {
              killAll();
              running.delete(folder);
              resolve();
            }, 0)
          ),
        );
      } else running.delete(folder);
    }
  };

  return {
    receive,
    settled: async () => {
      while (cleanups.size > 0) await Promise.all(cleanups);
    },
  };
}

/** `promise`'s value, or undefined when `ms` pass first. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<undefined>((resolve) => timer = setTimeout(() => resolve(undefined), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export function abortedResponse(ctx: RequestContext, stderr?: string): Response {
  const reason = ctx.signal.reason;
  if (reason instanceof TimeoutError) {
    ctx.log.warn("script timed out; its processes killed", {
      requestId: ctx.requestId,
      timeoutMs: ctx.timeout,
    });
    return errorResponse(504, "start.sh did not finish in time", {
      timeoutMs: ctx.timeout,
      stderr: stderr || undefined,
    });
  }
  if (reason instanceof ShuttingDownError) {
    return errorResponse(503, "fizzlet is shutting down", undefined, { "retry-after": "1" });
  }
  if (reason instanceof ClientGoneError) return errorResponse(499, "client disconnected");
  return errorResponse(500, "request aborted", String(reason));
}
