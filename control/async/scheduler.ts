/**
 * Schedules (`spec.schedule`): each tick of a function's schedule becomes one queued async
 * call. Only the leader fires, and where the last fired tick is recorded decides what a
 * restart or a takeover does:
 *
 * - `f2s serve` (several replicas): in a record every replica shares (`SharedTicks`, a
 *   Lease written by compare-and-swap). A tick is enqueued only after the write moving
 *   "last fired" to it succeeded, so no two replicas fire the same tick; a new leader
 *   continues after the recorded tick, firing those that fell due during the takeover.
 * - `f2s dev` (one process): in the async SQLite file, in the same transaction as the
 *   tick's call, whose id (`sched:NAME:EPOCHMS`) is derived from the tick.
 *
 * Missed ticks are caught up within a bound (`dueTicks`); older ones are skipped with a
 * `schedule.skipped` event. A schedule seen for the first time starts at its next tick.
 */

import { type Clock, realClock } from "../../common/clock.ts";
import { nextTick, type Schedule } from "../../common/async_spec.ts";
import type { FunctionDef } from "../../common/function.ts";
import { SCHEDULE_HEADER } from "../../common/forward_headers.ts";
import type { Logger } from "../../common/log.ts";
import type { EventRecorder } from "../../dispatcher/needs.ts";
import type { SharedTicks } from "./kube_ticks.ts";
import type { CallStore, NewCall } from "./store.ts";

/** Missed ticks still fired: the newest MAX_CATCH_UP ones, and all due within CATCH_UP_MS. */
export const MAX_CATCH_UP = 10;
export const CATCH_UP_MS = 60_000;
/** Past this many missed ticks, counting them one by one is not worth it. */
const MAX_SCAN = 10_000;
const CHECK_MS = 200;
const MAX_BACKOFF_MS = 5_000;

export interface SchedulerDeps {
  store: CallStore;
  functions(): FunctionDef[];
  isLeader(): boolean;
  queued(): void;
  log: Logger;
  events?: EventRecorder;
  /** Tick times (wall-clock), the check interval and the back-off (default: the real one). */
  clock?: Clock;
  /**
   * With Kafka: produces a tick's call to the shared topic, so a tick survives the leader's
   * death. Without: the call goes into the local queue.
   */
  publish?: (call: NewCall) => Promise<void>;
  /** Several replicas (`f2s serve`): the record of fired ticks they share. */
  shared?: SharedTicks;
}

/**
 * The ticks after `last` up to `now` to fire, and how many older ones are skipped: the
 * newest MAX_CATCH_UP always, older ones if due within CATCH_UP_MS (so a takeover after
 * the default 15 s lease loses no tick even of `@every 1s`).
 */
export function dueTicks(
  schedule: Schedule,
  last: number,
  now: number,
): { fire: number[]; skipped: number } {
  let skipped = 0;
  let from = last;
  if (schedule.kind === "every" && now - last > MAX_SCAN * schedule.everyMs) {
    const start = Math.max(last, now - CATCH_UP_MS - MAX_CATCH_UP * schedule.everyMs);
    skipped = Math.floor(start / schedule.everyMs) - Math.floor(last / schedule.everyMs);
    from = start;
  }
  const fire: number[] = [];
  let scanned = 0;
  for (let next = nextTick(schedule, from); next !== undefined && next <= now;) {
    fire.push(next);
    if (fire.length > MAX_CATCH_UP && fire[0] < now - CATCH_UP_MS) {
      fire.shift();
      skipped++;
    }
    if (++scanned > MAX_SCAN && fire[0] < now - CATCH_UP_MS) {
      // A cron missed for ages: jump close to now; the count of skipped ticks is a floor.
      next = nextTick(schedule, Math.max(next, now - CATCH_UP_MS));
      scanned = 0;
      continue;
    }
    next = nextTick(schedule, next);
  }
  return { fire, skipped };
}

interface Fired {
  added: number;
  /** Why some ticks could not be queued (the next round waits: back-off). */
  failed?: unknown;
}

export function startScheduler(deps: SchedulerDeps): { stop(): void } {
  const clock = deps.clock ?? realClock;
  const now = () => clock.now();

  let checking = false;
  let leading = false;
  let failures = 0;
  let retryAt = 0;
  async function check() {
    const leader = deps.isLeader();
    if (!leader) leading = false;
    if (!leader || checking || clock.now() < retryAt) return;
    checking = true;
    let added = 0;
    try {
      // A new term reads the shared record afresh: another replica led meanwhile.
      if (!leading) deps.shared?.invalidate();
      leading = true;
      const fired = deps.shared
        ? await fireShared(deps.shared, now())
        : { added: await fireLocal(now()) };
      added = fired.added;
      if (fired.failed !== undefined) throw fired.failed;
      failures = 0;
    } catch (e) {
      // The record cannot be read or written (API unreachable, RBAC): back off, not spin.
      failures++;
      const retryInMs = Math.min(MAX_BACKOFF_MS, CHECK_MS * 2 ** failures);
      retryAt = clock.now() + retryInMs;
      deps.log.error("schedule tick failed", { failures, retryInMs, error: e });
    } finally {
      checking = false;
    }
    if (added > 0) deps.queued();
  }

  function scheduled(): FunctionDef[] {
    return deps.functions().filter((fn) => fn.schedule);
  }

  function noteSkipped(fn: FunctionDef, last: number, skipped: number, fired: number) {
    if (skipped === 0) return;
    const message = `${skipped} ticks of ${fn.name}'s schedule were missed while no leader ` +
      `ran and are skipped; the newest ${fired} are fired late`;
    deps.log.warn("schedule ticks skipped", { function: fn.name, skipped, fired });
    deps.events?.record("schedule.skipped", message, {
      function: fn.name,
      data: { skipped, fired, last: new Date(last).toISOString() },
    });
  }

  /**
   * One compare-and-swap moves every function's record, then the ticks are queued. A tick
   * that cannot be queued (Kafka down, disk full) moves its function's record back to the
   * tick before it, by compare-and-swap again, so a later round fires it; only if someone
   * wrote in between is it lost (never doubled).
   */
  async function fireShared(shared: SharedTicks, t: number): Promise<Fired> {
    const record = await shared.current();
    const changes = new Map<string, number | null>();
    const batches: { fn: FunctionDef; last: number; ticks: number[]; skipped: number }[] = [];
    const fns = scheduled();
    for (const fn of fns) {
      const last = record.get(fn.name);
      if (last === undefined) {
        // The starting point, so that a takeover knows which ticks are still due.
        changes.set(fn.name, t);
        continue;
      }
      const { fire: ticks, skipped } = dueTicks(fn.schedule!, last, t);
      if (ticks.length === 0) continue;
      changes.set(fn.name, ticks[ticks.length - 1]);
      batches.push({ fn, last, ticks, skipped });
    }
    // Functions deleted or no longer scheduled: their record goes (back, they start anew).
    const names = new Set(fns.map((fn) => fn.name));
    for (const name of record.keys()) if (!names.has(name)) changes.set(name, null);
    if (changes.size === 0) return { added: 0 };
    // The lease may have run out while we computed; the write is the fence in any case.
    if (!deps.isLeader()) return { added: 0 };
    if (!await shared.advance(changes)) return { added: 0 };
    let added = 0;
    const back = new Map<string, number>();
    let failed: unknown;
    for (const { fn, last, ticks, skipped } of batches) {
      noteSkipped(fn, last, skipped, ticks.length);
      for (let i = 0; i < ticks.length; i++) {
        try {
          const call = tickCall(fn, ticks[i]);
          if (deps.publish) await deps.publish(call);
          else if (!deps.store.insert(call)) continue;
          added++;
        } catch (e) {
          failed = e;
          back.set(fn.name, i > 0 ? ticks[i - 1] : last);
          break;
        }
      }
    }
    if (back.size === 0) return { added };
    const undone = await shared.advance(back).catch(() => false);
    for (const [name, tick] of back) {
      const fields = { function: name, after: new Date(tick).toISOString(), error: failed };
      if (undone) deps.log.warn("schedule ticks could not be queued; trying again", fields);
      else {
        // Recorded as fired and the record moved on: no replica fires them again.
        deps.log.error("schedule ticks were recorded but could not be queued", fields);
        deps.events?.record(
          "schedule.lost",
          `ticks of ${name} after ${fields.after} could not be queued: ${failed}`,
          { function: name },
        );
      }
    }
    return { added, failed };
  }

  async function fireLocal(t: number): Promise<number> {
    let added = 0;
    for (const fn of scheduled()) {
      try {
        added += await fireLocalOne(fn, t);
      } catch (e) {
        deps.log.error("schedule tick failed", { function: fn.name, error: e });
      }
    }
    return added;
  }

  async function fireLocalOne(fn: FunctionDef, t: number): Promise<number> {
    const last = deps.store.lastTick(fn.name);
    if (last === undefined) {
      // A schedule seen for the first time starts now: past ticks were never promised.
      deps.store.startTicks(fn.name, t);
      return 0;
    }
    let added = 0;
    const { fire, skipped } = dueTicks(fn.schedule!, last, t);
    noteSkipped(fn, last, skipped, fire.length);
    for (const tick of fire) {
      if (deps.publish) {
        await deps.publish(tickCall(fn, tick));
        deps.store.recordTick(fn.name, tick);
        added++;
      } else if (deps.store.insertTick(tickCall(fn, tick), tick)) added++;
    }
    return added;
  }

  const timer = clock.setInterval(check, CHECK_MS);
  check();
  return { stop: () => clock.clearInterval(timer) };
}

function tickCall(fn: FunctionDef, tick: number): NewCall {
  return {
    id: `sched:${fn.name}:${tick}`,
    function: fn.name,
    method: fn.method === "ANY" ? "POST" : fn.method,
    suffix: "",
    search: "",
    headers: [[SCHEDULE_HEADER, new Date(tick).toISOString()]],
    body: null,
    client: "127.0.0.1",
    source: "schedule",
    createdAt: tick,
  };
}
