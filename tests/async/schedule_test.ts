// Schedules through `f2s dev`: `@every 1s` fires once a second through the async queue,
// and a restart of f2s dev in the middle (stopped, then killed with -9) neither skips nor
// doubles a tick.
import { assert, assertEquals } from "../harness/assert.ts";
import { processesMatching, waitFor } from "../harness/dev.ts";
import { cleanup, killLeftovers, records, setup, start } from "./helpers.ts";

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

    /**
     * Stops f2s dev with `signal`, leaves it down 2.5 s (ticks fall due meanwhile), starts it
     * again and waits for 4 more ticks; returns the ticks the app had seen when it stopped.
     */
    const restart = async (signal: Deno.Signal) => {
      await server.stop(signal);
      if (signal === "SIGKILL") killLeftovers(s);
      const atStop = new Set((await ticks()).map((r) => r.tick));
      await new Promise((r) => setTimeout(r, 2500));
      server = await start(s);
      const before = (await ticks()).length;
      await waitFor(
        `ticks after the restart (${signal})`,
        async () => (await ticks()).length >= before + 4,
        30_000,
      ).catch(async (e) => {
        // What f2s dev and the app did meanwhile, for a failure seen only in a whole run.
        const recorded = (await Deno.readTextFile(s.record)).trimEnd().split("\n");
        throw new Error(
          `${e.message}\nf2s dev's last log lines:\n${server.logs().slice(-60).join("\n")}` +
            `\nthe app's last records:\n${recorded.slice(-10).join("\n")}` +
            `\nprocesses in ${s.dir}: ${processesMatching(s.dir).join(" ") || "none"}`,
        );
      });
      return atStop;
    };

    // A restart (the dev counterpart of a leader change): the next tick continues the series.
    await restart("SIGTERM");
    const afterStop = (await ticks()).map((r) => Date.parse(r.tick));
    assertEquals(new Set(afterStop).size, afterStop.length, "no tick ran twice");

    // Killed with -9 (no chance to finish anything): the tick record and the queued call are
    // one SQLite transaction, so the restart continues the series as well. Only a call that
    // was running at the kill may run again (at-least-once delivery), and it is counted.
    const atKill = await restart("SIGKILL");
    await server.stop();

    const all = (await ticks()).map((r) => r.tick);
    const perTick = new Map<string, number>();
    for (const tick of all) perTick.set(tick, (perTick.get(tick) ?? 0) + 1);
    const twice = [...perTick].filter(([, n]) => n > 1);
    console.log(`f2s dev killed -9 during @every 1s: ticks run twice: ${JSON.stringify(twice)}`);
    assert(twice.length <= 1, `at most the tick running at the kill twice: ${twice}`);
    for (const [tick] of twice) {
      assert(atKill.has(tick), `${tick} ran twice, not running at kill`);
      const attempts = (await ticks()).filter((r) => r.tick === tick).map((r) => r.attempt);
      assertEquals(attempts, ["1", "2"], `${tick}: run again, and told so by X-F2S-Attempt`);
    }
    const times = all.map((tick) => Date.parse(tick));
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
