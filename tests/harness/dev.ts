/**
 * Starts the control plane (`f2s dev`, `f2s serve`) as a real child process for
 * end-to-end tests and stops it again, checking that no process it started survives.
 * Every suite (control, auth, autoscaling, kafka, UI, kubernetes) uses it the same way.
 */

export { waitFor } from "./poll.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

export interface ControlPlane {
  url: string;
  port: number;
  pid: number;
  /** Everything the server wrote to stderr so far (JSON log lines). */
  logs(): string[];
  /** Sends a signal and waits for exit (SIGKILL after 30 s); returns the exit code. */
  stop(signal?: Deno.Signal): Promise<number>;
  /** Resolves with the exit code when the process ends on its own. */
  exited: Promise<number>;
}

export interface ControlPlaneOptions {
  /** config.yaml text; written to a temp file removed when the process ends. */
  config?: string;
  env?: Record<string, string>;
  /** How long start-up may take. */
  timeoutMs?: number;
  /** Runs the process under `ulimit -n` this low (through bash, which execs it). */
  ulimitFiles?: number;
}

/**
 * Runs `f2s <command> <args…> [--config FILE]` and waits for its "listening on URL" line
 * on stdout; fails (and kills it) when it exits or does not listen in time.
 */
export async function startControlPlane(
  command: "dev" | "serve",
  args: string[],
  options: ControlPlaneOptions = {},
): Promise<ControlPlane> {
  const argv = ["run", "-A", `${ROOT}main.ts`, command, ...args];
  let configFile: string | undefined;
  if (options.config !== undefined) {
    configFile = await Deno.makeTempFile({ prefix: `f2s-${command}-`, suffix: ".yaml" });
    await Deno.writeTextFile(configFile, options.config);
    argv.push("--config", configFile);
  }
  const limited = options.ulimitFiles !== undefined;
  const child = new Deno.Command(limited ? "bash" : Deno.execPath(), {
    args: limited
      ? ["-c", `ulimit -n ${options.ulimitFiles} && exec "$0" "$@"`, Deno.execPath(), ...argv]
      : argv,
    env: { F2S_LOG_LEVEL: "info", ...options.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const logs: string[] = [];
  const exited = child.status.then((s) => s.code).finally(() =>
    configFile ? Deno.remove(configFile).catch(() => {}) : undefined
  );
  collect(child.stderr, (line) => logs.push(line));
  let resolveUrl: (url: string) => void;
  const listening = new Promise<string>((r) => (resolveUrl = r));
  collect(child.stdout, (line) => {
    const m = /listening on (http:\/\/[^ ]+)/.exec(line);
    if (m) resolveUrl(m[1]);
  });
  const timeout = options.timeoutMs ?? 30_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const url = await Promise.race([
    listening,
    exited.then((code) => {
      throw new Error(`f2s ${command} exited with ${code} before listening:\n${logs.join("\n")}`);
    }),
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`f2s ${command} did not listen within ${timeout} ms`)),
        timeout,
      );
    }),
  ]).catch(async (e) => {
    kill(child, "SIGKILL");
    await exited;
    throw e;
  }).finally(() => clearTimeout(timer));
  let stopped: Promise<number> | undefined;
  return {
    url,
    port: Number(new URL(url).port),
    pid: child.pid,
    logs: () => [...logs],
    exited,
    stop(signal: Deno.Signal = "SIGTERM") {
      stopped ??= (async () => {
        kill(child, signal);
        const force = setTimeout(() => kill(child, "SIGKILL"), 30_000);
        const code = await exited;
        clearTimeout(force);
        return code;
      })();
      return stopped;
    },
  };
}

function kill(child: Deno.ChildProcess, signal: Deno.Signal) {
  try {
    child.kill(signal);
  } catch {
    // already gone
  }
}

export interface DevOptions extends ControlPlaneOptions {
  functionsDir: string;
  args?: string[];
  /** Fixed port (default: any free one). */
  port?: number;
}

/** `f2s dev` on a folder of manifests, listening on 127.0.0.1. */
export function startDev(options: DevOptions): Promise<ControlPlane> {
  return startControlPlane(
    "dev",
    [
      "--functions",
      options.functionsDir,
      "--port",
      String(options.port ?? 0),
      ...(options.args ?? []),
    ],
    options,
  );
}

async function collect(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void) {
  let buffer = "";
  const decoder = new TextDecoder();
  try {
    for await (const chunk of stream) {
      buffer += decoder.decode(chunk, { stream: true });
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        onLine(buffer.slice(0, nl));
        buffer = buffer.slice(nl + 1);
      }
    }
  } catch {
    // process gone
  }
  if (buffer) onLine(buffer);
}

/**
 * Pids of live processes whose command line contains `needle` or whose working directory
 * is inside it (from /proc): how tests prove that no instance outlived its control plane.
 */
export function processesMatching(needle: string): number[] {
  const out: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const cmdline = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`).replaceAll("\0", " ");
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      if (/\) Z /.test(stat)) continue; // zombies are already dead
      let cwd = "";
      try {
        cwd = Deno.readLinkSync(`/proc/${entry.name}/cwd`);
      } catch {
        // not ours to read
      }
      if (cmdline.includes(needle) || cwd.startsWith(needle)) out.push(Number(entry.name));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}
