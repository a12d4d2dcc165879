/**
 * Runs the real fizzlet (`deno run -A main.ts fizzlet --port 0 …`) as a child process for
 * the fizzlet tests: learns its port from the first log line, keeps its JSON log lines,
 * and stops it together with everything it started (its own process group), also when a
 * test fails half-way.
 */

import { Buffer } from "node:buffer";
import type http from "node:http";

const ROOT = new URL("../../", import.meta.url).pathname;
const DENO = Deno.execPath();

export interface RunningFizzlet {
  url: string;
  port: number;
  pid: number;
  /** Parsed JSON log lines so far (non-JSON lines are kept as {raw}). */
  logs(): Record<string, unknown>[];
  /** Waits until a log line matches, or throws after `timeoutMs`. */
  waitForLog(
    match: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  /** Sends `signal` (default SIGTERM) and resolves with the exit code. */
  stop(signal?: Deno.Signal): Promise<number>;
  exited: Promise<Deno.CommandStatus>;
  /** Kills the whole process group (cleanup; safe to call twice). */
  kill(): Promise<void>;
}

export interface FizzletRun {
  dir: string;
  args?: string[];
  env?: Record<string, string>;
  /** A command the fizzlet runs under, e.g. `unshare … tini --` (its argv before Deno's). */
  wrap?: string[];
  /** Folders the test made for this run, removed here if the fizzlet fails to start. */
  removeOnFailure?: string[];
}

export async function startFizzlet(run: FizzletRun): Promise<RunningFizzlet> {
  const args = run.args ?? [];
  // The default app port (8080) may be anyone's on a shared machine: in auto mode a stranger's
  // server there would turn a command-mode test into a proxy.
  const appPort = args.includes("--app-port") ? [] : ["--app-port", String(freePort())];
  const argv = [
    ...(run.wrap ?? []),
    DENO,
    "run",
    "-A",
    `${ROOT}main.ts`,
    "fizzlet",
    "--port",
    "0",
    ...appPort,
    ...args,
  ];
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    cwd: run.dir,
    // The app port defaults to a free one, not 8080: in auto mode the fizzlet proxies to
    // whatever listens there, and the host may run anything on 8080. An --app-port in
    // `args` or F2S_APP_PORT in `env` still wins.
    env: { F2S_LOG_LEVEL: "info", F2S_APP_PORT: String(freePort()), ...run.env },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    detached: true,
  }).spawn();
  const lines: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  const reading = (async () => {
    const decoder = new TextDecoderStream();
    let pending = "";
    for await (const text of child.stderr.pipeThrough(decoder)) {
      pending += text;
      let nl;
      while ((nl = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        try {
          lines.push(JSON.parse(line));
        } catch {
          lines.push({ raw: line });
        }
        for (const w of waiters) w();
      }
    }
    for (const w of waiters) w();
  })();
  const exited = child.status;
  let done = false;
  exited.then(() => done = true);

  const waitForLog: RunningFizzlet["waitForLog"] = (match, timeoutMs = 15_000) =>
    new Promise((resolve, reject) => {
      const check = () => {
        const found = lines.find(match);
        if (found) {
          cleanup();
          resolve(found);
        } else if (done) {
          cleanup();
          reject(new Error(`fizzlet exited before the expected log line:\n${dump(lines)}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`expected log line not seen in ${timeoutMs}ms:\n${dump(lines)}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });

  const kill = async () => {
    // The fizzlet's own group, and the groups of apps it started (they have their own).
    const groups = [child.pid, ...lines.filter((l) => l.msg === "app started").map((l) => l.pid)];
    for (const pid of groups) {
      if (pid === child.pid && done) continue;
      try {
        Deno.kill(-(pid as number), "SIGKILL");
      } catch {
        // Gone already.
      }
    }
    await exited;
    await reading;
  };

  let first;
  try {
    first = await waitForLog((l) => l.msg === "listening", 20_000);
    if (lines[0] !== first) throw new Error(`"listening" was not the first line:\n${dump(lines)}`);
  } catch (e) {
    await kill();
    for (const dir of run.removeOnFailure ?? []) await Deno.remove(dir, { recursive: true });
    throw e;
  }
  const port = first.port as number;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    pid: child.pid,
    logs: () => lines,
    waitForLog,
    exited,
    kill,
    async stop(signal = "SIGTERM") {
      if (!done) child.kill(signal);
      const status = await exited;
      await kill();
      return status.code;
    },
  };
}

function dump(lines: Record<string, unknown>[]): string {
  return lines.slice(-30).map((l) => JSON.stringify(l)).join("\n");
}

/** A temporary function folder with `files` (name → content; start.sh made executable). */
export async function functionDir(files: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "f2s-fizzlet-test-" });
  for (const [name, content] of Object.entries(files)) {
    await Deno.writeTextFile(`${dir}/${name}`, content, {
      mode: name.endsWith(".sh") ? 0o755 : 0o644,
    });
  }
  return dir;
}

/** A port nothing listens on right now. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * Writes `total` bytes of 'a' to a node:http request, 1 MiB at a time as it drains (never
 * held whole), then ends it.
 */
export function sendChunks(req: http.ClientRequest, total: number): void {
  const chunk = Buffer.alloc(1024 * 1024, 97);
  let sent = 0;
  const pump = () => {
    while (sent < total) {
      const n = Math.min(chunk.length, total - sent);
      sent += n;
      if (!req.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
        return req.once("drain", pump);
      }
    }
    req.end();
  };
  pump();
}

export const GiB = 1024 * 1024 * 1024;
/**
 * Far below 1 GiB, so a fizzlet that buffered either body fails. What it does use is the
 * runtime (~60 MiB) plus garbage the V8 collector has not reclaimed yet (~100-250 MiB here,
 * the same after 1 GiB as after 4 GiB).
 */
export const MEMORY_LIMIT = 450 * 1024 * 1024;

/** Peak resident memory of a process in bytes (VmHWM). */
export async function peakMemory(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const m = /VmHWM:\s+(\d+) kB/.exec(status);
  if (!m) throw new Error(`no VmHWM for ${pid}`);
  return Number(m[1]) * 1024;
}

/** True while a process with this pid runs (a zombie waiting to be reaped counts as gone). */
export function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // The state follows the command name, which is in parentheses and may hold spaces.
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

export const EXAMPLES = `${ROOT}examples`;

/** Polls `check` until it is true or `timeoutMs` passes. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
}

/** Pids that processes wrote into `folder`, one file each, once every file is there. */
export async function pidsIn(folder: string, names: string[]): Promise<number[]> {
  await eventually(
    async () => (await Promise.all(names.map((n) => written(`${folder}/${n}`)))).every(Boolean),
    5000,
    `pid files ${names.join(", ")}`,
  );
  return Promise.all(names.map(async (n) => Number(await Deno.readTextFile(`${folder}/${n}`))));
}

function written(path: string): Promise<boolean> {
  return Deno.stat(path).then((s) => s.size > 0, () => false);
}

/**
 * The request folder the fizzlet `pid` keeps ready in /dev/shm (file mode): the one whose
 * input.json it holds open; undefined when there is none.
 */
export async function readyFolder(pid: number): Promise<string | undefined> {
  for await (const entry of Deno.readDir(`/proc/${pid}/fd`)) {
    const target = await Deno.readLink(`/proc/${pid}/fd/${entry.name}`).catch(() => "");
    const m = /^(\/dev\/shm\/f2s-request-[^/]+)\/input\.json$/.exec(target);
    if (m) return m[1];
  }
  return undefined;
}
