// Schedules through `f2s dev`: `@every 1s` fires once a second through the async queue,
// and a restart of f2s dev in the middle neither skips nor doubles a tick.
import { assert, assertEquals } from "../harness/assert.ts";
import { waitFor } from "../harness/dev.ts";
import { cleanup, records, setup, start } from "./helpers.ts";

Deno.test("schedule: @every 1s for 10 s gives 10 ± 1 runs; a restart skips and doubles none", async () => {
  const s = await setup([{ name: "ticker", schedule: "@every 1s" }]);
  let server = await start(s);
  try {
    const ticks = async () => (await records(s)).filter((r) => r.tick !== "-");
    await waitFor("the first tick", async () => (await ticks()).length >= 1, 30_000);
    const first = (await ticks()).length;
    await new Promise((r) => setTimeout(r, 10_000));
    const inTen = (await ticks()).length - first;
    assert(inTen >= 9 && inTen <= 11, `${inTen} runs in 10 s`);

    // A restart (the dev counterpart of a leader change): the next tick continues the series.
    await server.stop();
    await new Promise((r) => setTimeout(r, 2500));
    server = await start(s);
    const before = (await ticks()).length;
    await waitFor(
      "ticks after the restart",
      async () => (await ticks()).length >= before + 4,
      30_000,
    );
    await server.stop();

    const times = (await ticks()).map((r) => Date.parse(r.tick));
    assertEquals(new Set(times).size, times.length, "no tick ran twice");
    const sorted = [...new Set(times)].sort((a, b) => a - b);
    for (let i = 1; i < sorted.length; i++) {
      assertEquals(
        sorted[i] - sorted[i - 1],
        1000,
        `no tick skipped after ${new Date(sorted[i - 1]).toISOString()}`,
      );
    }
    const list = await (async () => {
      server = await start(s);
      return (await fetch(`${server.url}/functions/ticker/calls?limit=5`)).json();
    })();
    assertEquals(list.schedule.expression, "@every 1s");
    assertEquals(list.schedule.nextRuns.length, 5);
    assertEquals(list.calls[0].source, "schedule");
  } finally {
    await cleanup(s, server);
  }
});
