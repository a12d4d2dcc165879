// sweep (common/sweep.ts) after its root was waited for: the root's pid is free then, and on a
// busy host (pid_max 32768 wraps around in minutes) another process may hold it by the time
// the sweep runs. That process and its own are not the run's; what the run left in the root's
// session still is (the kernel does not hand out a pid that still names a session).
import { assert, assertEquals } from "../harness/assert.ts";
import { waitFor } from "../harness/poll.ts";
import { sweep, ticksNow } from "../../common/sweep.ts";

function running(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(")") + 2));
  } catch {
    return false;
  }
}

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
