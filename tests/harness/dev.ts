/**
 * Starts `f2s dev` as a real child process for end-to-end tests and stops it again,
 * checking that no process it started survives. Other test suites (auth, autoscaling,
 * kafka, UI) use it the same way.
 */

const ROOT = new URL("../../", import.meta.url).pathname;

export interface DevServer {
  url: string;
  port: number;
  pid: number;
  /** Everything the server wrote to stderr so far (JSON log lines). */
  logs(): string[];
  /** Sends a signal and waits for exit; returns the exit code. */
  stop(signal?: Deno.Signal): Promise<number>;
  /** Resolves with the exit code when the process ends on its own. */
  exited: Promise<number>;
}

export interface DevOptions {
  functionsDir: string;
  /** config.yaml text; written to a temp file. */
  config?: string;
  env?: Record<string, string>;
  args?: string[];
  /** Fixed port (default: any free one). */
  port?: number;
  /** How long start-up may take. */
  timeoutMs?: number;
}

export async function startDev(options: DevOptions): Promise<DevServer> {
  const args = [
    "run",
    "-A",
    `${ROOT}main.ts`,
    "dev",
    "--functions",
    options.functionsDir,
    "--port",
    String(options.port ?? 0),
  ];
  let configFile: string | undefined;
  if (options.config !== undefined) {
    configFile = await Deno.makeTempFile({ suffix: ".yaml" });
    await Deno.writeTextFile(configFile, options.config);
    args.push("--config", configFile);
  }
  args.push(...(options.args ?? []));
  const child = new Deno.Command(Deno.execPath(), {
    args,
    env: { F2S_LOG_LEVEL: "info", ...options.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const logs: string[] = [];
  const exited = child.status.then((s) => s.code);
  collect(child.stderr, (line) => logs.push(line));
  let resolvePort: (port: number) => void;
  const portFound = new Promise<number>((r) => (resolvePort = r));
  collect(child.stdout, (line) => {
    const m = /listening on http:\/\/[^:]+:(\d+)/.exec(line);
    if (m) resolvePort(Number(m[1]));
  });
  const timeout = options.timeoutMs ?? 30_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const port = await Promise.race([
    portFound,
    exited.then((code) => {
      throw new Error(`f2s dev exited with ${code} before listening:\n${logs.join("\n")}`);
    }),
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`f2s dev did not listen within ${timeout} ms`)),
        timeout,
      );
    }),
  ]).catch(async (e) => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await exited;
    if (configFile) await Deno.remove(configFile).catch(() => {});
    throw e;
  }).finally(() => clearTimeout(timer));
  let stopped: Promise<number> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    pid: child.pid,
    logs: () => [...logs],
    exited,
    stop(signal: Deno.Signal = "SIGTERM") {
      if (stopped) return stopped;
      stopped = (async () => {
        try {
          child.kill(signal);
        } catch {
          // already gone
        }
        const kill = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch {
            // gone
          }
        }, 30_000);
        const code = await exited;
        clearTimeout(kill);
        if (configFile) await Deno.remove(configFile).catch(() => {});
        return code;
      })();
      return stopped;
    },
  };
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

/** Polls `check` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(
  what: string,
  check: () => T | Promise<T>,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last}` : ""}`);
}
