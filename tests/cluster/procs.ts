/**
 * Processes of the test cluster: each started in its own session (so its whole process group
 * can be signalled), with output going to a log file, and recorded with its start time in a
 * pid file so that a later run can end it even after the run that started it crashed.
 */

export interface ProcRecord {
  pid: number;
  /** Kernel start time (clock ticks since boot): tells the recorded process from a reuse. */
  start: string;
  name: string;
}

/** The start time field of /proc/PID/stat, or undefined when the process is gone. */
export function processStart(pid: number): string | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // Fields after the command (which may hold spaces) start after the last ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // state is field 3 of the full line; starttime is field 22.
    if (fields[0] === "Z") return undefined;
    return fields[19];
  } catch {
    return undefined;
  }
}

/** Whether the recorded process still runs (same pid and same start time). */
export function isAlive(rec: ProcRecord): boolean {
  return processStart(rec.pid) === rec.start;
}

export function readPidFile(path: string): ProcRecord[] {
  let text = "";
  try {
    text = Deno.readTextFileSync(path);
  } catch {
    return [];
  }
  return text.split("\n").filter(Boolean).map((line) => {
    const [pid, start, ...name] = line.split(" ");
    return { pid: Number(pid), start, name: name.join(" ") };
  }).filter((r) => Number.isInteger(r.pid) && r.pid > 1);
}

export function appendPidFile(path: string, rec: ProcRecord): void {
  Deno.writeTextFileSync(path, `${rec.pid} ${rec.start} ${rec.name}\n`, { append: true });
}

export interface Started {
  record: ProcRecord;
  child: Deno.ChildProcess;
}

/**
 * Starts `cmd` with `setsid` (new session and process group, pid = group id), stdout and
 * stderr appended to `logFile`, and records it in `pidFile`. With `detached` the process
 * outlives this one (used by `cluster.sh up`).
 */
export async function startProcess(
  name: string,
  cmd: string[],
  opts: {
    logFile: string;
    pidFile: string;
    env?: Record<string, string>;
    clearEnv?: boolean;
    cwd?: string;
    detached?: boolean;
  },
): Promise<Started> {
  // sh opens the log and execs setsid, which execs the command: one pid throughout, and
  // output goes straight to the file, so nothing breaks when this process exits first.
  const child = new Deno.Command("sh", {
    args: ["-c", 'log=$1; shift; exec setsid "$@" >>"$log" 2>&1', "sh", opts.logFile, ...cmd],
    cwd: opts.cwd,
    env: opts.env,
    clearEnv: opts.clearEnv,
    stdin: "null",
    stdout: "null",
    stderr: "null",
    // Not Deno's `detached`: that makes sh a group leader, and setsid would then fork.
  }).spawn();
  if (opts.detached) child.unref();
  let start = processStart(child.pid);
  for (let i = 0; !start && i < 20; i++) {
    await new Promise((r) => setTimeout(r, 5));
    start = processStart(child.pid);
  }
  const record = { pid: child.pid, start: start ?? "0", name };
  appendPidFile(opts.pidFile, record);
  return { record, child };
}

/** Sends `signal` to the process group of `rec` (and to the process itself). */
export function signalGroup(rec: ProcRecord, signal: Deno.Signal): void {
  if (!isAlive(rec)) return;
  for (const target of [-rec.pid, rec.pid]) {
    try {
      Deno.kill(target, signal);
    } catch {
      // Already gone, or not a group leader (then the pid itself was signalled).
    }
  }
}

/** Waits until `rec` is gone or `ms` passed; answers whether it is gone. */
export async function waitGone(rec: ProcRecord, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (isAlive(rec)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

/** SIGTERM to the group, up to `graceMs` to exit, then SIGKILL. */
export async function stopProcess(rec: ProcRecord, graceMs: number): Promise<void> {
  signalGroup(rec, "SIGTERM");
  if (await waitGone(rec, graceMs)) return;
  signalGroup(rec, "SIGKILL");
  await waitGone(rec, 5_000);
}

/**
 * Processes whose command line mentions `text` (e.g. a cluster's folder): catches what a
 * pid file missed, such as a process that forked away from the recorded pid.
 */
export function processesMentioning(text: string): ProcRecord[] {
  const found: ProcRecord[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    const pid = Number(entry.name);
    if (!Number.isInteger(pid) || pid === Deno.pid) continue;
    let cmdline;
    try {
      cmdline = Deno.readTextFileSync(`/proc/${pid}/cmdline`);
    } catch {
      continue;
    }
    if (!cmdline.includes(text)) continue;
    const start = processStart(pid);
    if (start) found.push({ pid, start, name: cmdline.split("\0")[0] });
  }
  return found;
}
