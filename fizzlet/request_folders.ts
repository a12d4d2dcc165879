/**
 * Names request folders after the fizzlet that made them, and removes those whose fizzlet is
 * gone. A fizzlet killed by SIGKILL (or the OOM killer) cannot remove its folders: the ones of
 * its requests in flight, and the next request's folder, which file mode keeps ready in
 * /dev/shm (command.ts). /dev/shm outlives it on a host (`f2s dev`, tests); the next fizzlet
 * that starts there removes them. In a pod /dev/shm goes with the pod.
 *
 * A folder is `f2s-request-<pid>-<start time>-<random>`: the pid and start time (clock ticks
 * since boot, from /proc) of its fizzlet, which together name one process even after its pid
 * is reused. That holds within one PID namespace: fizzlets sharing a folder but not their pids
 * (two containers of one pod with a shared /tmp) would take each other's folders for orphans;
 * F2S runs one fizzlet per pod.
 */

import { procReader } from "../common/proc_read.ts";

const readProc = procReader();
const PREFIX = "f2s-request-";
const OWNED = /^f2s-request-(\d+)-(\d+)-/;

/** A process's start time (clock ticks since boot), or undefined when it has gone. */
function startTime(pid: number | "self"): string | undefined {
  const stat = readProc(`/proc/${pid}/stat`);
  // After the command name (in parentheses, which may hold anything): field 22 is starttime.
  return stat?.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
}

/** The prefix of this fizzlet's request folders. */
export function folderPrefix(): string {
  const start = startTime("self");
  return start === undefined ? PREFIX : `${PREFIX}${Deno.pid}-${start}-`;
}

/**
 * Removes the request folders in `parent` whose fizzlet has gone (other users' are left, as
 * they cannot be removed); resolves with how many went.
 */
export async function removeOrphans(parent: string): Promise<number> {
  let removed = 0;
  let entries;
  try {
    entries = await Array.fromAsync(Deno.readDir(parent));
  } catch {
    return 0;
  }
  for (const entry of entries) {
    const owner = OWNED.exec(entry.name);
    if (!entry.isDirectory || !owner || startTime(Number(owner[1])) === owner[2]) continue;
    try {
      await Deno.remove(`${parent}/${entry.name}`, { recursive: true });
      removed++;
    } catch {
      // Not ours to remove, or gone meanwhile.
    }
  }
  return removed;
}
