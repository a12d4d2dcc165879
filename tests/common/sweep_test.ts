// common/sweep.ts against real processes.
// - sweep after its root was waited for: the root's pid is free then, and on a busy host
//   (pid_max 32768 wraps around in minutes) another process may hold it by the time the sweep
//   runs. That process and its own are not the run's; what the run left in the root's session
//   still is (the kernel does not hand out a pid that still names a session).
// - sweepOrphans: the processes whose environment names an owner that is gone are killed,
//   what they started with them; those of a live owner, of a value that names no owner, and
//   those started before their owner are left running.
import { assert, assertEquals } from "../harness/assert.ts";
import { waitFor } from "../harness/poll.ts";
import { ownerId } from "../../common/owners.ts";
import { sweep, sweepOrphans, ticksNow } from "../../common/sweep.ts";

/** Runs while its process lives; false once it has gone (zombies count as gone). */
function running(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(")") + 2));
  } catch {
    return false;
  }
}

/** The first child of `pid`, if it has one yet. */
function childOf(pid: number): number | undefined {
  const text = Deno.readTextFileSync(`/proc/${pid}/task/${pid}/children`).trim();
  return text ? Number(text.split(" ")[0]) : undefined;
}

const marker = () => ({ name: "F2S_TEST_RUN", value: crypto.randomUUID() });

Deno.test("sweep: a reaped root's pid held by another process: it, its child and session are spared", async () => {
  const since = ticksNow();
  // Stands for the process that got the root's pid: a session leader with a child.
  const other = new Deno.Command("sh", {
    args: ["-c", "sleep 60 & wait"],
    detached: true,
    stdout: "null",
  }).spawn();
  try {
    const child = await waitFor("its child", () => childOf(other.pid));
    assertEquals(sweep(other.pid, since, marker(), undefined, undefined, true), 0);
    assert(running(other.pid) && running(child), "both still running");
  } finally {
    Deno.kill(-other.pid, "SIGKILL");
    await other.status;
  }
});

Deno.test("sweep: a reaped root's session members, with no marker, are still killed", async () => {
  const since = ticksNow();
  // A root that leaves a process in its session and exits; it is waited for.
  const root = new Deno.Command("sh", {
    args: ["-c", "sleep 60 >/dev/null & echo $!"],
    detached: true,
    stdout: "piped",
  }).spawn();
  const out = await root.output();
  const left = Number(new TextDecoder().decode(out.stdout).trim());
  try {
    assert(running(left), `the process left behind (${left}) runs`);
    assert(!running(root.pid), "the root has gone and nobody holds its pid");
    assertEquals(sweep(root.pid, since, marker(), undefined, undefined, true), 1);
    await waitFor("the process left behind gone", () => !running(left));
  } finally {
    try {
      Deno.kill(left, "SIGKILL");
    } catch {
      // gone
    }
  }
});

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
    const grandchild = await waitFor("the orphan's child", () => childOf(orphan.pid));

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
