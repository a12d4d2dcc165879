/**
 * Streaming command mode (`--input stdin`): each request runs `start.sh /dev/stdin` with the
 * request body piped to its standard input as it arrives, and its standard output streamed
 * back as the answer (chunked) as it is written, like of-watchdog's default mode, so a large
 * body or answer never touches the disk nor sits whole in memory (both ends honour
 * backpressure).
 *
 * The body cannot be read before the request takes a slot (it goes to the script), so a slow
 * sender holds a slot, at most for --body-timeout: then the script is killed (408 when it had
 * written nothing, else the connection is cut). Until the first byte of output the request
 * timeout applies (504); after it, the answer may stream until --max-duration. A non-zero exit
 * is a 500 with the tail of stderr when nothing was written yet; after that the connection is
 * cut (the client sees a truncated chunked answer, as with of-watchdog). A script that exits
 * without reading its input is fine: the rest of the body is dropped. As in file mode the
 * script runs in its own session, and whatever it started is killed with it (sweep.ts).
 *
 * A body received whole goes into the pipe before the script starts, and a run that then ends
 * within WHOLE_WAIT_MS (collect_output.ts) is answered from what its pipes hold, with a length:
 * no sockets or streams are made for it (the fizzlet's CPU per request at 8 connections went
 * from ~550 to ~390 µs, bench/RESULTS.md session 9). A run going on past it streams as above;
 * its first bytes wait at most that long, where of-watchdog holds back an answer's first 4 KiB
 * until they fill or the script ends.
 */

import { join } from "node:path";
import { errorResponse, type PlainAnswer, REQUEST_ID_HEADER } from "../common/protocol.ts";
import { readBodyWithin } from "./body_deadline.ts";
import {
  abortedResponse,
  CLEANUP_DELAY_MS,
  findSetsid,
  killGroup,
  scriptCommand,
  scriptEnv,
  SIGNALS,
  startScript,
  STDERR_TAIL,
} from "./command.ts";
import { type Exit, spawner } from "./spawn.ts";
import { createTail, forEachLine, lineSplitter } from "./lines.ts";
import { type PipeOutput, type ReadNow, streamOutput } from "./pipe_streams.ts";
import { settlesWithin, WHOLE_WAIT_MS } from "./collect_output.ts";
import { concat } from "../common/bytes.ts";
import type { Received, Receiver, RequestContext, ScriptRequest } from "./request.ts";
import { type Marker, sweep, sweepBatcher, ticksNow } from "../common/sweep.ts";
import { sendSignal } from "../common/signal.ts";

/** Answers still streaming after their handler returned: the slot is held until this ends. */
const streaming = new WeakMap<Response, Promise<void>>();

/** For a streamed answer, resolves when it has ended (and its processes are gone). */
export function streamDone(res: Response): Promise<void> | undefined {
  return streaming.get(res);
}

export interface StdinOptions {
  /** How long the whole request body may take to arrive, in ms. */
  bodyTimeout: number;
  /** Limit on the whole run once output has started, in ms. */
  maxDuration: number;
  /**
   * "spawn": posix_spawn with pipes (spawn.ts) where FFI and glibc allow; "shells" (the
   * fallback's name in file mode): Deno.Command through `setsid`, as where they do not.
   */
  start?: "spawn" | "shells";
}

export interface StdinRunner {
  receive: Receiver;
  settled(): Promise<void>;
}

/** A streamed answer cut short: why, and the tail of stderr. */
export class Cut extends Error {
  constructor(message: string, readonly stderr: string) {
    super(message);
  }
}

/** A started script with its three pipes, however it was started. */
interface Child {
  pid: number;
  /** Takes the body, `rest` first; null when all of it went in before the start. */
  stdin: WritableStream<Uint8Array> | null;
  /** What of a body received whole did not fit into the pipe before the start. */
  rest: Uint8Array | null;
  stdout: PipeOutput;
  stderr: PipeOutput;
  status: Promise<{ success: boolean; code: number; signal: string | null }>;
}

/** A child whose pipes are streams (spawnPiped, Deno.Command) as a Child. */
function streamedChild(
  c: {
    pid: number;
    stdin: WritableStream<Uint8Array>;
    stdout: ReadableStream<Uint8Array>;
    stderr: ReadableStream<Uint8Array>;
  },
  status: Child["status"],
): Child {
  return {
    pid: c.pid,
    stdin: c.stdin,
    rest: null,
    stdout: streamOutput(c.stdout),
    stderr: streamOutput(c.stderr),
    status,
  };
}

const EMPTY = new Uint8Array(0);
/** A pipe's default buffer: all a script that has exited can have left in it. */
const PIPE_BYTES = 64 * 1024;

/**
 * How long (ms, in 1 ms steps) an exited script's pipes may take to reach their end before
 * its answer streams. At 8 connections 15–20% of them were not at their end when first read
 * after the exit, with no process holding them; the end came 0.04–3.7 ms later (the kernel
 * closes an exiting process's files late at times: within a 4 ms tick at HZ=250). Waiting
 * for it costs a timer; streaming, a socket and a stream per pipe.
 */
const EOF_WAIT_MS = 5;

/** Adds what `pipe` holds now to `got`, up to PIPE_BYTES in all. */
function readOn(got: ReadNow, pipe: PipeOutput) {
  if (got.eof) return;
  const size = got.chunks.reduce((n, c) => n + c.length, 0);
  if (size >= PIPE_BYTES) return;
  const more = pipe.readNow(PIPE_BYTES - size);
  got.chunks.push(...more.chunks);
  got.eof = more.eof;
}

export function createStdinRunner(dir: string, options: StdinOptions): StdinRunner {
  const script = join(dir, "start.sh");
  const setsid = findSetsid();
  const spawn = options.start === "shells" ? undefined : spawner();

  /**
   * start.sh by posix_spawn where it can (no `setsid` exec: ~0.8 ms less), else Deno.Command.
   * A body received whole goes into the pipe before the start.
   */
  const start = async (req: ScriptRequest, requestId: string, marker: Marker): Promise<Child> => {
    if (spawn) {
      const env = scriptEnv(req, requestId, "/dev/stdin", marker);
      const exitOf = ({ code, signal }: Exit) => ({
        success: code === 0,
        code,
        signal: signal === undefined ? null : SIGNALS[signal] ?? `signal ${signal}`,
      });
      const body = req.body;
      if (body === null || body instanceof Uint8Array) {
        const c = await startScript(
          spawn,
          script,
          "/dev/stdin",
          (argv) => spawn.spawnFed(argv, env, dir, body ?? EMPTY),
        );
        return { ...c, status: c.exited.then(exitOf) };
      }
      const c = await startScript(
        spawn,
        script,
        "/dev/stdin",
        (argv) => spawn.spawnPiped(argv, env, dir),
      );
      return streamedChild(c, c.exited.then(exitOf));
    }
    const [cmd, opts] = scriptCommand(script, setsid, req, requestId, "/dev/stdin", marker);
    const c = new Deno.Command(cmd, {
      ...opts,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    return streamedChild(c, c.status);
  };
  const running = new Set<string>();
  /** The scripts' pids, each its session's leader: see sweep.ts. */
  const roots = new Set<number>();
  const sweepSoon = sweepBatcher(running, roots, CLEANUP_DELAY_MS);
  const pending = new Set<Promise<void>>();
  const track = (work: Promise<void>) => {
    const tracked: Promise<void> = work.finally(() => pending.delete(tracked));
    pending.add(tracked);
  };

  const run = async (req: ScriptRequest, ctx: RequestContext): Promise<Response | PlainAnswer> => {
    const { requestId, signal } = ctx;
    if (signal.aborted) return abortedResponse(ctx);
    const marker: Marker = { name: "F2S_REQUEST_DIR", value: `stdin-${crypto.randomUUID()}` };
    const since = ticksNow();
    running.add(marker.value);
    let child: Child;
    try {
      child = await start(req, requestId, marker);
    } catch (e) {
      running.delete(marker.value);
      ctx.log.error("script could not be started", { requestId, error: e });
      return errorResponse(500, "start.sh could not be run", (e as Error).message, {
        [REQUEST_ID_HEADER]: requestId,
      });
    }
    roots.add(child.pid);
    let killed = false;
    /**
     * Kills whatever the run left (sweep.ts), once: at once when the run is cut short; after
     * the script has been waited for (`reaped`: its pid is not probed then), together with
     * the runs that end about now, once the slot is free again (as in file mode).
     */
    const killAll = async (reaped = false) => {
      if (killed) return;
      killed = true;
      const n = reaped
        ? await sweepSoon({ root: child.pid, since, marker, rootReaped: true })
        : sweep(child.pid, since, marker, running, undefined, false, roots);
      if (n > 0) ctx.log.debug("request processes killed", { requestId, killed: n });
    };
    // Why the run was cut short, if it was: the answer depends on it.
    let cutBy: "body-timeout" | "max-duration" | "aborted" | undefined;
    const cut = (why: typeof cutBy) => {
      cutBy ??= why;
      void killAll();
    };
    const onAbort = () => cut("aborted");
    signal.addEventListener("abort", onAbort, { once: true });
    if (signal.aborted) cut("aborted");

    const tail = createTail(STDERR_TAIL);
    const onStderr = (line: string, truncated: boolean) => {
      tail.push(line + "\n");
      ctx.log.info("script stderr", { requestId, line, truncated: truncated || undefined });
    };
    const status = child.status;
    let pumped: Promise<void> = Promise.resolve();
    let closeOutputs: (() => void) | undefined;
    let stderrDone: Promise<void> = Promise.resolve();

    let reaped = false;
    void status.then(() => reaped = true);
    const finish = async () => {
      // What is left in its group dies now. Once the script has been waited for its pid is
      // free (and could be anyone's): only the group, which keeps the id while it has members.
      if (reaped) sendSignal(-child.pid, "SIGKILL");
      else killGroup(child.pid);
      await status;
      await Promise.all([pumped, stderrDone]);
      signal.removeEventListener("abort", onAbort);
      // Whatever the script left running dies with the request.
      track(
        killAll(true).then(() => {
          closeOutputs?.();
          running.delete(marker.value);
          roots.delete(child.pid);
        }),
      );
    };

    /** Why a run that wrote something is not a whole answer (logged), or undefined. */
    const endError = (exit: Awaited<Child["status"]>): Cut | undefined => {
      if (!cutBy && exit.success) return undefined;
      if (!cutBy) {
        ctx.log.warn("script failed after writing; answer cut", {
          requestId,
          exitCode: exit.code,
          signal: exit.signal,
        });
      }
      return new Cut(`start.sh ${cutBy ?? `exited with ${exit.code}`}`, tail.text());
    };

    /** The answer of a run that wrote nothing: it can still say what happened. */
    const unwritten = async (): Promise<Response> => {
      const exit = await status;
      await finish();
      if (cutBy === "body-timeout") {
        return errorResponse(408, "request body not received in time", {
          bodyTimeoutMs: options.bodyTimeout,
        }, { connection: "close" });
      }
      if (signal.aborted) return abortedResponse(ctx, tail.text());
      if (!exit.success) {
        ctx.log.warn("script failed", { requestId, exitCode: exit.code, signal: exit.signal });
        return errorResponse(500, "start.sh failed", {
          exitCode: exit.code,
          signal: exit.signal ?? undefined,
          stderr: tail.text(),
        }, { [REQUEST_ID_HEADER]: requestId });
      }
      return new Response(null, { headers: { [REQUEST_ID_HEADER]: requestId } });
    };

    /**
     * The answer of a run that has ended with all its output read: with a length; or, when it
     * failed after writing, what it wrote and then the cut, as had it streamed.
     */
    const whole = async (chunks: Uint8Array[]): Promise<Response | PlainAnswer> => {
      if (chunks.length === 0) return unwritten();
      const error = endError(await status);
      await finish();
      const headers: [string, string][] = [
        ["content-type", "application/octet-stream"],
        [REQUEST_ID_HEADER, requestId],
      ];
      if (!error) return { status: 200, headers, body: concat(chunks) };
      let next = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (next < chunks.length) controller.enqueue(chunks[next++]);
          else controller.error(error);
        },
      });
      return { status: 200, headers, body };
    };

    // A run fed its whole body that ends soon: its output is what the pipes hold.
    let stdout: ReadableStream<Uint8Array> | undefined;
    let stderr: ReadableStream<Uint8Array> | undefined;
    if (child.stdin === null && await settlesWithin(status, WHOLE_WAIT_MS)) {
      // At most what a pipe holds: more means something it left is still writing.
      const out = child.stdout.readNow(PIPE_BYTES);
      const err = child.stderr.readNow(PIPE_BYTES);
      // The end of the pipes can come a little after the exit (see EOF_WAIT_MS).
      for (let waited = 0; !(out.eof && err.eof) && waited < EOF_WAIT_MS; waited++) {
        await new Promise((resolve) => setTimeout(resolve, 1));
        readOn(out, child.stdout);
        readOn(err, child.stderr);
      }
      if (out.eof && err.eof) {
        // Closed after the answer, with the sweep: two syscalls less on its path.
        closeOutputs = () => {
          child.stdout.close();
          child.stderr.close();
        };
        if (err.chunks.length > 0) {
          const lines = lineSplitter(onStderr);
          for (const chunk of err.chunks) lines.push(chunk);
          lines.end();
        }
        return whole(out.chunks);
      }
      // Something it started holds a pipe open: the rest streams.
      stdout = child.stdout.stream(out.chunks);
      stderr = child.stderr.stream(err.chunks);
    }
    stdout ??= child.stdout.stream();
    stderr ??= child.stderr.stream();
    stderrDone = forEachLine(stderr, onStderr).catch(() => {});

    // The body goes to stdin as it arrives, one chunk at a time (write waits for the pipe).
    if (child.stdin !== null) {
      const stdin = child.stdin.getWriter();
      const body = child.rest ?? req.body;
      pumped = (async () => {
        let open = true;
        const outcome = await readBodyWithin(body, options.bodyTimeout, signal, async (c) => {
          if (!open) return;
          try {
            await stdin.write(c);
          } catch {
            // The script closed its input (or exited) without reading it all: drop the rest.
            open = false;
          }
        }).catch(() => "aborted" as const);
        if (outcome === "timeout") {
          ctx.log.warn("request body not received in time", {
            requestId,
            bodyTimeoutMs: options.bodyTimeout,
          });
          cut("body-timeout");
        }
        await stdin.close().catch(() => {});
      })();
    }

    const out = stdout.getReader();
    const first = await out.read().catch(() => ({ done: true as const, value: undefined }));
    if (first.done) return unwritten();

    // Output has started: from here the answer streams until the script ends, or it is cut.
    let resolveDone!: () => void;
    const done = new Promise<void>((r) => resolveDone = r);
    const maxTimer = setTimeout(() => {
      ctx.log.warn("script ran past its maximum duration; cut", {
        requestId,
        maxDurationMs: options.maxDuration,
      });
      cut("max-duration");
      out.cancel().catch(() => {});
    }, options.maxDuration);
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      clearTimeout(maxTimer);
      track(finish().finally(resolveDone));
    };
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(first.value);
      },
      async pull(controller) {
        try {
          const { done, value } = await out.read();
          if (!done) return controller.enqueue(value);
          const error = endError(await status);
          if (error) controller.error(error);
          else controller.close();
        } catch (e) {
          controller.error(e);
        }
        end();
      },
      cancel() {
        // The client went away or the server gave up on the answer.
        cut("aborted");
        out.cancel().catch(() => {});
        end();
      },
    });
    const res = new Response(body, {
      headers: { "content-type": "application/octet-stream", [REQUEST_ID_HEADER]: requestId },
    });
    streaming.set(res, done);
    return res;
  };

  const receive: Receiver = (_req, _ctx) => {
    const received: Received = { handle: run, release: () => {} };
    return Promise.resolve(received);
  };

  return {
    receive,
    settled: async () => {
      while (pending.size > 0) await Promise.all(pending);
    },
  };
}
