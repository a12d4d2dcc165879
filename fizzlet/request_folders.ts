/**
 * Names request folders after the fizzlet that made them, and removes those whose fizzlet is
 * gone. A fizzlet killed by SIGKILL (or the OOM killer) cannot remove its folders: the ones of
 * its requests in flight, and the next request's folder, which file mode keeps ready in
 * /dev/shm (command.ts). /dev/shm outlives it on a host (`f2s dev`, tests); the next fizzlet
 * that starts there removes them. In a pod /dev/shm goes with the pod.
 *
 * A folder is `f2s-request-<pid>-<start time>-<random>`, named after its fizzlet as
 * common/owners.ts describes. That holds within one PID namespace: fizzlets sharing a folder
 * but not their pids (two containers of one pod with a shared /tmp) would take each other's
 * folders for orphans; F2S runs one fizzlet per pod.
 */

import { ownerGoneSince, ownerId } from "../common/owners.ts";

const PREFIX = "f2s-request-";
const OWNED = /^f2s-request-(\d+-\d+)-/;

/** The prefix of this fizzlet's request folders. */
export function folderPrefix(): string {
  const owner = ownerId();
  return owner === undefined ? PREFIX : `${PREFIX}${owner}-`;
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
    if (!entry.isDirectory || !owner || ownerGoneSince(owner[1]) === undefined) continue;
    try {
      await Deno.remove(`${parent}/${entry.name}`, { recursive: true });
      removed++;
    } catch {
      // Not ours to remove, or gone meanwhile.
    }
  }
  return removed;
}
