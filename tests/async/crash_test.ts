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
  let server = await start(s);
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
    await server.stop("SIGKILL");
    const atKill = countById(await records(s)).size;
    killLeftovers(s);

    const restarted = performance.now();
    server = await start(s);
    const counts = await settled(server.url, "slow", CALLS);
    const recoveryMs = performance.now() - restarted;
    assertEquals(counts.succeeded, CALLS, JSON.stringify(counts));

    const seen = countById(await records(s));
    for (const id of ids) assert((seen.get(id) ?? 0) >= 1, `call ${id} was lost`);
    const duplicates = [...seen.values()].filter((n) => n > 1).length;
    assert(
      duplicates <= CONCURRENCY,
      `${duplicates} calls ran twice; at most the ${CONCURRENCY} running at the kill may`,
    );
    console.log(JSON.stringify({
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
