/**
 * Reads small files under /proc, undefined when there is none (the process has gone).
 *
 * Why not Deno.readTextFileSync alone: the sweep after every command-mode request (sweep.ts)
 * reads the stat of each pid allocated since the script started, and most of them have
 * exited by then; each failed read is an exception (~10 µs), each good one an op (~12 µs for
 * stat, ~16 µs for environ). Through libc's open/read/close (Deno's FFI) a missing file costs
 * ~3 µs and an environ ~7 µs (measured side by side, session 7). Where FFI or libc is not
 * available, Deno's read with the exception caught does the same job.
 */

import { openLibc } from "./libc.ts";

/** The file's text (Latin-1: /proc's stat and environ are bytes), or undefined if absent. */
export type ProcReader = (path: string) => string | undefined;

const SYMBOLS = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
} as const;

const O_RDONLY_CLOEXEC = 0o2000000;
/** Larger files (an environment past this) are read on into a larger buffer. */
const FIRST_BUFFER = 64 * 1024;

function denoReader(): ProcReader {
  return (path) => {
    try {
      return Deno.readTextFileSync(path);
    } catch {
      return undefined;
    }
  };
}

function libcReader(libc: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"]): ProcReader {
  const encoder = new TextEncoder();
  const latin1 = new TextDecoder("latin1");
  // Off V8's heap (a whole ArrayBuffer), reused: the calls are synchronous.
  const pathBytes = new Uint8Array(new ArrayBuffer(4096));
  let data = new Uint8Array(new ArrayBuffer(FIRST_BUFFER));
  return (path) => {
    const { written } = encoder.encodeInto(path, pathBytes.subarray(0, pathBytes.length - 1));
    if (written >= pathBytes.length - 1 || path.includes("\0")) return undefined;
    pathBytes[written] = 0;
    const fd = libc.open(pathBytes, O_RDONLY_CLOEXEC);
    if (fd < 0) return undefined;
    let at = 0;
    try {
      for (;;) {
        if (at === data.length) {
          const more = new Uint8Array(new ArrayBuffer(data.length * 2));
          more.set(data);
          data = more;
        }
        const n = Number(libc.read(fd, data.subarray(at), BigInt(data.length - at)));
        if (n < 0) return undefined; // ESRCH: it exited while being read
        if (n === 0) break;
        at += n;
      }
    } finally {
      libc.close(fd);
    }
    return latin1.decode(data.subarray(0, at));
  };
}

let cached: ProcReader | undefined;

/** The libc reader where Deno's FFI can load libc, else Deno's. */
export function procReader(): ProcReader {
  if (!cached) {
    const libc = openLibc(SYMBOLS);
    cached = libc ? libcReader(libc.symbols) : denoReader();
  }
  return cached;
}

/** Deno's reader, for tests that compare the two. */
export const denoProcReader: ProcReader = denoReader();
