// The catch-up bound of schedules (control/async/scheduler.ts dueTicks): which missed ticks
// a restart or a takeover still fires, and how many it skips.
import { assert, assertEquals } from "../harness/assert.ts";
import { CATCH_UP_MS, dueTicks, MAX_CATCH_UP } from "../../control/async/scheduler.ts";
import { parseSchedule } from "../../common/async_spec.ts";

const schedule = (raw: unknown) =>
  parseSchedule(raw, (m) => {
    throw new Error(m);
  })!;
const T = Date.parse("2026-11-25T12:00:00Z");

Deno.test("dueTicks: the ticks after the last one up to now, none before or at it", () => {
  const s = schedule("@every 1s");
  assertEquals(dueTicks(s, T, T + 3500), { fire: [T + 1000, T + 2000, T + 3000], skipped: 0 });
  assertEquals(dueTicks(s, T, T + 999), { fire: [], skipped: 0 });
  assertEquals(dueTicks(s, T, T + 1000).fire, [T + 1000]);
});

Deno.test("dueTicks: a takeover within a minute catches every missed tick up", () => {
  const s = schedule("@every 1s");
  const { fire, skipped } = dueTicks(s, T, T + 15_000);
  assertEquals(skipped, 0);
  assertEquals(fire.length, 15);
});

Deno.test("dueTicks: ticks older than a minute beyond the newest ten are skipped", () => {
  const s = schedule("@every 1s");
  const { fire, skipped } = dueTicks(s, T, T + 600_000);
  assertEquals(fire[0], T + 600_000 - CATCH_UP_MS);
  assertEquals(fire[fire.length - 1], T + 600_000);
  assertEquals(fire.length + skipped, 600);
  // A sparse cron: the newest ten are fired even when older than a minute.
  const hourly = schedule("0 * * * *");
  const day = dueTicks(hourly, T, T + 24 * 3600_000);
  assertEquals(day.fire.length, MAX_CATCH_UP);
  assertEquals(day.skipped, 24 - MAX_CATCH_UP);
  assertEquals(day.fire[MAX_CATCH_UP - 1], T + 24 * 3600_000);
});

Deno.test("dueTicks: a record months old costs no scan of every missed tick", () => {
  const s = schedule("@every 1s");
  const started = performance.now();
  const { fire, skipped } = dueTicks(s, T - 90 * 86_400_000, T);
  assertEquals(fire.length, CATCH_UP_MS / 1000 + 1, "every tick of the last minute");
  assertEquals(fire[fire.length - 1], T);
  assertEquals(fire.length + skipped, 90 * 86_400);
  const cron = dueTicks(schedule("* * * * * *"), T - 7 * 86_400_000, T);
  assertEquals(cron.fire[cron.fire.length - 1], T);
  assert(cron.fire.length >= CATCH_UP_MS / 1000 - 1, `${cron.fire.length} fired`);
  const ms = performance.now() - started;
  console.log(`dueTicks over 90 days of @every 1s and 7 days of a 1 s cron: ${ms.toFixed(0)} ms`);
});
