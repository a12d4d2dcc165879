/**
 * control/runtime/socket_dir.ts: which socket folders a starting `f2s dev` removes. Only
 * those whose owner file names a process that no longer runs, or a pid now used by another
 * process (its start time differs); never one without an owner file or whose owner runs.
 * (tests/async/crash_test.ts checks the same end to end, after a real kill -9.)
 */

import { removeStaleSocketDirs } from "../../control/runtime/socket_dir.ts";
import { assertEquals } from "../harness/assert.ts";

function startTime(pid: number): string {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
}

Deno.test("socket folders: only those of owners gone are removed", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "f2s-socket-dirs-" });
  try {
    const gone = new Deno.Command("true").spawn();
    await gone.status;
    const folders: Record<string, string | undefined> = {
      "f2s-dev-running": `${Deno.pid} ${startTime(Deno.pid)}`,
      "f2s-dev-gone": `${gone.pid} 12345`,
      "f2s-dev-reused": `${Deno.pid} ${Number(startTime(Deno.pid)) - 1}`,
      "f2s-dev-unowned": undefined,
      "f2s-dev-garbled": "not a pid",
      "other-gone": `${gone.pid} 12345`,
    };
    for (const [name, owner] of Object.entries(folders)) {
      await Deno.mkdir(`${tmp}/${name}`);
      await Deno.writeTextFile(`${tmp}/${name}/app-1.sock`, "");
      if (owner !== undefined) await Deno.writeTextFile(`${tmp}/${name}/owner`, owner + "\n");
    }
    assertEquals(removeStaleSocketDirs(tmp), 2);
    const left = [...Deno.readDirSync(tmp)].map((e) => e.name).sort();
    assertEquals(left, ["f2s-dev-garbled", "f2s-dev-running", "f2s-dev-unowned", "other-gone"]);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
