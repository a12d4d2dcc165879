/**
 * Starts a command-mode script with libc's `posix_spawn` (through Deno's FFI) in a session of
 * its own, its stdin, stdout and stderr pipes to the fizzlet, and waits for its exit.
 *
 * Why not Deno.Command: a new session needs `detached`, which forks the whole runtime (~0.6 ms
 * of the event loop per request), or the `setsid` program, one more exec (~0.8 ms of CPU); and
 * its pipes are streams, an op per read. Long-lived shells that fork the script
 * (script_shell.ts, now the fallback) cost the fizzlet ~0.5 ms and the shells ~0.25 ms per
 * request. posix_spawn with POSIX_SPAWN_SETSID is one vfork-like clone and one exec: in a loop
 * of spawn, wait, read and remove, 0.2 ms of the fizzlet's CPU per request and nothing besides
 * the script's own (bench/RESULTS.md, session 7). It needs glibc (2.29 for the chdir action)
 * and FFI permission; `spawner()` is undefined without them, and command.ts falls back to the
 * shells.
 *
 * The child gets the signal dispositions and mask of a fresh process (the runtime ignores
 * SIGPIPE and handles others; a script must not inherit that), the fizzlet's environment
 * with the request's variables on top, and the function folder as its working directory.
 *
 * On a 2-core VM each hop between threads costs tens of microseconds, so scripts are spawned
 * on the event loop's thread (the call returns once the child has exec'd, ~0.2 ms) rather than
 * on the blocking pool: with others running too, the pool cost the fizzlet ~80 µs more CPU per
 * request at 8 connections (session 9), and a child cloned on a pool thread while the loop
 * went on held copies of the fizzlet's descriptors until its exec. Only after a spawn that
 * blocked the loop for SLOW_SPAWN_MS (an exec waiting on a slow disk) do the spawns of the next
 * POOL_FOR_MS go to the pool, so that the loop keeps serving meanwhile. Exits are
 * learnt from SIGCHLD: each one polls the running children with WNOHANG (a few µs each),
 * rather than a pool thread blocked in waitpid per child (two thread wake-ups per request).
 * A poll every REAP_POLL_MS backs the signal up, should one ever be missed; its interval also
 * keeps the event loop alive while children run (a signal listener does not).
 */

import { openLibc } from "../common/libc.ts";
import {
  type PipeOutput,
  pipeOutput,
  pipeReadable,
  pipeWritable,
  type RawPipe,
} from "./pipe_streams.ts";

/** How a spawned process ended: `code` as sh reports it (128 + n: killed by signal n). */
export interface Exit {
  code: number;
  signal?: number;
}

export interface Spawned {
  pid: number;
  /** Resolves once the process has exited and been waited for (its pid is then free). */
  exited: Promise<Exit>;
}

/** A child whose stdin, stdout and stderr are pipes to the fizzlet (streaming command mode). */
export interface PipedChild extends Spawned {
  stdin: WritableStream<Uint8Array>;
  stdout: ReadableStream<Uint8Array>;
  stderr: ReadableStream<Uint8Array>;
}

/**
 * A child started with its whole input (spawnFed): what fitted into its stdin pipe was
 * written before the start; `stdin` takes `rest`, and is null when nothing is left (its
 * input is then closed). Its output pipes can be read without waiting (see PipeOutput).
 */
export interface FedChild extends Spawned {
  stdin: WritableStream<Uint8Array> | null;
  rest: Uint8Array;
  stdout: PipeOutput;
  stderr: PipeOutput;
}

/** Pipes for a child and the file actions that hand them over (see makeKit). */
interface Kit {
  fds: Int32Array;
  cwd: string;
  actions: Uint8Array;
}

export interface Spawner {
  /**
   * Starts `argv` (argv[0] an absolute path) in `cwd`, in a new session, with `env` on top of
   * the fizzlet's environment, and pipes for stdin, stdout and stderr whose fizzlet ends are
   * read and written on the event loop (pipe_streams.ts). Rejects when it could not be
   * started (`errno` in the message; ENOEXEC, 8: not a program nor a script with #!).
   */
  spawnPiped(argv: string[], env: Record<string, string>, cwd: string): Promise<PipedChild>;
  /**
   * Whether this process may execute `path` (access X_OK: one libc call, where a Deno stat is
   * an op several times its cost).
   */
  executable(path: string): boolean;
  /** Closes what it keeps ready for the next child (it makes it again when needed). */
  release(): void;
  /** The same, with `input` as the child's whole stdin (see FedChild). */
  spawnFed(
    argv: string[],
    env: Record<string, string>,
    cwd: string,
    input: Uint8Array,
  ): Promise<FedChild>;
}

/** A spawn that held the event loop this long (ms) sends the next ones to the pool... */
const SLOW_SPAWN_MS = 10;
/** ...for this long (ms). */
const POOL_FOR_MS = 1000;

/** How often running children are polled besides SIGCHLD. */
const REAP_POLL_MS = 1000;

const O_RDONLY = 0;
const O_WRONLY = 1;
const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
const POSIX_SPAWN_SETSID = 0x80;
const WNOHANG = 1;
const X_OK = 1;
const O_CLOEXEC = 0o2000000;
const O_NONBLOCK = 0o4000;
const F_SETFL = 4;
const F_SETPIPE_SZ = 1031;
/** glibc's posix_spawn_file_actions_t and posix_spawnattr_t are 80 and 336 bytes; room to spare. */
const STRUCT_BYTES = 1024;
const SIGSET_BYTES = 128;

const SYMBOLS = {
  posix_spawn: {
    parameters: ["buffer", "buffer", "buffer", "buffer", "buffer", "buffer"],
    result: "i32",
    nonblocking: true,
  },
  posix_spawn_now: {
    name: "posix_spawn",
    parameters: ["buffer", "buffer", "buffer", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  posix_spawn_file_actions_init: { parameters: ["buffer"], result: "i32" },
  posix_spawn_file_actions_destroy: { parameters: ["buffer"], result: "i32" },
  posix_spawn_file_actions_addchdir_np: { parameters: ["buffer", "buffer"], result: "i32" },
  posix_spawn_file_actions_adddup2: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  pipe2: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  // fcntl is variadic; its third argument is an int for F_SETFL and F_SETPIPE_SZ.
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  posix_spawnattr_init: { parameters: ["buffer"], result: "i32" },
  posix_spawnattr_setflags: { parameters: ["buffer", "i16"], result: "i32" },
  posix_spawnattr_setsigmask: { parameters: ["buffer", "buffer"], result: "i32" },
  posix_spawnattr_setsigdefault: { parameters: ["buffer", "buffer"], result: "i32" },
  sigemptyset: { parameters: ["buffer"], result: "i32" },
  sigfillset: { parameters: ["buffer"], result: "i32" },
  waitpid: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  access: { parameters: ["buffer", "i32"], result: "i32" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

const encoder = new TextEncoder();

/** NUL-terminated strings in one ArrayBuffer (never on V8's heap: the pointers stay valid). */
interface CStrings {
  bytes: Uint8Array;
  /**
   * The address of each string. As numbers, not bigints (bigint arithmetic was a tenth of a
   * spawn's JavaScript): user-space addresses fit in 47 bits, well within 2^53.
   */
  pointers: number[];
}

function cStrings(strings: string[]): CStrings {
  let room = 0;
  for (const s of strings) {
    if (s.includes("\0")) {
      throw new Error("a NUL byte cannot go to a process's argv or environment");
    }
    room += s.length * 3 + 1;
  }
  const bytes = new Uint8Array(new ArrayBuffer(Math.max(room, 1)));
  const base = Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(bytes)));
  const pointers: number[] = [];
  let at = 0;
  for (const s of strings) {
    pointers.push(base + at);
    at += encoder.encodeInto(s, bytes.subarray(at)).written;
    bytes[at++] = 0;
  }
  return { bytes, pointers };
}

const TWO_32 = 2 ** 32;

/** A NULL-terminated array of pointers (little-endian u64s), as argv and envp are. */
function pointerArray(...lists: number[][]): Uint8Array {
  let n = 1;
  for (const list of lists) n += list.length;
  const words = new Uint32Array(new ArrayBuffer(8 * n));
  let at = 0;
  for (const list of lists) {
    for (const p of list) {
      words[at++] = p % TWO_32;
      words[at++] = Math.floor(p / TWO_32);
    }
  }
  return new Uint8Array(words.buffer);
}

function cString(s: string): Uint8Array {
  if (s.includes("\0")) throw new Error("a NUL byte cannot go to a path");
  const bytes = new Uint8Array(new ArrayBuffer(s.length * 3 + 1));
  return bytes.subarray(0, encoder.encodeInto(s, bytes).written + 1);
}

/** `status` as waitpid filled it in. */
export function exitOf(status: number): Exit {
  const sig = status & 0x7f;
  if (sig === 0) return { code: (status >> 8) & 0xff };
  return { code: 128 + sig, signal: sig };
}

function createSpawner(libc: Libc): Spawner {
  // Set once: a fresh process's signal mask (empty) and dispositions (default for all).
  const attr = new Uint8Array(new ArrayBuffer(STRUCT_BYTES));
  const empty = new Uint8Array(new ArrayBuffer(SIGSET_BYTES));
  const all = new Uint8Array(new ArrayBuffer(SIGSET_BYTES));
  if (
    libc.posix_spawnattr_init(attr) !== 0 || libc.sigemptyset(empty) !== 0 ||
    libc.sigfillset(all) !== 0 || libc.posix_spawnattr_setsigmask(attr, empty) !== 0 ||
    libc.posix_spawnattr_setsigdefault(attr, all) !== 0 ||
    libc.posix_spawnattr_setflags(
        attr,
        POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK,
      ) !== 0
  ) throw new Error("posix_spawnattr setup failed");
  // The fizzlet's environment, encoded once (it does not change while it runs): per request
  // only the pointers to it are copied, less those the request's variables replace.
  const inheritedEnv = Object.entries(Deno.env.toObject());
  const inheritedKeys = inheritedEnv.map(([k]) => k);
  const inherited = cStrings(inheritedEnv.map(([k, v]) => `${k}=${v}`));
  /** Until when (performance.now()) spawns go to the blocking pool (see SLOW_SPAWN_MS). */
  let poolUntil = 0;
  /** Children not yet waited for, by pid: how to settle their `exited`. */
  const running = new Map<number, (exit: Exit) => void>();
  const status = new Int32Array(new ArrayBuffer(4));
  const statusBytes = new Uint8Array(status.buffer);
  let poll: ReturnType<typeof setInterval> | undefined;
  /** Children started since the last poll: the poll stops once a whole interval had none. */
  let startedSincePoll = false;
  /** Waits for every child that has exited (WNOHANG: never blocks). */
  const reap = () => {
    for (const [pid, settle] of running) {
      const r = libc.waitpid(pid, statusBytes, WNOHANG);
      if (r === 0) continue;
      running.delete(pid);
      // -1 (ECHILD): no longer ours to wait for; the exit is unknown.
      settle(r === pid ? exitOf(status[0]) : { code: -1 });
    }
  };
  const pollTick = () => {
    reap();
    if (running.size === 0 && !startedSincePoll) {
      clearInterval(poll);
      poll = undefined;
      dropSpare();
    }
    startedSincePoll = false;
  };
  Deno.addSignalListener("SIGCHLD", reap);
  /**
   * `exited` for a child just started. `raced`: the spawn was awaited, so the child may have
   * exited, and its SIGCHLD been handled, before it was in `running`. A spawn that returned
   * synchronously cannot race: the signal's listener runs after this.
   */
  const waitExit = (pid: number, raced: boolean): Promise<Exit> => {
    const exited = new Promise<Exit>((resolve) => running.set(pid, resolve));
    // One interval for as long as children keep coming, not one per child.
    startedSincePoll = true;
    poll ??= setInterval(pollTick, REAP_POLL_MS);
    if (raced) reap();
    return exited;
  };
  /** The working directory as a C string, kept for the next spawn in the same place. */
  const dirs = new Map<string, Uint8Array>();
  const dirOf = (cwd: string) => {
    let dir = dirs.get(cwd);
    if (!dir) {
      if (dirs.size >= 16) dirs.clear();
      dirs.set(cwd, dir = cString(cwd));
    }
    return dir;
  };
  /**
   * The inherited variables' pointers less those a request's variables replace, kept per set
   * of names (command mode's is the same for every request).
   */
  const keptEnv = new Map<string, number[]>();
  const inheritedLess = (names: string[]) => {
    const key = names.join("\0");
    let kept = keptEnv.get(key);
    if (!kept) {
      const replaced = new Set(names);
      kept = inherited.pointers.filter((_, i) => !replaced.has(inheritedKeys[i]));
      if (keptEnv.size >= 16) keptEnv.clear();
      keptEnv.set(key, kept);
    }
    return kept;
  };

  const dropActions = (actions: Uint8Array) => libc.posix_spawn_file_actions_destroy(actions);

  /** Starts `argv` with `actions` (pipeActions; destroyed here, whatever happens). */
  const start = async (
    argv: string[],
    env: Record<string, string>,
    actions: Uint8Array,
  ): Promise<Spawned> => {
    try {
      const names = Object.keys(env);
      const texts = argv.slice();
      for (const name of names) texts.push(`${name}=${env[name]}`);
      // The request's variables first: the marker is then found early in /proc/<pid>/environ.
      const strings = cStrings(texts);
      const argvArray = pointerArray(strings.pointers.slice(0, argv.length));
      const envArray = pointerArray(strings.pointers.slice(argv.length), inheritedLess(names));
      const pid = new Int32Array(new ArrayBuffer(4));
      const args = [
        new Uint8Array(pid.buffer),
        strings.bytes,
        actions,
        attr,
        argvArray,
        envArray,
      ] as const;
      const started = performance.now();
      const now = started >= poolUntil;
      const errno = now ? libc.posix_spawn_now(...args) : await libc.posix_spawn(...args);
      if (now && performance.now() - started > SLOW_SPAWN_MS) {
        poolUntil = performance.now() + POOL_FOR_MS;
      }
      // Kept alive until the child has exec'd: the pointers above point into them.
      void [strings.bytes, inherited.bytes];
      if (errno !== 0) throw new Error(`posix_spawn ${argv[0]} failed: errno ${errno}`);
      return { pid: pid[0], exited: waitExit(pid[0], !now) };
    } finally {
      dropActions(actions);
    }
  };

  const raw: RawPipe = {
    read: (fd, buf) => Number(libc.read(fd, buf, BigInt(buf.length))),
    close: (fd) => void libc.close(fd),
    resize: (fd, bytes) => libc.fcntl(fd, F_SETPIPE_SZ, bytes) >= 0,
  };
  /**
   * Sets O_NONBLOCK on the fizzlet's end of a new pipe (never the child's: scripts block); its
   * other status flag is its access mode, known.
   */
  const nonBlocking = (fd: number, access: number): boolean =>
    libc.fcntl(fd, F_SETFL, access | O_NONBLOCK) === 0;
  type End = "inWrite" | "outRead" | "errRead";
  /**
   * Three pipes, close-on-exec (the child gets its ends as 0, 1 and 2: dup2 clears the flag
   * there), as [inRead, inWrite, outRead, outWrite, errRead, errWrite]; with `fed`, the
   * fizzlet's ends (inWrite, outRead, errRead) non-blocking. Undefined when they could not
   * all be made (none is left open then).
   */
  const makePipes = (fed: boolean): Int32Array | undefined => {
    const fds = new Int32Array(new ArrayBuffer(24));
    let made = 0;
    for (; made < 3; made++) {
      if (libc.pipe2(new Uint8Array(fds.buffer, 8 * made, 8), O_CLOEXEC) !== 0) break;
    }
    if (
      made === 3 &&
      (!fed || (nonBlocking(fds[1], O_WRONLY) && nonBlocking(fds[2], O_RDONLY) &&
        nonBlocking(fds[4], O_RDONLY)))
    ) return fds;
    for (let i = 0; i < 2 * made; i++) libc.close(fds[i]);
    return undefined;
  };
  /**
   * Pipes made for the next fed child while the last one runs, off the answer's path: at one
   * request at a time the fizzlet is idle then, and pipe2 and fcntl were ~35 µs of each
   * request's latency. Closed when children stop coming (pollTick) or on `release`.
   */
  let spare: Kit | undefined;
  const dropSpare = () => {
    if (spare) {
      for (const fd of spare.fds) libc.close(fd);
      dropActions(spare.actions);
    }
    spare = undefined;
  };
  /**
   * The file actions giving the child its ends of `fds` as 0, 1 and 2, in `cwd`. Destroyed by
   * `start`, or by `dropActions` when never used (glibc copies the paths into them).
   */
  const pipeActions = (fds: Int32Array, cwd: string): Uint8Array => {
    const actions = new Uint8Array(new ArrayBuffer(STRUCT_BYTES));
    if (libc.posix_spawn_file_actions_init(actions) !== 0) {
      throw new Error("posix_spawn_file_actions_init failed");
    }
    if (
      libc.posix_spawn_file_actions_adddup2(actions, fds[0], 0) !== 0 ||
      libc.posix_spawn_file_actions_adddup2(actions, fds[3], 1) !== 0 ||
      libc.posix_spawn_file_actions_adddup2(actions, fds[5], 2) !== 0 ||
      libc.posix_spawn_file_actions_addchdir_np(actions, dirOf(cwd)) !== 0
    ) {
      libc.posix_spawn_file_actions_destroy(actions);
      throw new Error("posix_spawn_file_actions setup failed");
    }
    return actions;
  };
  /**
   * Pipes (makePipes, `fed` or not) with the file actions that hand them over (glibc's adddup2
   * alone makes six syscalls); undefined, nothing left open, when either could not be made.
   */
  const makeKit = (cwd: string, fed: boolean): Kit | undefined => {
    const fds = makePipes(fed);
    if (!fds) return undefined;
    try {
      return { fds, cwd, actions: pipeActions(fds, cwd) };
    } catch {
      for (const fd of fds) libc.close(fd);
      return undefined;
    }
  };
  /**
   * Starts a child on `fds` (makePipes). `beforeStart` may write to the stdin pipe before the
   * child runs, and says whether that was all (its write end is then closed: the child reads
   * to EOF). The fizzlet's ends are taken with `own`; `closeRaw` closes every end not taken.
   */
  const startPiped = async (
    argv: string[],
    env: Record<string, string>,
    fds: Int32Array,
    actions: Uint8Array,
    beforeStart?: (ends: Record<End, number>) => boolean,
  ) => {
    const open = [...fds];
    const closeRaw = () => {
      for (const fd of open.splice(0)) libc.close(fd);
    };
    try {
      const [inRead, inWrite, outRead, outWrite, errRead, errWrite] = fds;
      const ends: Record<End, number> = { inWrite, outRead, errRead };
      /** Takes a fizzlet's end out of those closeRaw closes. */
      const own = (end: End) => {
        const at = open.indexOf(ends[end]);
        if (at < 0) throw new Error(`pipe end ${end} taken twice`);
        return open.splice(at, 1)[0];
      };
      let fed: boolean;
      try {
        fed = beforeStart?.(ends) ?? false;
      } catch (e) {
        dropActions(actions);
        throw e;
      }
      if (fed) {
        open.splice(open.indexOf(inWrite), 1);
        libc.close(inWrite);
      }
      const child = await start(argv, env, actions);
      // The child's ends are the child's now.
      for (const fd of [inRead, outWrite, errWrite]) {
        open.splice(open.indexOf(fd), 1);
        libc.close(fd);
      }
      return { child, own, closeRaw };
    } catch (e) {
      closeRaw();
      throw e;
    }
  };

  return {
    executable: (path) => libc.access(cString(path), X_OK) === 0,
    release: () => dropSpare(),
    async spawnPiped(argv, env, cwd) {
      const kit = makeKit(cwd, false);
      if (!kit) throw new Error("pipe2 or the file actions failed");
      const { child, own, closeRaw } = await startPiped(argv, env, kit.fds, kit.actions);
      try {
        return {
          ...child,
          stdin: pipeWritable(own("inWrite")),
          stdout: pipeReadable(own("outRead")),
          stderr: pipeReadable(own("errRead")),
        };
      } finally {
        closeRaw();
      }
    },
    async spawnFed(argv, env, cwd, input) {
      let written = 0;
      if (spare && spare.cwd !== cwd) dropSpare();
      const kit = spare ?? makeKit(cwd, true);
      spare = undefined;
      if (!kit) throw new Error("pipe2, fcntl or the file actions failed");
      const started = startPiped(argv, env, kit.fds, kit.actions, ({ inWrite }) => {
        // Into the empty pipe before the child runs: non-blocking, so never more than fits.
        while (written < input.length) {
          const n = Number(
            libc.write(inWrite, input.subarray(written), BigInt(input.length - written)),
          );
          if (n <= 0) break;
          written += n;
        }
        return written === input.length;
      });
      // The next child's pipes, made while this one runs (see `spare`).
      spare = makeKit(cwd, true);
      const { child, own, closeRaw } = await started;
      try {
        const outRead = own("outRead");
        const errRead = own("errRead");
        const left = written < input.length;
        return {
          ...child,
          stdin: left ? pipeWritable(own("inWrite")) : null,
          rest: input.subarray(written),
          stdout: pipeOutput(outRead, raw),
          stderr: pipeOutput(errRead, raw),
        };
      } finally {
        closeRaw();
      }
    },
  };
}

let cached: Spawner | null | undefined;

/** The posix_spawn spawner, or undefined where libc or FFI is not there to make one. */
export function spawner(): Spawner | undefined {
  if (cached === undefined) {
    const libc = openLibc(SYMBOLS);
    try {
      cached = libc ? createSpawner(libc.symbols) : null;
    } catch {
      // Its attributes could not be set up: Deno.Command serves.
      cached = null;
    }
  }
  return cached ?? undefined;
}
