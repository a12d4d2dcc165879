/**
 * Kills everything a command-mode script (or an app) started, also what left its process
 * group or its session: a grandchild that calls `setsid`, or a daemon that double-forked away
 * from it. A process group kill misses those, and the fizzlet cannot rely on a cgroup (a
 * container's is usually read-only, `f2s dev` runs without one). The fizzlet sweeps after each
 * run; `f2s dev` after an instance's fizzlet is gone (control/runtime/local.ts).
 *
 * From /proc, a process belongs to the run when it started no earlier than the root process
 * and: it is the root, shares its session or process group, descends from a process that
 * belongs, or carries the run's marker variable (for a request F2S_REQUEST_DIR, unique per
 * request) in its environment. A process that carries the marker of another run still going
 * never belongs, so concurrent requests stay apart even if a pid is reused; a made-up marker
 * protects nothing. What is found is stopped (SIGSTOP:
 * it can no longer fork) and the scan repeats until it finds nothing new; then all of it gets
 * SIGKILL. Only a process that both detached and cleared its environment escapes; a pod's
 * own limits bound that one.
 */

import { ownerGoneSince } from "./owners.ts";
import { procReader } from "./proc_read.ts";
import { sendSignal } from "./signal.ts";

/** /proc's files, read without an exception per process that has gone (proc_read.ts). */
const readProc = procReader();

/** An environment variable the root was started with, unique to its run. */
export interface Marker {
  name: string;
  value: string;
}

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on every Linux ABI). */
const TICKS_PER_SECOND = 100;
/** A bound on rescans, should processes appear faster than they can be stopped. */
const MAX_ROUNDS = 50;
/** Up to this many pids allocated since the root, they are probed one by one (see below). */
const MAX_PROBED = 2000;

interface Stat {
  pid: number;
  ppid: number;
  pgrp: number;
  session: number;
  state: string;
  starttime: number;
}

/** The fields of /proc/<pid>/stat this module needs, or undefined when it is gone. */
function readStat(pid: number): Stat | undefined {
  const text = readProc(`/proc/${pid}/stat`);
  if (text === undefined) return undefined;
  // The command name is in parentheses and may contain spaces or parentheses itself.
  const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return {
    pid,
    state: f[0],
    ppid: Number(f[1]),
    pgrp: Number(f[2]),
    session: Number(f[3]),
    starttime: Number(f[19]),
  };
}

/** Uptime in ms minus performance.now(), read from /proc/uptime at most every RESYNC_MS. */
let uptimeOffset: number | undefined;
let syncedAt = -Infinity;
/** A suspended host's boot clock runs ahead of the monotonic one: re-read it now and then. */
const RESYNC_MS = 10_000;

/**
 * The clock-tick time now on the scale of a process's start time (since boot). Derived from
 * performance.now() (reading /proc/uptime per request cost ~15 µs), re-synced every 10 s.
 */
export function ticksNow(): number {
  const now = performance.now();
  if (uptimeOffset === undefined || now - syncedAt > RESYNC_MS) {
    const uptime = Number(readProc("/proc/uptime")?.split(" ")[0]);
    if (!(uptime > 0)) return 0;
    uptimeOffset = uptime * 1000 - now;
    syncedAt = now;
  }
  // One tick of slack either way: uptime and start times round differently.
  return Math.floor((now + uptimeOffset) * TICKS_PER_SECOND / 1000) - 1;
}

/** The value of the marker variable in a process's environment (undefined: none, unreadable). */
function markerOf(pid: number, name: string): string | undefined {
  const env = readProc(`/proc/${pid}/environ`);
  if (env === undefined) return undefined;
  const key = `${name}=`;
  let at = 0;
  if (!env.startsWith(key)) {
    at = env.indexOf(`\0${key}`) + 1;
    if (at === 0) return undefined;
  }
  const end = env.indexOf("\0", at + key.length);
  return env.slice(at + key.length, end < 0 ? undefined : end);
}

/**
 * The pids that may have been allocated since `first` was: pids count upwards, so while the
 * last one allocated (ns_last_pid) lies a little above it, those in between (threads among
 * them; a thread's stat is its process's); else, after a wrap-around or on a kernel without
 * ns_last_pid, every process in /proc. Listing /proc costs most of a millisecond on a host
 * with a hundred processes, probing the few pids since the root a tenth of that.
 */
function candidates(first: number): number[] {
  // NaN when not available: then /proc is listed.
  const last = Number(readProc("/proc/sys/kernel/ns_last_pid") ?? NaN);
  if (last >= first - 1 && last - first < MAX_PROBED) {
    const out: number[] = [];
    for (let pid = first; pid <= last; pid++) out.push(pid);
    return out;
  }
  return allPids();
}

/** Every pid in /proc. */
function allPids(): number[] {
  const out: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    const c = entry.name.charCodeAt(0);
    if (c >= 48 && c <= 57) out.push(Number(entry.name));
  }
  return out;
}

/** Live processes among `pids` started at or after `since` (clock ticks since boot). */
function recentProcesses(pids: number[], since: number): Stat[] {
  const out: Stat[] = [];
  for (const pid of pids) {
    const stat = readStat(pid);
    if (stat && stat.starttime >= since && stat.state !== "Z" && stat.state !== "X") {
      out.push(stat);
    }
  }
  return out;
}

/** True for this process and its threads: never ours to stop. */
function isSelf(pid: number): boolean {
  if (pid === Deno.pid) return true;
  try {
    Deno.statSync(`/proc/self/task/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/** One run to sweep: see `sweep`. */
export interface Run {
  root: number;
  since: number;
  marker: Marker;
  keep?: number;
  rootReaped?: boolean;
}

/**
 * Sweeps runs that end close together in one pass (sweepRuns), `delayMs` after the first of
 * them ended; each run's promise resolves with how many of its processes were killed. The
 * sets are read when the sweep runs: runs still going then are spared.
 */
export function sweepBatcher(
  others: ReadonlySet<string>,
  otherRoots: ReadonlySet<number>,
  delayMs: number,
): (run: Run) => Promise<number> {
  let ended: { run: Run; settle: (killed: number) => void }[] = [];
  return (run) =>
    new Promise((settle) => {
      if (ended.length === 0) {
        setTimeout(() => {
          const batch = ended;
          ended = [];
          let killed: number[] = [];
          try {
            killed = sweepRuns(batch.map((b) => b.run), others, otherRoots);
          } finally {
            for (const [i, b] of batch.entries()) b.settle(killed[i] ?? 0);
          }
        }, delayMs);
      }
      ended.push({ run, settle });
    });
}

/**
 * Kills `root` (started at `since`, see ticksNow) and every process that belongs to its run,
 * marked with `marker`, but none marked as one of the `others` still going; returns how many
 * processes were killed. With `keep`, the run's session is that process's (a script shell
 * running one request at a time, script_shell.ts): what is in it belongs, `keep` is spared.
 * `rootReaped`: the root has exited and been waited for (its pid is free). `otherRoots`: the
 * roots of other runs, each the leader of its own session; a process in one of those sessions
 * cannot have come from this run (a session cannot be joined), so its environment is not read.
 */
export function sweep(
  root: number,
  since: number,
  marker: Marker,
  others: ReadonlySet<string> = new Set(),
  keep?: number,
  rootReaped = false,
  otherRoots?: ReadonlySet<number>,
): number {
  return sweepRuns([{ root, since, marker, keep, rootReaped }], others, otherRoots)[0];
}

/**
 * `sweep` for several runs in one pass: each pid since the earliest root is read once (and
 * its environment at most once) for all of them, rather than once per run. Returns how many
 * processes each run lost.
 */
export function sweepRuns(
  runs: Run[],
  others: ReadonlySet<string> = new Set(),
  otherRoots?: ReadonlySet<number>,
): number[] {
  const found = runs.map(() => new Set<number>());
  const foreign = runs.map(() => new Set<number>());
  const roots = new Set(runs.map((r) => r.root));
  // A reaped root is not probed (its pid is free): when nothing was allocated after it,
  // nothing can be left and the sweep costs one read.
  const first = Math.min(...runs.map((r) => r.rootReaped ? r.root + 1 : r.root));
  // A reaped root's pid that a process holds again has been reused (pid_max is 32768 on many
  // hosts, and a busy one wraps around in minutes): that process, its children, and a
  // session or group it leads are someone else's. While the root's session or group still
  // had members, the kernel could not have reused the pid; so when no process holds it,
  // the session and group still are the run's.
  // Asked (one read) only of a run that something links to by its root.
  const reusedKnown: (boolean | undefined)[] = [];
  const reused = (i: number) =>
    reusedKnown[i] ??= runs[i].rootReaped === true && readStat(runs[i].root) !== undefined;
  const since = Math.min(...runs.map((r) => r.since));
  // Orphans are adopted by PID 1: when that is this process, its children may be anyone's.
  const adopts = Deno.pid === 1;
  for (let round = 0; round < MAX_ROUNDS; round++) {
    let added = false;
    let pids = candidates(first);
    // Another run's root is a child of the fizzlet leading a session of its own: not ours.
    if (otherRoots) pids = pids.filter((pid) => roots.has(pid) || !otherRoots.has(pid));
    for (const p of recentProcesses(pids, since)) {
      /** The marker in its environment: read once, when some run needs it. */
      let mark: string | undefined | null = null;
      for (const [i, run] of runs.entries()) {
        const { root, keep } = run;
        if (p.starttime < run.since || found[i].has(p.pid) || foreign[i].has(p.pid)) continue;
        if (p.pid === keep) continue;
        const byRoot = (p.pid === root || p.session === root || p.pgrp === root ||
          p.ppid === root) && !reused(i);
        const linked = byRoot || found[i].has(p.ppid) ||
          (keep !== undefined && (p.session === keep || p.pgrp === keep || p.ppid === keep));
        if (!linked) {
          // This process's other children (another run's root, one being started) are not
          // the run's: only PID 1 adopts orphans, which may be.
          if (!adopts && p.ppid === Deno.pid) continue;
          if (p.session !== root && otherRoots?.has(p.session)) continue;
        }
        if (mark === null) mark = markerOf(p.pid, run.marker.name);
        if (mark !== undefined && mark !== run.marker.value && others.has(mark)) {
          foreign[i].add(p.pid);
          continue;
        }
        if (!linked && mark !== run.marker.value) continue;
        if (isSelf(p.pid)) {
          foreign[i].add(p.pid);
          continue;
        }
        sendSignal(p.pid, "SIGSTOP");
        found[i].add(p.pid);
        added = true;
        break; // one run's
      }
    }
    if (!added) break;
  }
  for (const set of found) for (const pid of set) sendSignal(pid, "SIGKILL");
  return found.map((set) => set.size);
}

/**
 * Kills every process whose `name` variable names an owner (owners.ts: "PID-STARTTIME") that
 * no longer runs, if it started after that owner: what an owner killed with -9 left running
 * that could not follow it. `f2s dev` marks its instances so (F2S_DEV_OWNER): a fizzlet stops
 * when its control plane dies (follow_parent.ts), but the app of a fizzlet killed at the same
 * moment (`pkill -9 -f f2s`) has nobody left to stop it. Processes of other users, whose
 * environment cannot be read, are never touched; one that cleared its environment escapes.
 * Stops and rescans as `sweep` does; returns how many were killed.
 */
export function sweepOrphans(name: string): number {
  /** Owner → its start time when gone, undefined when it runs (or is no owner). */
  const gone = new Map<string, number | undefined>();
  const found = new Set<number>();
  for (let round = 0; round < MAX_ROUNDS; round++) {
    let added = false;
    for (const pid of allPids()) {
      if (found.has(pid)) continue;
      const owner = markerOf(pid, name);
      if (owner === undefined) continue;
      if (!gone.has(owner)) gone.set(owner, ownerGoneSince(owner));
      const since = gone.get(owner);
      if (since === undefined || isSelf(pid)) continue;
      const stat = readStat(pid);
      if (!stat || stat.starttime < since || stat.state === "Z" || stat.state === "X") continue;
      sendSignal(pid, "SIGSTOP");
      found.add(pid);
      added = true;
    }
    if (!added) break;
  }
  for (const pid of found) sendSignal(pid, "SIGKILL");
  return found.size;
}
