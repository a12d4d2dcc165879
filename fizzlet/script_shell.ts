/**
 * Long-lived `sh` processes that start command-mode scripts, one request at a time each.
 *
 * Why: starting `setsid start.sh` with Deno.Command per request cost the fizzlet ~0.6 ms of
 * main-thread time (the spawn blocks the event loop until the child has exec'd) and the
 * `setsid` program ~0.8 ms of CPU more, three times of-watchdog's fork. A shell that is
 * already running forks itself (small) and execs start.sh; the fizzlet only writes a line
 * and reads two (bench/RESULTS.md has the figures).
 *
 * Each shell runs in its own session, made once when it starts, and serves one request at a
 * time: everything in that session besides the shell belongs to the current request, so a
 * sweep (common/sweep.ts, with the shell as `keep`) still kills the whole process tree. The script's
 * stdin is /dev/null and its stdout and stderr go to files in the shell's private folder
 * (0700, in memory under /dev/shm when it is large enough: files on a disk per request cost
 * the shell ~0.15 ms more), made anew per request; the shell's own pipes are never the script's.
 *
 * The protocol: the fizzlet writes the request's command (see `jobText`) to the file `job` in
 * that folder, every value single-quoted (nothing inside single quotes is special to sh), then
 * the line `<token> <nonce>` to the shell, which sources `job` when the token is the one the
 * fizzlet sent first. The line is short on purpose: sh reads its input one byte per system
 * call, ~0.3 µs a byte, and the command itself is ~400 bytes. The shell answers one line,
 * `x <nonce> <pid> <status>`, when the script ended (one wake-up of the fizzlet per request:
 * a request cut short kills the shell, see command.ts, so it needs no pid before). Lines without the
 * current nonce are ignored, so a script that writes into the shell's pipe cannot answer for a
 * later request, nor (without the token, which only travels through that pipe) start anything.
 * A script may rewrite `job` (same user), but what it left running is swept before the fizzlet
 * writes the next one.
 */

import { join } from "node:path";
import { roomyShm } from "./request_files.ts";

/**
 * The shell's loop ($1: its folder): each line `<token> <nonce>` runs the command in `job`,
 * only when the token is the one the fizzlet sent first. A script can write into its shell's
 * input through /proc/<ppid>/fd/0 (same user), but not read the token from the shell's memory.
 */
const LOOP = 'IFS= read -r t; echo "ready $$"\n' +
  'while read -r k n; do [ "$k" = "$t" ] || continue; . "$1/job"; ' +
  'wait $!; echo "x $n $! $?"; done';

/** A shell waiting for, or running, one script. */
export interface ScriptShell {
  /** The shell's pid: also its session and process group. */
  readonly pid: number;
  /** The file the script's stdout goes to, and its stderr. */
  readonly stdout: string;
  readonly stderr: string;
  /** False once the shell has exited or misbehaved: it must not be reused. */
  readonly usable: boolean;
  /**
   * Starts `argv` with `env` (on top of the fizzlet's); resolves, when it has ended, with the
   * script's pid and its exit status as sh reports it (128 + n: killed by signal n); rejects
   * when the shell exits first.
   */
  run(
    argv: string[],
    env: Record<string, string>,
  ): Promise<{ pid: number; code: number }>;
  /** Kills the shell at once (not what it started): it is not reused. */
  kill(): void;
  /** Ends the shell (closing its input) and removes its folder. */
  close(): Promise<void>;
}

/** Quotes `value` for sh: nothing inside single quotes is special but the quote itself. */
export function shellQuote(value: string): string {
  if (/[\n\r\0]/.test(value)) throw new Error("a line break or NUL cannot go to the script shell");
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/** The text of `job`: starts one script in the background (the loop reports on `$!`). */
export function jobText(
  argv: string[],
  env: Record<string, string>,
  stdout: string,
  stderr: string,
): string {
  const assigns = Object.entries(env).map(([k, v]) => {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`invalid variable name ${k}`);
    return `${k}=${shellQuote(v)}`;
  });
  return `${assigns.join(" ")} ${argv.map(shellQuote).join(" ")} </dev/null >${
    shellQuote(stdout)
  } 2>${shellQuote(stderr)} &\n`;
}

function removeIfThere(path: string): void {
  try {
    Deno.removeSync(path, { recursive: true });
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

let inMemory: boolean | undefined;

/** A private folder for a shell, in memory when /dev/shm is large enough and takes one. */
async function shellFolder(): Promise<string> {
  inMemory ??= roomyShm();
  if (inMemory) {
    try {
      return await Deno.makeTempDir({ dir: "/dev/shm", prefix: "f2s-shell-" });
    } catch {
      inMemory = false;
    }
  }
  return await Deno.makeTempDir({ prefix: "f2s-shell-" });
}

/**
 * Starts a shell in its own session (through `setsid`, the program, when given; else with
 * Deno's `detached`), in `cwd`, and waits until it is ready.
 */
export async function startShell(cwd: string, setsid: string | undefined): Promise<ScriptShell> {
  const folder = await shellFolder();
  const child = new Deno.Command(setsid ?? "sh", {
    args: setsid ? ["sh", "-c", LOOP, "sh", folder] : ["-c", LOOP, "sh", folder],
    cwd,
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
    detached: !setsid,
  }).spawn();
  const writer = child.stdin.getWriter();
  const reader = child.stdout.getReader();
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  let buffered = "";
  let usable = true;
  let counter = 0;
  const nextLine = async (): Promise<string> => {
    for (;;) {
      const nl = buffered.indexOf("\n");
      if (nl >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        return line;
      }
      const { value, done } = await reader.read();
      if (done) {
        usable = false;
        throw new Error("the script shell exited");
      }
      buffered += decoder.decode(value, { stream: true });
      // A script that floods the shell's pipe must not grow this without bound.
      if (buffered.length > 65536) buffered = buffered.slice(-4096);
    }
  };
  /** The next line tagged `tag nonce`, the rest of it. */
  const expect = async (tag: string, nonce: string): Promise<string> => {
    const prefix = `${tag} ${nonce} `;
    for (;;) {
      const line = await nextLine();
      if (line.startsWith(prefix)) return line.slice(prefix.length);
    }
  };
  const token = crypto.randomUUID();
  let pid: number;
  try {
    await writer.write(encoder.encode(token + "\n"));
    const ready = await nextLine();
    if (!ready.startsWith("ready ")) throw new Error(`unexpected first line ${ready}`);
    pid = Number(ready.slice(6));
  } catch (e) {
    try {
      child.kill("SIGKILL");
    } catch {
      // Gone.
    }
    await child.status;
    await Deno.remove(folder, { recursive: true }).catch(() => {});
    throw new Error(`could not start the script shell: ${(e as Error).message}`);
  }
  const stdout = join(folder, "stdout");
  const stderr = join(folder, "stderr");
  const job = join(folder, "job");
  let closing: Promise<void> | undefined;
  return {
    pid,
    stdout,
    stderr,
    get usable() {
      return usable;
    },
    run(argv, env) {
      const nonce = `${++counter}.${crypto.randomUUID()}`;
      let written: Promise<void>;
      try {
        // What the last script may have put in their place (a FIFO would block the fizzlet's
        // or the shell's next open, a link redirect it) goes first; its processes are swept
        // by now. `job` is then made anew (O_EXCL: never through a link). Small, in memory
        // and synchronous on purpose: cheaper than a thread-pool trip.
        for (const path of [job, stdout, stderr]) removeIfThere(path);
        Deno.writeTextFileSync(job, jobText(argv, env, stdout, stderr), {
          mode: 0o600,
          createNew: true,
        });
        written = writer.write(encoder.encode(`${token} ${nonce}\n`));
      } catch (e) {
        written = Promise.reject(e);
      }
      written = written.catch((e) => {
        usable = false;
        throw e;
      });
      const exited = written.then(async () => {
        const [pid, code] = (await expect("x", nonce)).split(" ").map(Number);
        return { pid, code };
      });
      exited.catch(() => usable = false);
      return exited;
    },
    kill() {
      usable = false;
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // Gone already.
      }
    },
    close() {
      closing ??= (async () => {
        usable = false;
        await writer.close().catch(() => {});
        // The loop ends at the end of its input; a shell stuck past that is killed.
        const timer = setTimeout(() => {
          try {
            Deno.kill(-pid, "SIGKILL");
          } catch {
            // Gone.
          }
        }, 2000);
        await reader.cancel().catch(() => {});
        await child.status;
        clearTimeout(timer);
        await Deno.remove(folder, { recursive: true }).catch(() => {});
      })();
      return closing;
    },
  };
}

export interface ShellPool {
  /** An idle shell, else one whose last request still awaits its cleanup (run now), else a new one. */
  acquire(): Promise<ScriptShell>;
  /**
   * Gives `shell` back; `cleanup` (the sweep of what its request left running) must run before
   * it serves again: at the latest when `clean(shell)` is called, sooner if a request needs it.
   */
  release(shell: ScriptShell, cleanup: () => void): void;
  clean(shell: ScriptShell): void;
  close(): Promise<void>;
}

/** Shells to hand out, started as needed (at most as many as requests run at once). */
export function createShellPool(cwd: string, setsid: string | undefined): ShellPool {
  const idle: ScriptShell[] = [];
  const dirty = new Map<ScriptShell, () => void>();
  const all = new Set<ScriptShell>();
  let closed = false;
  const clean = (shell: ScriptShell) => {
    const cleanup = dirty.get(shell);
    if (!cleanup) return;
    dirty.delete(shell);
    try {
      cleanup();
    } finally {
      if (shell.usable && !closed) idle.push(shell);
      else {
        all.delete(shell);
        shell.close().catch(() => {});
      }
    }
  };
  return {
    async acquire() {
      if (idle.length === 0) {
        const [first] = dirty.keys();
        if (first) clean(first);
      }
      const shell = idle.pop() ?? await startShell(cwd, setsid);
      all.add(shell);
      if (closed) {
        await shell.close();
        throw new Error("the fizzlet is stopping");
      }
      return shell;
    },
    release(shell, cleanup) {
      dirty.set(shell, cleanup);
    },
    clean,
    async close() {
      closed = true;
      for (const shell of [...dirty.keys()]) clean(shell);
      idle.length = 0;
      await Promise.all([...all].map((s) => s.close()));
      all.clear();
    },
  };
}
