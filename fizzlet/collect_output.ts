/**
 * File mode's output (the answer is the script's whole stdout once it has exited), collected
 * from its pipes (spawn.ts spawnFed) with plain, non-blocking reads. A run that ends within
 * WHOLE_WAIT_MS is read once, at its end. A longer one gets larger pipe buffers and is read
 * every POLL_MS, so that a full pipe holds it up at most that long; each stream up to `limit`
 * bytes (beyond, `onFlood` is called once and the rest is dropped). stderr goes to
 * `onStderrLine` line by line; stdout past SPILL_AT goes on to a file (`spillTo`), so the
 * fizzlet's memory stays flat whatever the script writes.
 *
 * Why pipes rather than output files: a file per stream was made by the child, read back,
 * measured against the limit and unlinked, ~0.1 ms of the fizzlet's and the child's CPU per
 * request (bench/RESULTS.md, session 9). Why polled rather than streamed: node:net sockets over
 * the pipes cost more per request than the polls of the few long runs, and their reads left
 * tens of MiB for the garbage collector on a flood. As with files, the answer is what the
 * script wrote before it exited: what it left running and still holds a pipe is not waited for
 * (it is swept).
 */

import type { Exit, FedChild } from "./spawn.ts";
import { lineSplitter } from "./lines.ts";
import { deadlines } from "../common/deadlines.ts";
import { concat } from "../common/bytes.ts";

/**
 * How long a run is given to end before its pipes are read while it runs (ms; the shared
 * deadlines fire up to one 10 ms tick late), here and in streaming mode (command_stdin.ts).
 * Most runs end well within it.
 */
export const WHOLE_WAIT_MS = 20;

/** How often a longer run's pipes are read (ms). */
const POLL_MS = 10;

/**
 * A longer run's pipe buffers: a script writing flat out is held up at most POLL_MS per this
 * much (~100 MB/s). Linux's default ceiling for an unprivileged process; where a quota refuses
 * it, the pipe keeps 64 KiB.
 */
const LONG_RUN_PIPE = 1024 * 1024;

/** stdout beyond this many bytes goes on to the spill file. */
export const SPILL_AT = 1024 * 1024;

/** Where the pipes are read into (the calls are synchronous: one serves every run). */
const scratch = new Uint8Array(new ArrayBuffer(64 * 1024));

export interface CollectOptions {
  /** Bytes each of stdout and stderr may hold. */
  limit: number;
  onStderrLine(line: string, truncated: boolean): void;
  /** Called once when either stream is past `limit`. */
  onFlood(): void;
  /** A path for a new file where stdout goes on past SPILL_AT. */
  spillTo: string;
}

export interface Collected {
  exit: Exit;
  /** The bytes, or the file they went on to (`size` bytes); empty when flooded. */
  stdout: Uint8Array | { path: string; size: number };
  flooded: boolean;
  /** Closes the pipes (after the answer: off its path). */
  close(): void;
}

/** Whether `work` settles within `ms`. */
export function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = deadlines.after(ms, () => resolve(false));
    const done = () => {
      timer.cancel();
      resolve(true);
    };
    work.then(done, done);
  });
}

/** `child`'s output once it has exited (see the module's comment). */
export async function collectOutput(child: FedChild, options: CollectOptions): Promise<Collected> {
  const { limit } = options;
  let flooded = false;
  const flood = () => {
    if (flooded) return;
    flooded = true;
    options.onFlood();
  };
  let chunks: Uint8Array[] = [];
  let outBytes = 0;
  let spill: Deno.FsFile | undefined;
  let errBytes = 0;
  const lines = lineSplitter(options.onStderrLine);
  /** Takes what the pipes hold now, up to a full pipe each (a writer as fast cannot hold it). */
  const drain = () => {
    for (let got = 0, n; got < LONG_RUN_PIPE && (n = child.stdout.read(scratch)) > 0; got += n) {
      if (flooded) break;
      outBytes += n;
      if (outBytes > limit) flood();
      else if (spill || outBytes > SPILL_AT) {
        spill ??= Deno.openSync(options.spillTo, { write: true, createNew: true, mode: 0o600 });
        for (const c of chunks) writeAll(spill, c);
        chunks = [];
        writeAll(spill, scratch.subarray(0, n));
      } else chunks.push(scratch.slice(0, n));
    }
    for (let got = 0, n; got < LONG_RUN_PIPE && (n = child.stderr.read(scratch)) > 0; got += n) {
      if (flooded) break;
      errBytes += n;
      if (errBytes > limit) flood();
      else lines.push(scratch.subarray(0, n));
    }
  };

  let exit: Exit;
  if (await settlesWithin(child.exited, WHOLE_WAIT_MS)) exit = await child.exited;
  else {
    child.stdout.resize(LONG_RUN_PIPE);
    child.stderr.resize(LONG_RUN_PIPE);
    const poll = setInterval(() => {
      try {
        drain();
      } catch {
        flood(); // the spill file could not be written: as good as too much
      }
    }, POLL_MS);
    try {
      exit = await child.exited;
    } finally {
      clearInterval(poll);
    }
  }
  try {
    drain(); // what it wrote before it exited
  } catch {
    flood();
  } finally {
    spill?.close();
  }
  lines.end();
  if (flooded) chunks = [];
  return {
    exit,
    stdout: spill && !flooded ? { path: options.spillTo, size: outBytes } : concat(chunks),
    flooded,
    close: () => {
      child.stdout.close();
      child.stderr.close();
    },
  };
}

function writeAll(file: Deno.FsFile, bytes: Uint8Array) {
  for (let at = 0; at < bytes.length;) at += file.writeSync(bytes.subarray(at));
}
