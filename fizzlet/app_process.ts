/**
 * Runs the app of a reverse-proxy function as a child of the fizzlet (`--app-command`), so
 * `f2s dev` and the test kubelet get one process tree per instance, like of-watchdog's
 * fprocess. The app runs via `sh -c` in its own process group with PORT set; its output
 * becomes JSON log lines; when it exits it is restarted with backoff; on stop it gets
 * SIGTERM, then SIGKILL after the grace period, and so does anything it started, also what
 * left its group or session (sweep.ts, marked by F2S_APP_RUN, unique per run).
 */

import type { Logger } from "../common/log.ts";
import { forEachLine } from "./lines.ts";
import { type Marker, sweep, ticksNow } from "../common/sweep.ts";

export interface AppProcessOptions {
  command: string;
  dir: string;
  port: number;
  log: Logger;
  /** Called with true when a process is running, false when it exited. */
  onState?: (running: boolean) => void;
  /** Backoff bounds for restarts, in ms. */
  minBackoff?: number;
  maxBackoff?: number;
}

export interface AppProcess {
  /** Pid of the current process (its process group id too), if one runs. */
  readonly pid: number | undefined;
  /** Stops the app and whatever it started: SIGTERM, then SIGKILL after `grace` ms. */
  stop(grace: number): Promise<void>;
}

/** A run that lasted this long counts as healthy: the next crash restarts quickly again. */
const STABLE_AFTER = 10_000;

function killGroup(pid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}

export function startApp(options: AppProcessOptions): AppProcess {
  const { log } = options;
  const minBackoff = options.minBackoff ?? 200;
  const maxBackoff = options.maxBackoff ?? 10_000;
  let child: Deno.ChildProcess | undefined;
  let stopping = false;
  let wakeUp: (() => void) | undefined;

  const runOnce = async (): Promise<Deno.CommandStatus | undefined> => {
    const since = ticksNow();
    const marker: Marker = { name: "F2S_APP_RUN", value: crypto.randomUUID() };
    try {
      child = new Deno.Command("sh", {
        args: ["-c", options.command],
        cwd: options.dir,
        env: { PORT: String(options.port), [marker.name]: marker.value },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        detached: true,
      }).spawn();
    } catch (e) {
      log.error("app could not be started", { command: options.command, error: e });
      return undefined;
    }
    const pid = child.pid;
    log.info("app started", { pid, command: options.command, appPort: options.port });
    options.onState?.(true);
    const output = Promise.all([
      forEachLine(child.stdout, (line) => log.info("app output", { stream: "stdout", line })),
      forEachLine(child.stderr, (line) => log.info("app output", { stream: "stderr", line })),
    ]).catch(() => {});
    const status = await child.status;
    // Orphans of the app (workers, a shell's children, daemons) must not outlive it or hold
    // its port. It has been waited for: its pid may be someone else's by now (sweep.ts).
    killGroup(pid, "SIGKILL");
    const killed = sweep(pid, since, marker, undefined, undefined, true);
    if (killed > 0) log.info("processes the app left behind killed", { killed });
    await output;
    child = undefined;
    options.onState?.(false);
    return status;
  };

  const loop = async () => {
    let failures = 0;
    while (!stopping) {
      const started = Date.now();
      const status = await runOnce();
      if (stopping) break;
      if (Date.now() - started >= STABLE_AFTER) failures = 0;
      const delay = Math.min(maxBackoff, minBackoff * 2 ** failures);
      failures++;
      log.warn("app exited; restarting", {
        code: status?.code,
        signal: status?.signal ?? undefined,
        restartInMs: delay,
      });
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wakeUp = undefined;
    }
  };
  const done = loop();

  return {
    get pid() {
      return child?.pid;
    },
    async stop(grace) {
      stopping = true;
      wakeUp?.();
      const current = child;
      if (current) {
        log.info("stopping app", { pid: current.pid, graceMs: grace });
        killGroup(current.pid, "SIGTERM");
        let timer: ReturnType<typeof setTimeout> | undefined;
        const exited = await Promise.race([
          current.status.then(() => true),
          new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), grace)),
        ]);
        clearTimeout(timer);
        if (!exited) {
          log.warn("app did not stop within the grace period; killing it", { pid: current.pid });
          killGroup(current.pid, "SIGKILL");
        }
      }
      await done;
    },
  };
}
