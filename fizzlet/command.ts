/**
 * Command-line mode: each request runs `start.sh <input file>` in the function folder.
 *
 * The request body goes to a file in a private temporary folder made for this request
 * (`input.json` for JSON, which must parse, else `input.txt` for text/*, `input.bin` for
 * anything else), never onto the command line; the folder is in memory (/dev/shm) when the
 * body is small and /dev/shm large. The body is read whole before the request takes a slot,
 * within the body timeout (else 408), so slow senders cannot hold the few slots.
 * The script is started by posix_spawn in a session of its own (spawn.ts), or where that is
 * not available by a long-lived shell in its own session (script_shell.ts); a timeout, a
 * vanished client or shutdown kills the script together with everything it started, also
 * what left its group or session (sweep.ts), and so does the end of the request.
 * Its stdout is the answer once it has exited (JSON content type when it parses as JSON; more
 * than MAX_OUTPUT is a 500); a non-zero exit is a 500 with the exit code and the tail of
 * stderr. stderr is logged line by line, never returned whole. A spawned script writes to pipes
 * (collect_output.ts); a shell's script to files in the folder, read after the exit. The
 * folder is removed afterwards, whatever happened.
 */

import { basename, dirname, join, resolve } from "node:path";
import { ClientGoneError, ShuttingDownError, TimeoutError } from "../common/cut_short.ts";
import { type Deadline, deadlines } from "../common/deadlines.ts";
import { errorResponse, type PlainAnswer, REQUEST_ID_HEADER } from "../common/protocol.ts";
import { readBodyWithin } from "./body_deadline.ts";
import { createTail, forEachLine } from "./lines.ts";
import type { Received, Receiver, RequestContext, ScriptRequest } from "./request.ts";
import { createShellPool } from "./script_shell.ts";
import { type FedChild, type Spawner, spawner } from "./spawn.ts";
import { collectOutput } from "./collect_output.ts";
import { type NewFile, requestFiles, roomyShm } from "./request_files.ts";
import { folderPrefix, removeOrphans } from "./request_folders.ts";
import type { Logger } from "../common/log.ts";
import { tmpDir } from "../common/owners.ts";
import { sendSignal } from "../common/signal.ts";
import { type Marker, sweep, sweepBatcher, ticksNow } from "../common/sweep.ts";

/** Characters of stderr returned with a failure. */
export const STDERR_TAIL = 2000;
/** stdout beyond this is refused rather than buffered (the answer is built in memory). */
export const MAX_OUTPUT = 64 * 1024 * 1024;
/** Output files smaller than this are read synchronously (cheaper than a thread-pool trip). */
const SYNC_READ = 256 * 1024;
/** The request's own files, libc where it can (request_files.ts). */
const files = requestFiles();
/** What a request folder holds besides what the script adds: its input, the script's output. */
const OWN_FILES = ["input.json", "input.txt", "input.bin", "stdout", "stderr"];
/** A spawned script's input (its stdin: the request body is in the input file). */
const NO_INPUT = new Uint8Array(0);
/** Stderr beyond this many bytes is logged from a stream rather than read whole. */
const STDERR_WHOLE = 64 * 1024;

/**
 * How often a running script's output files are measured. They are files (not pipes), so
 * nothing stops a script at the limit by itself: without this a flood would fill the disk
 * until the request's timeout. At disk speed a script writes at most a few hundred MB more.
 */
const OUTPUT_CHECK_MS = 50;

/** Names of the signals sh reports as 128 + n (those a script is likely to die of). */
export const SIGNALS: Record<number, string> = {
  1: "SIGHUP",
  2: "SIGINT",
  3: "SIGQUIT",
  4: "SIGILL",
  6: "SIGABRT",
  7: "SIGBUS",
  8: "SIGFPE",
  9: "SIGKILL",
  11: "SIGSEGV",
  13: "SIGPIPE",
  14: "SIGALRM",
  15: "SIGTERM",
  24: "SIGXCPU",
  25: "SIGXFSZ",
};

export function killGroup(pid: number): void {
  // No such group: already gone, or setsid has not made it yet, so hit the process itself.
  if (!sendSignal(-pid, "SIGKILL")) sendSignal(pid, "SIGKILL");
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

/**
 * Logs every line of the script's stderr (in `path`) with the request id; returns its tail.
 * Usually empty; a large one is streamed, so memory stays flat whatever the script wrote.
 */
async function logStderr(path: string, ctx: RequestContext): Promise<string> {
  const stderr = files.readOutput(path, STDERR_WHOLE);
  if (stderr === undefined) {
    ctx.log.warn("script stderr is not a file; not read", { requestId: ctx.requestId });
    return "";
  }
  if (stderr.size === 0) return "";
  const tail = createTail(STDERR_TAIL);
  // Up to the size seen now: something the script left running may still be appending.
  const stream = stderr.bytes
    ? ReadableStream.from([stderr.bytes])
    : ReadableStream.from(files.readChunks(path, stderr.size));
  await forEachLine(stream, (line, truncated) => {
    tail.push(line + "\n");
    ctx.log.info("script stderr", {
      requestId: ctx.requestId,
      line,
      truncated: truncated || undefined,
    });
  });
  return tail.text();
}

/** The first `size` bytes of `chunks` (fewer if they end sooner), in one array. */
async function readAll(
  chunks: AsyncIterable<Uint8Array>,
  size: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const out = new Uint8Array(size);
  let at = 0;
  for await (const chunk of chunks) {
    const n = Math.min(chunk.length, size - at);
    out.set(chunk.subarray(0, n), at);
    at += n;
  }
  return at === size ? out : out.slice(0, at);
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
 * parsed, and goes to `json` when the folder came with input.json made already; anything else
 * is written to the file as it arrives.
 */
async function receiveInput(
  req: ScriptRequest,
  folder: string,
  type: string,
  json: NewFile | undefined,
  timeoutMs: number,
  ctx: RequestContext,
): Promise<string | Response> {
  const path = join(folder, inputFileName(type));
  const body = req.body;
  if (isJsonType(type) && (body === null || body instanceof Uint8Array)) {
    // Received whole (small bodies are): nothing to wait for.
    if (ctx.signal.aborted) return abortedResponse(ctx);
    return writeJson(body === null ? "" : wholeDecoder.decode(body), path, json);
  }
  const decoder = new TextDecoder();
  let text = "";
  const file = isJsonType(type)
    ? undefined
    : await Deno.open(path, { write: true, createNew: true, mode: 0o600 });
  let outcome;
  try {
    outcome = await readBodyWithin(body, timeoutMs, ctx.signal, async (chunk) => {
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
  return writeJson(text + decoder.decode(), path, json);
}

const wholeDecoder = new TextDecoder();

/** `text` written to `path` (into `json` when made already) once it is JSON (or blank), else a 400. */
function writeJson(text: string, path: string, json: NewFile | undefined): string | Response {
  if (text.trim() !== "") {
    try {
      JSON.parse(text);
    } catch (e) {
      return errorResponse(400, "request body is not valid JSON", (e as Error).message);
    }
  }
  // Small and synchronous on purpose: a thread-pool round trip per request costs more.
  const bytes = new TextEncoder().encode(text);
  if (json) json.write(bytes);
  else files.writeNew(path, bytes);
  return path;
}

/**
 * `start.sh <input>`, through `sh` when it is not executable (judged by `executable`, by
 * default from its mode bits).
 */
export function scriptArgv(
  script: string,
  input: string,
  executable = (path: string) => ((Deno.statSync(path).mode ?? 0o755) & 0o111) !== 0,
): string[] {
  return executable(script) ? [script, input] : ["sh", script, input];
}

/**
 * Starts `start.sh <input>` with `start` (a spawn.ts call) as a shell would: through /bin/sh
 * when it is not executable, or when it is executable but neither a program nor a script
 * with #! (ENOEXEC); `beforeRetry` undoes what the failed attempt left behind.
 */
export async function startScript<T>(
  spawner: Spawner,
  script: string,
  input: string,
  start: (argv: string[]) => Promise<T>,
  beforeRetry: () => void = () => {},
): Promise<T> {
  const argv = scriptArgv(script, input, spawner.executable);
  if (argv[0] === "sh") argv[0] = "/bin/sh";
  try {
    return await start(argv);
  } catch (e) {
    if (argv[0] === "/bin/sh" || !/errno 8$/.test((e as Error).message)) throw e;
    beforeRetry();
    return await start(["/bin/sh", script, input]);
  }
}

/** The request's variables for the script, the marker among them. */
export function scriptEnv(
  req: ScriptRequest,
  requestId: string,
  input: string,
  marker: Marker,
): Record<string, string> {
  const url = new URL(req.url);
  return {
    F2S_METHOD: req.method,
    F2S_PATH: url.pathname,
    F2S_QUERY: url.search.slice(1),
    F2S_CONTENT_TYPE: req.headers.get("content-type") ?? "",
    F2S_REQUEST_ID: requestId,
    F2S_INPUT: input,
    // Also the marker by which sweep.ts finds the request's detached processes.
    [marker.name]: marker.value,
  };
}

/**
 * How start.sh is run for one request by Deno.Command (stdin mode): `start.sh <input>` in the
 * function folder, in its own session (through `setsid` where present), with the request's
 * variables; the options still lack stdio.
 */
export function scriptCommand(
  script: string,
  setsid: string | undefined,
  req: ScriptRequest,
  requestId: string,
  input: string,
  marker: Marker,
): [string, Deno.CommandOptions] {
  const argv = scriptArgv(script, input);
  if (setsid) argv.unshift(setsid);
  return [argv[0], {
    args: argv.slice(1),
    cwd: dirname(script),
    env: scriptEnv(req, requestId, input, marker),
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

/**
 * A request's cleanup (the sweep of what its script left running, then the removal of its
 * folder, in that order: same delay, queued in that order) waits this long after the answer.
 * With 0 it ran before the next request of the same client was read, ~0.07 ms on the path of
 * every request at 1 connection; 1 ms later it runs while the next script does, and more runs
 * that ended share one sweep.
 */
export const CLEANUP_DELAY_MS = 1;

/** Request folders go to memory (tmpfs) for bodies up to this size, declared up front. */
const MEMORY_FOLDER_MAX = 1024 * 1024;

/**
 * /dev/shm when request folders can be made there, else undefined (the temp folder). Making,
 * writing and removing a folder there costs a tenth of it on a disk (0.03 ms against 0.1 to
 * 0.5 ms of the event loop, measured): the largest per-request cost after the spawn. When the
 * folders hold the script's output too (`withOutput`: up to 64 MiB each), only when /dev/shm
 * is large (request_files.ts): a container's default one holds 64 MiB in all.
 */
function memoryFolders(withOutput: boolean): string | undefined {
  if (withOutput && !roomyShm()) return undefined;
  try {
    Deno.removeSync(Deno.makeTempDirSync({ dir: "/dev/shm", prefix: "f2s-probe-" }));
    return "/dev/shm";
  } catch {
    return undefined;
  }
}

export interface CommandOptions {
  /** How long the whole request body may take to arrive, in ms. */
  bodyTimeout: number;
  /**
   * How scripts are started: by posix_spawn where FFI and glibc allow (spawn.ts), else by
   * long-lived shells (script_shell.ts); "shells" forces the latter.
   */
  start?: "spawn" | "shells";
  /** For what is not any request's (the folders of gone fizzlets removed). */
  log?: Logger;
}

export function createCommandRunner(dir: string, options: CommandOptions): CommandRunner {
  dir = resolve(dir);
  const script = join(dir, "start.sh");
  const shells = createShellPool(dir, findSetsid());
  const cleanups = new Set<Promise<void>>();
  /** Folders (markers) of the requests whose processes may run: a sweep spares those. */
  const running = new Set<string>();
  /** Their scripts' pids, each its session's leader (spawned ones only): see sweep.ts. */
  const roots = new Set<number>();
  const track = (work: Promise<void>) => {
    const tracked: Promise<void> = work.finally(() => cleanups.delete(tracked));
    cleanups.add(tracked);
  };

  const spawn = options.start === "shells" ? undefined : spawner();
  const memory = memoryFolders(spawn !== undefined);
  /** This fizzlet's name in its folders' names (request_folders.ts). */
  const prefix = folderPrefix();
  // What fizzlets killed before left in the folders' places goes now, off the start's path.
  for (const parent of new Set([memory, tmpDir()])) {
    if (!parent) continue;
    track(
      removeOrphans(parent).then((removed) => {
        if (removed > 0) {
          options.log?.info("removed the request folders of fizzlets gone", { parent, removed });
        }
      }),
    );
  }

  /**
   * The next JSON request's folder with its input.json made already (in memory only), made
   * while a script runs: at 1 connection the fizzlet waits then. Making both was ~35 of the
   * ~45 µs file mode spent before a start that streaming mode does not (bench/RESULTS.md,
   * session 10).
   */
  let spare: { folder: string; json: NewFile } | undefined;
  let stopped = false;
  const makeSpare = () => {
    if (spare || stopped || memory === undefined) return;
    try {
      const folder = files.makeFolder(memory, prefix);
      try {
        spare = { folder, json: files.createNew(join(folder, "input.json")) };
      } catch {
        files.removeFolder(folder, []);
      }
    } catch {
      // /dev/shm refused: the next request makes its own (and says why if it fails too).
    }
  };
  const dropSpare = () => {
    if (!spare) return;
    spare.json.close();
    files.removeFolder(spare.folder, ["input.json"]);
    spare = undefined;
  };

  const receive: Receiver = async (req, ctx) => {
    const size = req.body === null
      ? 0
      : req.body instanceof Uint8Array
      ? req.body.length
      : Number(req.headers.get("content-length") ?? NaN);
    const type = mediaType(req.headers.get("content-type"));
    const inMemory = memory !== undefined && size <= MEMORY_FOLDER_MAX;
    let folder: string;
    let json: NewFile | undefined;
    if (inMemory && spare && isJsonType(type)) {
      ({ folder, json } = spare);
      spare = undefined;
    } else {
      folder = inMemory ? files.makeFolder(memory, prefix) : Deno.makeTempDirSync({ prefix });
    }
    let released = false;
    /** What the folder holds besides what the script made (each unlink of none costs). */
    let names = OWN_FILES;
    const release = () => {
      if (released) return;
      released = true;
      const failed = (e: unknown) =>
        ctx.log.warn("could not remove request folder", {
          requestId: ctx.requestId,
          folder,
          error: e,
        });
      // Removal runs after the answer is on its way (and after the sweep of what the script
      // left running, queued before); stop() waits for it via settled().
      if (inMemory) {
        // Synchronous: in memory it costs less than a trip to the thread pool.
        track(
          new Promise<void>((resolve) =>
            setTimeout(() => {
              try {
                files.removeFolder(folder, names);
              } catch (e) {
                failed(e);
              }
              resolve();
            }, CLEANUP_DELAY_MS)
          ),
        );
        return;
      }
      track(Deno.remove(folder, { recursive: true }).catch(failed));
    };
    let input: string | Response;
    try {
      input = await receiveInput(req, folder, type, json, options.bodyTimeout, ctx);
    } catch (e) {
      release();
      throw e;
    } finally {
      json?.close(); // written or not
    }
    if (input instanceof Response) {
      release();
      return input;
    }
    const path = input;
    // Spawned scripts write to pipes; the shells' scripts to files beside the input.
    names = spawn ? [basename(path)] : [basename(path), "stdout", "stderr"];
    const received: Received = {
      handle: (req, ctx) => run(req, ctx, folder, path),
      release,
    };
    return received;
  };

  /**
   * The answer once the script has ended with `code`: its stdout (undefined: not a regular
   * file, so not read; "too large": past MAX_OUTPUT) and the tail of its stderr, logged
   * already; `flooded`: it was killed for writing too much.
   */
  const answer = (
    ctx: RequestContext,
    stdout: Uint8Array | undefined | "too large",
    tail: string,
    code: number,
    flooded: boolean,
  ): Response | PlainAnswer => {
    const { requestId, signal } = ctx;
    if (flooded) {
      ctx.log.warn("script output too large; its processes killed", {
        requestId,
        limitBytes: MAX_OUTPUT,
      });
      return errorResponse(500, "start.sh wrote more than the output limit", {
        limitBytes: MAX_OUTPUT,
      });
    }
    if (signal.aborted) return abortedResponse(ctx, tail);
    if (stdout === undefined) {
      ctx.log.warn("script stdout is not a file; not read", { requestId });
      return errorResponse(500, "start.sh output could not be read", undefined, {
        [REQUEST_ID_HEADER]: requestId,
      });
    }
    if (stdout === "too large") {
      ctx.log.warn("script output too large", { requestId, limitBytes: MAX_OUTPUT });
      return errorResponse(500, "start.sh wrote more than the output limit", {
        limitBytes: MAX_OUTPUT,
      });
    }
    if (code !== 0) {
      // sh reports a death by signal n as 128 + n, and so does spawn.ts.
      const sig = code > 128 ? SIGNALS[code - 128] : undefined;
      ctx.log.warn("script failed", { requestId, exitCode: code, signal: sig });
      return errorResponse(500, "start.sh failed", {
        exitCode: code,
        signal: sig,
        stderr: tail,
      }, { [REQUEST_ID_HEADER]: requestId });
    }
    const type = outputType(new TextDecoder().decode(stdout));
    return {
      status: 200,
      headers: [["content-type", type], [REQUEST_ID_HEADER, requestId]],
      body: stdout,
    };
  };

  /** `answer` for a script whose output went to files (the shells). */
  const answerFromFiles = async (
    ctx: RequestContext,
    out: { stdout: string; stderr: string },
    code: number,
    flooded: boolean,
  ): Promise<Response | PlainAnswer> => {
    if (flooded) return answer(ctx, new Uint8Array(0), "", code, flooded);
    const tail = await logStderr(out.stderr, ctx);
    const stdout = files.readOutput(out.stdout, SYNC_READ);
    if (stdout === undefined || stdout.size > MAX_OUTPUT) {
      return answer(ctx, stdout && "too large", tail, code, flooded);
    }
    // Small ones are read already, synchronously: a thread-pool round trip costs more.
    const body = stdout.bytes ??
      await readAll(files.readChunks(out.stdout, stdout.size), stdout.size);
    return answer(ctx, body, tail, code, flooded);
  };

  /**
   * Measures the output files every OUTPUT_CHECK_MS and calls `flood` once either is over
   * MAX_OUTPUT; returns the stop.
   */
  const watchOutput = (out: { stdout: string; stderr: string }, flood: () => void) => {
    let watch: Deadline | undefined;
    const measure = () => {
      try {
        if (
          Deno.statSync(out.stdout).size > MAX_OUTPUT || Deno.statSync(out.stderr).size > MAX_OUTPUT
        ) {
          return flood();
        }
      } catch {
        return; // gone: the request ends anyway
      }
      watch = deadlines.after(OUTPUT_CHECK_MS, measure);
    };
    watch = deadlines.after(OUTPUT_CHECK_MS, measure);
    return () => watch?.cancel();
  };

  /** Runs that have ended, their leftovers swept together CLEANUP_DELAY_MS later. */
  const sweepSoon = sweepBatcher(running, roots, CLEANUP_DELAY_MS);

  /**
   * start.sh started by posix_spawn (spawn.ts) in its own session, its input closed, its
   * output collected from pipes (collect_output.ts).
   */
  const runSpawned = async (
    spawn: Spawner,
    req: ScriptRequest,
    ctx: RequestContext,
    folder: string,
    input: string,
  ): Promise<Response | PlainAnswer> => {
    const { requestId, signal } = ctx;
    if (signal.aborted) return abortedResponse(ctx);
    const marker: Marker = { name: "F2S_REQUEST_DIR", value: folder };
    const since = ticksNow();
    let pid: number | undefined;
    let reaped = false;
    // Kills the script and everything it started (sweep.ts).
    const killAll = () => {
      if (pid === undefined) return;
      const killed = sweep(pid, since, marker, running, undefined, reaped, roots);
      if (killed > 0) ctx.log.debug("request processes killed", { requestId, killed });
    };
    signal.addEventListener("abort", killAll, { once: true });
    running.add(folder);
    let close = () => {};
    try {
      let child: FedChild;
      try {
        const env = scriptEnv(req, requestId, input, marker);
        child = await startScript(
          spawn,
          script,
          input,
          (argv) => spawn.spawnFed(argv, env, dir, NO_INPUT),
        );
      } catch (e) {
        ctx.log.error("script could not be started", { requestId, error: e });
        return errorResponse(500, "start.sh could not be run", (e as Error).message, {
          [REQUEST_ID_HEADER]: requestId,
        });
      }
      pid = child.pid;
      roots.add(pid);
      makeSpare();
      void child.exited.then(() => reaped = true);
      if (signal.aborted) killAll(); // cut short while it was being started
      const tail = createTail(STDERR_TAIL);
      const collected = await collectOutput(child, {
        limit: MAX_OUTPUT,
        onStderrLine: (line, truncated) => {
          tail.push(line + "\n");
          ctx.log.info("script stderr", { requestId, line, truncated: truncated || undefined });
        },
        onFlood: killAll,
        spillTo: join(folder, "stdout"),
      });
      close = collected.close;
      const { exit, stdout, flooded } = collected;
      // A large output went on to a file: read back (off the loop), as at most the limit.
      const body = stdout instanceof Uint8Array
        ? stdout
        : await readAll(files.readChunks(stdout.path, stdout.size), stdout.size);
      return answer(ctx, body, tail.text(), exit.code, flooded);
    } finally {
      signal.removeEventListener("abort", killAll);
      // Whatever the script left running dies next, off the answer's path (the scan of /proc
      // need not delay it), and before the folder is removed (release, queued after this).
      const forget = () => {
        close();
        running.delete(folder);
        if (pid !== undefined) roots.delete(pid);
      };
      if (pid === undefined) forget();
      else {
        const run = { root: pid, since, marker, rootReaped: reaped };
        track(
          sweepSoon(run).then((killed) => {
            forget();
            if (killed > 0) ctx.log.debug("request processes killed", { requestId, killed });
          }),
        );
      }
    }
  };

  /** start.sh started by one of the long-lived shells (script_shell.ts): the fallback. */
  const runInShell = async (
    req: ScriptRequest,
    ctx: RequestContext,
    folder: string,
    input: string,
  ): Promise<Response | PlainAnswer> => {
    const { requestId, signal } = ctx;
    if (signal.aborted) return abortedResponse(ctx);
    const shell = await shells.acquire();
    if (signal.aborted) {
      // Gone while a shell was starting: it serves the next request instead.
      shells.release(shell, () => {});
      shells.clean(shell);
      return abortedResponse(ctx);
    }
    /** The script's pid, known once it has ended and its shell has waited for it. */
    let pid: number | undefined;
    const since = ticksNow();
    const marker: Marker = { name: "F2S_REQUEST_DIR", value: folder };
    // Kills the script and everything it started (sweep.ts); the shell itself is spared.
    const killAll = () => {
      const killed = pid === undefined
        ? sweep(shell.pid, since, marker, running, shell.pid)
        : sweep(pid, since, marker, running, shell.pid, true);
      if (killed > 0) ctx.log.debug("request processes killed", { requestId, killed });
    };
    // A run cut short kills its shell first, so that it starts nothing more (the script's pid
    // is not known yet), then all it left in its session or elsewhere (a new shell serves the
    // next request).
    const cutShort = () => {
      if (pid === undefined) shell.kill();
      killAll();
    };
    const onAbort = () => cutShort();
    signal.addEventListener("abort", onAbort, { once: true });
    running.add(folder);
    let flooded = false;
    const stopWatch = watchOutput(shell, () => {
      flooded = true;
      cutShort();
    });
    try {
      let code = -1;
      try {
        ({ pid, code } = await shell.run(
          scriptArgv(script, input),
          scriptEnv(req, requestId, input, marker),
        ));
      } catch (e) {
        // The shell died: killed here (cut short: answered below) or by the script itself.
        killAll();
        if (!flooded && !signal.aborted) {
          ctx.log.error("script shell failed", { requestId, error: e });
          return errorResponse(500, "start.sh could not be run", (e as Error).message, {
            [REQUEST_ID_HEADER]: requestId,
          });
        }
      }
      stopWatch();
      return await answerFromFiles(ctx, shell, code, flooded);
    } finally {
      stopWatch();
      signal.removeEventListener("abort", onAbort);
      // Whatever the script left running dies before the shell runs the next request; off
      // the answer's path, which need not wait for the scan of /proc.
      shells.release(shell, () => {
        killAll();
        running.delete(folder);
      });
      track(new Promise<void>((resolve) => setTimeout(() => resolve(shells.clean(shell)), 0)));
    }
  };

  const run = (req: ScriptRequest, ctx: RequestContext, folder: string, input: string) =>
    spawn ? runSpawned(spawn, req, ctx, folder, input) : runInShell(req, ctx, folder, input);

  return {
    receive,
    settled: async () => {
      stopped = true;
      dropSpare();
      while (cleanups.size > 0) await Promise.all(cleanups);
      await shells.close();
    },
  };
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
