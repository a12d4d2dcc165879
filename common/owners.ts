/**
 * Folders a process leaves in the temp folder or /dev/shm name it as their owner by its pid and
 * start time (clock ticks since boot, from /proc): a reused pid does not share the start time,
 * so a folder whose owner no longer runs is known for a leftover of a process killed before it
 * could remove it. `f2s dev`'s socket folders (control/runtime/socket_dir.ts) and the fizzlet's
 * request folders (fizzlet/request_folders.ts) are removed that way, and `f2s dev`'s instances
 * name theirs in their environment (common/sweep.ts: sweepOrphans).
 */

import { procReader } from "./proc_read.ts";

const readProc = procReader();

/** The process's start time, undefined when it does not run. */
export function startTime(pid: number): string | undefined {
  const stat = readProc(`/proc/${pid}/stat`);
  // After the command name (in parentheses, which may hold anything): field 22 is starttime.
  return stat?.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
}

/** This process as an owner: "PID-STARTTIME", undefined without /proc. */
export function ownerId(pid = Deno.pid): string | undefined {
  const started = startTime(pid);
  return started === undefined ? undefined : `${pid}-${started}`;
}

/**
 * When `owner` (an ownerId) no longer runs, its start time; undefined while it runs, or
 * when `owner` is not an ownerId at all.
 */
export function ownerGoneSince(owner: string): number | undefined {
  const m = /^(\d+)-(\d+)$/.exec(owner);
  if (!m) return undefined;
  return startTime(Number(m[1])) === m[2] ? undefined : Number(m[2]);
}

/** Where Deno's makeTempDir puts folders: $TMPDIR, else /tmp. */
export function tmpDir(): string {
  return Deno.env.get("TMPDIR") || "/tmp";
}
