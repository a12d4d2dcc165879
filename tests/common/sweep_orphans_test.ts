// sweepOrphans (common/sweep.ts): the processes whose environment names an owner that is gone
// are killed, what they started with them; those of a live owner, of a value that names no
// owner, and those started before their owner are left running.
import { assert, assertEquals } from "../harness/assert.ts";
import { waitFor } from "../harness/poll.ts";
import { ownerId } from "../../common/owners.ts";
import { sweepOrphans } from "../../common/sweep.ts";

/** Runs while its process lives; false once it has gone (zombies count as gone). */
function running(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/^[ZX]$/.test(stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3));
  } catch {
    return false;
  }
}

Deno.test("sweepOrphans: a gone owner's processes and their children die; the others run on", async () => {
  const name = `F2S_TEST_OWNER_${crypto.randomUUID().replaceAll("-", "")}`;
  // An owner that ran and is gone.
  const owner = new Deno.Command("sleep", { args: ["60"] }).spawn();
  const gone = ownerId(owner.pid);
  assert(gone, "an owner id from /proc");
  owner.kill("SIGKILL");
  await owner.status;

  const started: Deno.ChildProcess[] = [];
  const start = (value: string) => {
    // A shell with a child of its own, which inherits the variable.
    const child = new Deno.Command("sh", {
      args: ["-c", "sleep 60 & wait"],
      env: { [name]: value },
      stdout: "null",
      detached: true, // a process group of its own, for the clean-up
    }).spawn();
    started.push(child);
    return child;
  };
  try {
    const orphan = start(gone);
    const ofLiveOwner = start(ownerId()!);
    const noOwner = start("not-an-owner");
    // pid_max is below 2^22: no such process; it would have started after every one here.
    const olderThanOwner = start(`999999999-${Number.MAX_SAFE_INTEGER}`);
    const childOf = (pid: number) =>
      Deno.readTextFileSync(`/proc/${pid}/task/${pid}/children`).trim().split(" ").map(Number);
    const grandchild = await waitFor("the orphan's child", () => childOf(orphan.pid)[0]);

    assertEquals(sweepOrphans(name), 2, "the shell and its child");
    assertEquals((await orphan.status).signal, "SIGKILL");
    await waitFor("the orphan's child gone", () => !running(grandchild));
    for (const spared of [ofLiveOwner, noOwner, olderThanOwner]) {
      assert(running(spared.pid), `pid ${spared.pid} still running`);
    }
    assertEquals(sweepOrphans(name), 0, "nothing left to kill");
  } finally {
    for (const child of started) {
      try {
        Deno.kill(-child.pid, "SIGKILL");
      } catch {
        // gone
      }
      await child.status;
    }
  }
});
