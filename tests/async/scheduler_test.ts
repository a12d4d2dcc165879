// The scheduler's shared-record logic (control/async/scheduler.ts) with a compare-and-swap
// record in memory (the same contract as the Lease in control/async/kube_ticks.ts, whose
// real compare-and-swap tests/kube/schedule_test.ts checks on the API server) and a real
// SQLite queue: two replicas that both believe they lead never fire a tick twice and leave
// none out; a tick that cannot be queued is fired later, not lost.
import { assert, assertEquals } from "../harness/assert.ts";
import { waitFor } from "../harness/dev.ts";
import { type Clock, realClock } from "../../common/clock.ts";
import { createLogger } from "../../common/log.ts";
import { parseFunction } from "../../common/function.ts";
import { createEventLog, type EventLog } from "../../control/events.ts";
import type { SharedTicks } from "../../control/async/kube_ticks.ts";
import { startScheduler } from "../../control/async/scheduler.ts";
import { type NewCall, openCallStore } from "../../control/async/store.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Record {
  version: number;
  ticks: Map<string, number>;
}

/** Each replica's view of one shared record: read once, written only from the version read. */
function memoryTicks(shared: Record): SharedTicks & { conflicts: number } {
  let seen: Record | undefined;
  const read = () => (seen ??= { version: shared.version, ticks: new Map(shared.ticks) });
  const view = {
    conflicts: 0,
    current: () => Promise.resolve(new Map(read().ticks)),
    async advance(changes: Map<string, number | null>) {
      const base = read();
      // A request's round trip: the other replica may write meanwhile.
      await sleep(Math.random() * 30);
      if (base.version !== shared.version) {
        seen = undefined;
        view.conflicts++;
        return false;
      }
      for (const [fn, tick] of changes) {
        if (tick === null) shared.ticks.delete(fn);
        else shared.ticks.set(fn, tick);
      }
      shared.version++;
      seen = { version: shared.version, ticks: new Map(shared.ticks) };
      return true;
    },
    invalidate() {
      seen = undefined;
    },
  };
  return view;
}

function ticker() {
  const parsed = parseFunction({
    metadata: { name: "ticker" },
    spec: { endpoint: "/ticker", method: "POST", schedule: "@every 1s" },
    target: { containerImage: "x" },
  });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  return parsed.fn;
}

/**
 * The real clock with its time running 10 times faster, from a whole second: ticks come 10
 * times as often while the replicas' writes still race in real time.
 */
function fastClock(): Clock {
  const start = Date.now();
  const base = Math.floor(start / 1000) * 1000;
  return { ...realClock, now: () => base + (Date.now() - start) * 10 };
}

async function withStore<T>(fn: (path: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "f2s-scheduler-test-" });
  try {
    return await fn(`${dir}/async.db`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function contiguous(ticks: number[]) {
  const sorted = [...ticks].sort((a, b) => a - b);
  for (let i = 1; i < sorted.length; i++) {
    assertEquals(
      sorted[i] - sorted[i - 1],
      1000,
      `gap after ${new Date(sorted[i - 1]).toISOString()}`,
    );
  }
}

interface TickerOptions {
  path: string;
  shared: SharedTicks;
  clock: Clock;
  /** Where the published ticks go (shared by replicas). */
  fired: number[];
  events?: EventLog;
  /** While true, publishing fails (the broker is down). */
  failing?: () => boolean;
}

/** A scheduler of `ticker` that publishes into `fired`, on its own SQLite queue. */
function startTicker(o: TickerOptions) {
  const store = openCallStore(o.path);
  let refused = 0;
  const scheduler = startScheduler({
    store,
    functions: () => [ticker()],
    isLeader: () => true,
    queued: () => {},
    log: createLogger("test", { queue: o.path }),
    events: o.events,
    clock: o.clock,
    shared: o.shared,
    publish: (call: NewCall) => {
      if (o.failing?.()) {
        refused++;
        return Promise.reject(new Error("the broker is down"));
      }
      o.fired.push(call.createdAt);
      return Promise.resolve();
    },
  });
  return {
    refused: () => refused,
    async stop() {
      scheduler.stop();
      await sleep(100);
      store.close();
    },
  };
}

Deno.test("scheduler: two replicas both leading share the record; no tick twice, none missing", async () => {
  await withStore(async (path) => {
    const record: Record = { version: 0, ticks: new Map() };
    const clock = fastClock();
    const fired: number[] = [];
    const views = [memoryTicks(record), memoryTicks(record)];
    const replicas = views.map((shared, i) =>
      startTicker({ path: `${path}.${i}`, shared, clock, fired })
    );
    try {
      await waitFor("30 ticks", () => fired.length >= 30, 20_000, 50);
    } finally {
      for (const r of replicas) await r.stop();
    }
    assertEquals(new Set(fired).size, fired.length, "no tick twice");
    contiguous(fired);
    const conflicts = views[0].conflicts + views[1].conflicts;
    console.log(`30 ticks by two leaders at once: ${conflicts} writes refused as stale`);
    assert(conflicts > 0, "the replicas did compete for the record");
  });
});

Deno.test("scheduler: a tick that cannot be queued is fired later, not lost", async () => {
  await withStore(async (path) => {
    const record: Record = { version: 0, ticks: new Map() };
    const events = createEventLog();
    const fired: number[] = [];
    let failing = false;
    const ticker = startTicker({
      path,
      shared: memoryTicks(record),
      clock: fastClock(),
      fired,
      events,
      failing: () => failing,
    });
    try {
      await waitFor("the first ticks", () => fired.length >= 3, 20_000, 50);
      failing = true;
      await waitFor("ticks refused", () => ticker.refused() >= 2, 20_000, 50);
      const down = fired.length;
      failing = false;
      await waitFor("ticks after the outage", () => fired.length >= down + 10, 30_000, 50);
    } finally {
      await ticker.stop();
    }
    assertEquals(new Set(fired).size, fired.length, "no tick twice");
    contiguous(fired);
    assertEquals(events.list({ type: "schedule.lost" }), []);
  });
});

Deno.test("scheduler: a record older than the catch-up bound fires the last minute, skips the rest with one event", async () => {
  await withStore(async (path) => {
    const clock = fastClock();
    const start = clock.now();
    const record: Record = { version: 0, ticks: new Map([["ticker", start - 600_000]]) };
    const events = createEventLog();
    const fired: number[] = [];
    const ticker = startTicker({ path, shared: memoryTicks(record), clock, fired, events });
    try {
      await waitFor("the catch-up", () => fired.length >= 61, 10_000, 50);
    } finally {
      await ticker.stop();
    }
    const skipped = events.list({ type: "schedule.skipped" });
    assertEquals(skipped.length, 1, JSON.stringify(skipped));
    const first = Math.min(...fired);
    assertEquals(skipped[0].data?.skipped, (first - (start - 600_000)) / 1000 - 1);
    assert(first >= start - 60_000 - 1000, `caught up from ${new Date(first).toISOString()}`);
    contiguous(fired);
  });
});
