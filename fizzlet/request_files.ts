/**
 * The files of one command-mode request: its private folder, the input written into it, the
 * script's output read back, and the folder removed. Through libc (Deno's FFI) where it can,
 * else Deno's own file API, with the same results.
 *
 * Why: each is one Deno op of 5 to 20 µs (more under load; removing the folder measured ~45
 * µs at 8 connections), and a request made six of them: about a sixth of the fizzlet's time
 * per command-mode request. The libc calls cost 1 to 3 µs each (session 7, bench/RESULTS.md).
 *
 * Reading output: the script (same user) may have put a FIFO, a link or a device in place of
 * its output files. They are opened with O_NOFOLLOW|O_NONBLOCK (a FIFO opens at once, a link
 * not at all) and only a regular file is read, judged (fstat) on the open descriptor itself,
 * so nothing can be swapped in between the check and the read.
 */

import { openLibc } from "../common/libc.ts";

/** A file read back: its size, and its bytes when it was small enough to read at once. */
export interface Output {
  size: number;
  /** Undefined when `size` is over the limit given to `readOutput`. */
  bytes?: Uint8Array<ArrayBuffer>;
}

/** A file made before its bytes are known: written, then closed (once each). */
export interface NewFile {
  write(bytes: Uint8Array): void;
  close(): void;
}

export interface RequestFiles {
  /** A new private (0700) folder under `parent`, named `prefix` + random characters. */
  makeFolder(parent: string, prefix: string): string;
  /** Writes `bytes` to a new file (0600) at `path`; throws if something is there already. */
  writeNew(path: string, bytes: Uint8Array): void;
  /** A new file (0600) at `path`, open for writing; throws if something is there already. */
  createNew(path: string): NewFile;
  /**
   * The regular file at `path`, its bytes read when it holds at most `limit`; undefined when
   * there is none, or it is not a regular file (a FIFO, a link, a device).
   */
  readOutput(path: string, limit: number): Output | undefined;
  /**
   * The first `size` bytes of the regular file at `path` in chunks, read off the event loop;
   * nothing when it is not (or no longer) a regular file. For outputs too large for `readOutput`.
   */
  readChunks(path: string, size: number): AsyncGenerator<Uint8Array>;
  /** Removes `folder` with the `names` in it, and anything else the script left there. */
  removeFolder(folder: string, names: string[]): void;
}

const SYMBOLS = {
  mkdtemp: { parameters: ["buffer"], result: "pointer" },
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  read_off_loop: {
    name: "read",
    parameters: ["i32", "buffer", "usize"],
    result: "isize",
    nonblocking: true,
  },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  fstat: { parameters: ["i32", "buffer"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  unlink: { parameters: ["buffer"], result: "i32" },
  rmdir: { parameters: ["buffer"], result: "i32" },
} as const;

const O_RDONLY = 0;
const O_WRONLY = 1;
const O_CREAT = 0o100;
const O_EXCL = 0o200;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
/** O_NOFOLLOW is one of the few flags whose value differs between Linux's architectures. */
const O_NOFOLLOW = Deno.build.arch === "aarch64" ? 0o100000 : 0o400000;
/** Where st_mode and st_size sit in struct stat (glibc 2.33+ exports fstat itself). */
const STAT = Deno.build.arch === "aarch64"
  ? { bytes: 128, mode: 16, size: 48 }
  : { bytes: 144, mode: 24, size: 48 };
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;

const encoder = new TextEncoder();
/** Chunks of large outputs, read off the event loop one at a time. */
const CHUNK = 256 * 1024;

function denoFiles(): RequestFiles {
  return {
    makeFolder: (parent, prefix) => Deno.makeTempDirSync({ dir: parent, prefix }),
    writeNew: (path, bytes) => Deno.writeFileSync(path, bytes, { createNew: true, mode: 0o600 }),
    createNew(path) {
      const file = Deno.openSync(path, { write: true, createNew: true, mode: 0o600 });
      let closed = false;
      return {
        write(bytes) {
          for (let at = 0; at < bytes.length;) at += file.writeSync(bytes.subarray(at));
        },
        close() {
          if (!closed) file.close();
          closed = true;
        },
      };
    },
    readOutput(path, limit) {
      let info;
      try {
        info = Deno.lstatSync(path);
      } catch {
        return undefined;
      }
      if (!info.isFile) return undefined;
      return info.size > limit ? { size: info.size } : {
        size: info.size,
        bytes: info.size === 0 ? new Uint8Array() : Deno.readFileSync(path),
      };
    },
    async *readChunks(path, size) {
      if (!Deno.lstatSync(path).isFile) return;
      using file = await Deno.open(path);
      const buffer = new Uint8Array(CHUNK);
      for (let left = size; left > 0;) {
        const n = await file.read(buffer.subarray(0, Math.min(left, buffer.length)));
        if (n === null) return;
        left -= n;
        yield buffer.slice(0, n);
      }
    },
    removeFolder: (folder) => Deno.removeSync(folder, { recursive: true }),
  };
}

function libcFiles(libc: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"]): RequestFiles {
  // Off V8's heap and reused: every call is synchronous.
  const pathBytes = new Uint8Array(new ArrayBuffer(4096));
  /** `path` as a C string in pathBytes (a second one after `at`), or an error. */
  const cPath = (path: string, at = 0): Uint8Array => {
    const room = pathBytes.subarray(at, pathBytes.length - 1);
    const { read, written } = encoder.encodeInto(path, room);
    if (read < path.length || path.includes("\0")) throw new Error(`path too long: ${path}`);
    pathBytes[at + written] = 0;
    return pathBytes.subarray(at, at + written + 1);
  };
  const stat = new Uint8Array(new ArrayBuffer(STAT.bytes + 64));
  const statView = new DataView(stat.buffer);
  const fallback = denoFiles();
  /**
   * A descriptor on the regular file at `path` (its stat in `stat`), else undefined: opened
   * without following a link and without waiting for a FIFO's writer, judged by fstat on
   * that very descriptor.
   */
  const openRegular = (path: string): number | undefined => {
    const fd = libc.open(cPath(path), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0);
    if (fd < 0) return undefined;
    if (
      libc.fstat(fd, stat) !== 0 ||
      (statView.getUint32(STAT.mode, true) & S_IFMT) !== S_IFREG
    ) {
      libc.close(fd);
      return undefined;
    }
    return fd;
  };
  const createNew = (path: string): NewFile => {
    let fd = libc.open(cPath(path), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600);
    if (fd < 0) return fallback.createNew(path); // it says why
    return {
      write(bytes) {
        for (let at = 0; at < bytes.length;) {
          const n = Number(libc.write(fd, bytes.subarray(at), BigInt(bytes.length - at)));
          if (n <= 0) throw new Error(`could not write ${path}`);
          at += n;
        }
      },
      close() {
        // Once only: a second close could hit a descriptor opened since under the same number.
        if (fd < 0) return;
        libc.close(fd);
        fd = -1;
      },
    };
  };
  return {
    makeFolder(parent, prefix) {
      const template = cPath(`${parent}/${prefix}XXXXXX`);
      if (libc.mkdtemp(template) === null) return fallback.makeFolder(parent, prefix);
      return new TextDecoder().decode(template.subarray(0, template.length - 1));
    },
    writeNew(path, bytes) {
      const file = createNew(path);
      try {
        file.write(bytes);
      } finally {
        file.close();
      }
    },
    createNew,
    readOutput(path, limit) {
      const fd = openRegular(path);
      if (fd === undefined) return undefined;
      try {
        const size = Number(statView.getBigInt64(STAT.size, true));
        if (size > limit) return { size };
        const bytes = new Uint8Array(new ArrayBuffer(size));
        let at = 0;
        while (at < size) {
          const n = Number(libc.read(fd, bytes.subarray(at), BigInt(size - at)));
          if (n < 0) return undefined;
          if (n === 0) break; // shorter by now
          at += n;
        }
        return { size, bytes: at === size ? bytes : bytes.slice(0, at) };
      } finally {
        libc.close(fd);
      }
    },
    async *readChunks(path, size) {
      const fd = openRegular(path);
      if (fd === undefined) return;
      try {
        for (let left = size; left > 0;) {
          const buffer = new Uint8Array(new ArrayBuffer(Math.min(left, CHUNK)));
          const n = Number(await libc.read_off_loop(fd, buffer, BigInt(buffer.length)));
          if (n <= 0) return;
          left -= n;
          yield n === buffer.length ? buffer : buffer.slice(0, n);
        }
      } finally {
        libc.close(fd);
      }
    },
    removeFolder(folder, names) {
      for (const name of names) libc.unlink(cPath(`${folder}/${name}`));
      // Anything else in it (what the script made) leaves rmdir failing: Deno's recursive
      // removal then takes all.
      if (libc.rmdir(cPath(folder)) !== 0) fallback.removeFolder(folder, names);
    },
  };
}

/**
 * /dev/shm holds a script's output files only when it is at least this large: each may grow to
 * 64 MiB (the output limit), and a container's default /dev/shm is 64 MiB in all.
 */
const MEMORY_MIN_BYTES = 1024 * 1024 * 1024;

/**
 * True when /dev/shm is a tmpfs of at least MEMORY_MIN_BYTES (from /proc/mounts: the last
 * mount on /dev/shm, the one on top, counts, as a container's is mounted over the host's).
 */
export function roomyShm(): boolean {
  let roomy = false;
  try {
    for (const line of Deno.readTextFileSync("/proc/mounts").split("\n")) {
      const [, mountPoint, type, options] = line.split(" ");
      if (mountPoint !== "/dev/shm") continue;
      const size = /(?:^|,)size=(\d+)([kmg]?)(?:,|$)/.exec(options ?? "");
      const unit = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[size?.[2] ?? ""] ?? 1;
      roomy = type === "tmpfs" && size !== null && Number(size[1]) * unit >= MEMORY_MIN_BYTES;
    }
  } catch {
    // No /proc/mounts: the temp folder.
  }
  return roomy;
}

let cached: RequestFiles | undefined;

/** The libc implementation where Deno's FFI can load libc, else Deno's. */
export function requestFiles(): RequestFiles {
  if (!cached) {
    const libc = openLibc(SYMBOLS);
    cached = libc ? libcFiles(libc.symbols) : denoFiles();
  }
  return cached;
}

/** Deno's implementation, for tests that compare the two. */
export const denoRequestFiles: RequestFiles = denoFiles();
