/**
 * The folder of `f2s dev`'s instance sockets ($TMPDIR/f2s-dev-*). A control plane that is
 * stopped removes its own; one killed with -9 cannot, so each folder holds an `owner` file
 * (the pid and its start time, which a reused pid does not share), and a control plane that
 * makes its folder first removes those whose owner no longer runs. Folders without an owner
 * file, or of another user, are left alone.
 */

import { join } from "node:path";
import { ownerGoneSince, ownerId, tmpDir } from "../../common/owners.ts";

const PREFIX = "f2s-dev-";
const OWNER = "owner";

/** Removes the socket folders in `tmp` whose owner no longer runs; returns how many. */
export function removeStaleSocketDirs(tmp = tmpDir()): number {
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(tmp)];
  } catch {
    return 0;
  }
  const uid = Deno.uid();
  let removed = 0;
  for (const entry of entries) {
    if (!entry.isDirectory || !entry.name.startsWith(PREFIX)) continue;
    const dir = join(tmp, entry.name);
    try {
      if (Deno.lstatSync(dir).uid !== uid) continue;
      // "PID STARTTIME": the owner id (common/owners.ts) with a space.
      const owner = Deno.readTextFileSync(join(dir, OWNER)).trim().replace(" ", "-");
      if (ownerGoneSince(owner) === undefined) continue;
      Deno.removeSync(dir, { recursive: true });
      removed++;
    } catch {
      // No owner file (not ours to judge), or removed meanwhile.
    }
  }
  return removed;
}

/** Makes this process's socket folder, after removing those left by control planes gone. */
export function makeSocketDir(): { dir: string; removed: number } {
  const removed = removeStaleSocketDirs();
  const dir = Deno.makeTempDirSync({ prefix: PREFIX });
  const owner = ownerId();
  if (owner) Deno.writeTextFileSync(join(dir, OWNER), `${owner.replace("-", " ")}\n`);
  return { dir, removed };
}
