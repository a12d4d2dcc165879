// `f2s dev` killed with -9 while async calls run, then restarted on the same queue file:
// every accepted call finishes; only calls that were running at the kill may run twice.
import { assert, assertEquals } from "../harness/assert.ts";
import { waitFor } from "../harness/dev.ts";
import {
  cleanup,
  countById,
  killLeftovers,
  records,
  settled,
  setup,
  start,
  submit,
} from "./helpers.ts";

const CALLS = 300;
const CONCURRENCY = 10;

Deno.test("async: kill -9 of f2s dev mid-way loses no accepted call", async () => {
  const s = await setup([
    { name: "slow", maxReplicas: 2, async: { maxConcurrency: CONCURRENCY } },
  ]);
  // The control planes' temp folder (their instance sockets' folder goes there).
  const tmp = `${s.dir}/tmp`;
  await Deno.mkdir(tmp);
  const socketDirs = () =>
    [...Deno.readDirSync(tmp)].map((e) => e.name).filter((n) => n.startsWith("f2s-dev-"));
  let server = await start(s, { TMPDIR: tmp });
  try {
    const t0 = performance.now();
    const ids = await Promise.all(
      Array.from({ length: CALLS }, () => submit(server.url, "/slow/slow?ms=100")),
    );
    const acceptMs = performance.now() - t0;
    await waitFor(
      "a third of the calls done",
      async () => (await records(s)).length >= 100,
      60_000,
    );
    const killedDirs = socketDirs();
    assertEquals(killedDirs.length, 1, "the first control plane's socket folder");
    await server.stop("SIGKILL");
    const atKill = countById(await records(s)).size;
    killLeftovers(s);

    const restarted = performance.now();
    server = await start(s, { TMPDIR: tmp });
    const counts = await settled(server.url, "slow", CALLS);
    // The killed one's socket folder is gone; the new one's names its owner.
    const dirs = socketDirs();
    assertEquals(dirs.length, 1, `socket folders after the restart: ${dirs}`);
    assert(dirs[0] !== killedDirs[0], "the killed control plane's folder was removed");
    const owner = Deno.readTextFileSync(`${tmp}/${dirs[0]}/owner`).split(" ")[0];
    assertEquals(Number(owner), server.pid);
    const recoveryMs = performance.now() - restarted;
    assertEquals(counts.succeeded, CALLS, JSON.stringify(counts));

    const seen = countById(await records(s));
    for (const id of ids) assert((seen.get(id) ?? 0) >= 1, `call ${id} was lost`);
    const duplicates = [...seen.values()].filter((n) => n > 1).length;
    assert(
      duplicates <= CONCURRENCY,
      `${duplicates} calls ran twice; at most the ${CONCURRENCY} running at the kill may`,
    );
    // The calls running at the kill run again as attempt 2, and say so: whether or not the
    // app saw attempt 1 (it records at the end of its 100 ms), it sees "2" now.
    const attempts = new Map<string, string[]>();
    for (const r of await records(s)) attempts.set(r.id, [...attempts.get(r.id) ?? [], r.attempt]);
    const runAgain = [...attempts.values()].filter((seen) => seen.some((a) => a !== "1"));
    for (const seen of runAgain) {
      assert(["2", "1,2"].includes(seen.join()), `attempts seen by the app: ${seen}`);
    }
    assert(runAgain.length >= 1 && runAgain.length <= CONCURRENCY, `${runAgain.length} run again`);
    assert(runAgain.length >= duplicates, "every call the app saw twice came as attempt 2");
    console.log(JSON.stringify({
      runAgain: runAgain.length,
      accepted: CALLS,
      acceptPerSecond: Math.round(CALLS / (acceptMs / 1000)),
      doneAtKill: atKill,
      duplicates,
      restartToAllDoneMs: Math.round(recoveryMs),
    }));
  } finally {
    await cleanup(s, server);
  }
});
