/**
 * Schedules (`spec.schedule`): each tick of a function's schedule becomes one queued async
 * call. Only the leader fires. The last tick enqueued is stored with the call in one
 * transaction and the call's id is derived from the tick (`sched:NAME:EPOCHMS`), so a
 * restart or a takeover continues after the last recorded tick: none is skipped (missed
 * ticks up to MAX_CATCH_UP are fired late) and none is doubled (the id exists already).
 */

import { type Clock, realClock } from "../../common/clock.ts";
import { nextTick } from "../../common/async_spec.ts";
import type { FunctionDef } from "../../common/function.ts";
import type { Logger } from "../../common/log.ts";
import type { CallStore, NewCall } from "./store.ts";

export const SCHEDULE_HEADER = "x-f2s-schedule-tick";
/** Missed ticks fired after a long stop; older ones are skipped (and logged). */
const MAX_CATCH_UP = 10;
const CHECK_MS = 200;

export interface SchedulerDeps {
  store: CallStore;
  functions(): FunctionDef[];
  isLeader(): boolean;
  queued(): void;
  log: Logger;
  clock?: Clock;
  /**
   * With Kafka: produces a tick's call to the shared topic (then the tick is recorded), so
   * a tick survives the leader's death. Without: the tick and its call are one local write.
   */
  publish?: (call: NewCall) => Promise<void>;
  /**
   * Several replicas (`f2s serve`): the last-tick record is this replica's own and may be
   * stale when it becomes leader again, so a new term starts at the next tick (a tick can be
   * skipped at a takeover, none doubled). `f2s dev` is the only replica and catches up.
   */
  freshOnTakeover?: boolean;
}

export function startScheduler(deps: SchedulerDeps): { stop(): void } {
  const clock = deps.clock ?? realClock;
  const now = () => clock.now();

  let checking = false;
  let leading = false;
  async function check() {
    const leader = deps.isLeader();
    if (!leader) leading = false;
    if (!leader || checking) return;
    checking = true;
    const t = now();
    if (!leading && deps.freshOnTakeover) {
      for (const fn of deps.functions()) if (fn.schedule) deps.store.recordTick(fn.name, t);
    }
    leading = true;
    let added = 0;
    try {
      for (const fn of deps.functions()) {
        if (!fn.schedule) continue;
        try {
          added += await fire(fn, t);
        } catch (e) {
          deps.log.error("schedule tick failed", { function: fn.name, error: e });
        }
      }
    } finally {
      checking = false;
    }
    if (added > 0) deps.queued();
  }

  async function fire(fn: FunctionDef, t: number): Promise<number> {
    const schedule = fn.schedule!;
    const last = deps.store.lastTick(fn.name);
    const ticks: number[] = [];
    // A schedule seen for the first time starts now: past ticks were never promised.
    let next = nextTick(schedule, last ?? t);
    while (next !== undefined && next <= t) {
      ticks.push(next);
      next = nextTick(schedule, next);
    }
    if (ticks.length > MAX_CATCH_UP) {
      deps.log.warn("schedule ticks missed while no leader ran; firing the latest only", {
        function: fn.name,
        skipped: ticks.length - MAX_CATCH_UP,
      });
      ticks.splice(0, ticks.length - MAX_CATCH_UP);
    }
    if (last === undefined && ticks.length === 0) {
      // Record the starting point so a takeover knows which ticks are still due.
      deps.store.startTicks(fn.name, t);
    }
    let added = 0;
    for (const tick of ticks) {
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

function tickCall(fn: FunctionDef, tick: number) {
  return {
    id: `sched:${fn.name}:${tick}`,
    function: fn.name,
    method: fn.method === "ANY" ? "POST" : fn.method,
    suffix: "",
    search: "",
    headers: [[SCHEDULE_HEADER, new Date(tick).toISOString()]] as [string, string][],
    body: null,
    client: "127.0.0.1",
    source: "schedule",
    createdAt: tick,
  };
}
