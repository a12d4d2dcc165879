/**
 * The fizzlet as the first process of a container: in a new PID namespace (`unshare --pid
 * --fork --mount-proc`, as root), under tini as PID 1 the way the example images run it,
 * 20 command-mode requests whose script leaves background processes behind leave no zombie.
 * The control run puts the fizzlet itself at PID 1: the same requests leave zombies there
 * (Deno waits only for what it started), which is why the images use tini, and the fizzlet
 * says so in its log.
 */

import { assert, assertEquals } from "../harness/assert.ts";
import { eventually, functionDir, type RunningFizzlet, startFizzlet } from "./helpers.ts";

const TINI = "/usr/bin/tini";

interface Proc {
  pid: number;
  ppid: number;
  state: string;
}

function processTable(): Proc[] {
  const out: Proc[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      out.push({ pid: Number(entry.name), state: f[0], ppid: Number(f[1]) });
    } catch {
      // Exited meanwhile.
    }
  }
  return out;
}

/** Every process below `root` (host pids), zombies included. */
function descendants(root: number): Proc[] {
  const table = processTable();
  const found = new Set([root]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const p of table) {
      if (!found.has(p.pid) && found.has(p.ppid)) {
        found.add(p.pid);
        grew = true;
      }
    }
  }
  return table.filter((p) => p.pid !== root && found.has(p.pid));
}

const zombies = (f: RunningFizzlet) => descendants(f.pid).filter((p) => p.state === "Z").length;

/** A script that leaves two background processes behind, one of them double-forked. */
const SCRIPT = "#!/bin/sh\nsleep 0.2 &\n(sleep 0.2 &)\necho ok\n";

async function twentyRequests(f: RunningFizzlet): Promise<void> {
  for (let i = 0; i < 20; i++) {
    const res = await fetch(f.url, { method: "POST", body: "x" });
    assertEquals([res.status, await res.text()], [200, "ok\n"]);
  }
  // Every process the scripts left behind has ended (or was killed) by now.
  await new Promise((r) => setTimeout(r, 500));
}

Deno.test("fizzlet as a container's first process: under tini no zombies after 20 requests", async () => {
  assert(Deno.statSync(TINI).isFile, `${TINI} is missing (tests/deps/tini.sh installs it)`);
  const dir = await functionDir({ "start.sh": SCRIPT });
  // --kill-child: should the test kill unshare, the namespace dies with it.
  const unshare = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"];
  const withTini = await startFizzlet({
    dir,
    args: ["--mode", "command"],
    wrap: [...unshare, TINI, "--"],
    removeOnFailure: [dir],
  });
  try {
    await twentyRequests(withTini);
    await eventually(() => zombies(withTini) === 0, 3000, "no zombie under tini");
    assert(!withTini.logs().some((l) => String(l.msg).startsWith("running as PID 1")));
    // tini passes SIGTERM on to the fizzlet, which stops gracefully: exit status 0 throughout.
    const tini = descendants(withTini.pid).find((p) => p.ppid === withTini.pid);
    assert(tini, "tini runs under unshare");
    Deno.kill(tini.pid, "SIGTERM");
    assertEquals((await withTini.exited).code, 0);
  } finally {
    await withTini.kill();
  }

  // Control: the fizzlet itself as PID 1. The count above could see zombies: here they stay.
  const bare = await startFizzlet({
    dir,
    args: ["--mode", "command"],
    wrap: unshare,
    removeOnFailure: [dir],
  });
  try {
    await bare.waitForLog((l) => String(l.msg).startsWith("running as PID 1"));
    await twentyRequests(bare);
    const left = zombies(bare);
    console.log(`zombies after 20 requests: 0 under tini, ${left} with the fizzlet as PID 1`);
    assert(left >= 20, `expected the bare fizzlet to leave zombies, found ${left}`);
  } finally {
    await bare.kill();
    await Deno.remove(dir, { recursive: true });
  }
});
