// The async queue shared through a real Kafka broker: two `f2s dev` processes consume the
// `f2s-async` topic in one consumer group; one is killed with -9 in the middle, and the
// other finishes every accepted call (only calls running at the kill may run twice).
import { assert, assertEquals } from "../harness/assert.ts";
import { type ControlPlane, startDev, waitFor } from "../harness/dev.ts";
import { type Broker, KAFKA_VERSIONS, startBroker } from "../kafka/broker.ts";
import {
  basicAuth,
  cleanup,
  countById,
  type Fn,
  killLeftovers,
  ORDERS_AUTH,
  records,
  type Setup,
  setup,
  submit,
} from "./helpers.ts";

const CALLS = 1000;

/** `f2s dev` number `n` on the functions of `s`, on the broker, with a queue file of its own. */
function plane(s: Setup, broker: Broker, fn: string, n: number): Promise<ControlPlane> {
  const config = s.config.replace(`${s.dir}/queue/async.db`, `${s.dir}/queue-${n}/async.db`) +
    `kafka:
  enabled: true
  brokers: ["${broker.bootstrap}"]
  consumergroup: f2s-async-test
  session_timeout: 10s
  heartbeat_interval: 1s
  listeners:
    - topic: async-test-unused
      actions: [{ name: unused, f2sfunctions: [${fn}] }]
`;
  return startDev({ functionsDir: s.dir, config, timeoutMs: 60_000 });
}

/** Two control planes sharing the topics, pushed to `planes` as they start (to be stopped). */
async function twoPlanes(s: Setup, broker: Broker, fn: string, planes: ControlPlane[]) {
  for (const n of [0, 1]) planes.push(await plane(s, broker, fn, n));
  return planes;
}

interface TwoPlanes {
  s: Setup;
  broker: Broker;
  a: ControlPlane;
  b: ControlPlane;
  /** Every plane started; all are killed after the test (push any started later). */
  planes: ControlPlane[];
}

/** A test on two control planes sharing a fresh broker; everything is stopped after it. */
function twoPlaneTest(
  name: string,
  fns: Fn[],
  body: (t: TwoPlanes) => Promise<void>,
  configExtra = "",
) {
  Deno.test({
    name,
    sanitizeOps: false,
    sanitizeResources: false,
    async fn() {
      let broker: Broker | undefined;
      const s = await setup(fns, configExtra);
      const planes: ControlPlane[] = [];
      try {
        broker = await startBroker({ version: KAFKA_VERSIONS["4"] });
        await twoPlanes(s, broker, fns[0].name, planes);
        await body({ s, broker, a: planes[0], b: planes[1], planes });
      } finally {
        for (const p of planes) await p.stop("SIGKILL").catch(() => {});
        await broker?.stop();
        await cleanup(s);
      }
    },
  });
}

/** Waits until `url` answers GET /calls/{id} (the state topic reached it). */
function readableAt(url: string, id: string, headers: HeadersInit = {}) {
  return waitFor(
    `call ${id} readable at ${url}`,
    async () => {
      const res = await fetch(`${url}/calls/${id}`, { headers });
      await res.body?.cancel();
      return res.status === 200;
    },
    30_000,
    100,
  );
}

/** Waits until `url` shows every call in `state`; a timeout says how many are in which. */
async function allInState(url: string, ids: string[], state: string, timeoutMs: number) {
  await waitFor(
    `every call ${state} at ${url}`,
    async () => {
      return (await statesAt(url, ids)).every((s) => s === state);
    },
    timeoutMs,
    500,
  ).catch(async (e) => {
    const tally: Record<string, number> = {};
    for (const s of await statesAt(url, ids)) tally[s] = (tally[s] ?? 0) + 1;
    throw new Error(`${e.message}: ${JSON.stringify(tally)}`);
  });
}

/** The state of each call as `url` shows it ("404" for one it does not know). */
async function statesAt(url: string, ids: string[]): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < ids.length; i += 50) {
    out.push(
      ...await Promise.all(
        ids.slice(i, i + 50).map(async (id) => {
          const res = await fetch(`${url}/calls/${id}`);
          const body = await res.json();
          return res.status === 200 ? String(body.state) : String(res.status);
        }),
      ),
    );
  }
  return out;
}

twoPlaneTest(
  "async through Kafka: 1,000 calls, two control planes, one killed with -9",
  [{ name: "shared", maxReplicas: 2, async: { maxConcurrency: 20 } }],
  async ({ s, a, b }) => {
    const ids: string[] = [];
    const acceptedByB: string[] = [];
    for (let batch = 0; batch < CALLS / 50; batch++) {
      const target = batch % 2 === 0 ? a : b;
      const accepted = await Promise.all(
        Array.from({ length: 50 }, () => submit(target.url, "/shared/slow?ms=50")),
      );
      ids.push(...accepted);
      if (target === b) acceptedByB.push(...accepted);
      if (batch === CALLS / 100) {
        // Half submitted: kill b while it runs its share; a keeps accepting.
        await waitFor("b ran some calls", async () => (await records(s)).length >= 50, 60_000);
        // Each replica answers for the calls the other accepted (the shared call state).
        await readableAt(b.url, ids[0]);
        await readableAt(a.url, acceptedByB[0]);
      }
    }
    // Every call went to both partitions' owners; kill b in the middle of the work.
    await waitFor("a third done", async () => (await records(s)).length >= CALLS / 3, 120_000);
    await b.stop("SIGKILL");
    const doneAtKill = countById(await records(s)).size;
    // b's partitions hold about half the calls: most of its share is still to do.
    assert(doneAtKill < CALLS * 0.8, `${doneAtKill} calls already done at the kill`);
    killLeftovers(s, [a.pid]); // b's orphaned instances, not a and its own
    await waitFor(
      "every accepted call ran",
      async () => countById(await records(s)).size >= CALLS,
      180_000,
      500,
    ).catch(async (e) => {
      const counts = await (await fetch(`${a.url}/functions/shared/calls?limit=1`)).json();
      console.error("a's queue", JSON.stringify(counts.counts));
      const problems = a.logs().filter((l) => /"(warn|error)"/.test(l)).slice(-15);
      throw new Error(
        `${e.message}; ran ${countById(await records(s)).size}; a's last problems:\n` +
          problems.join("\n"),
      );
    });
    const seen = countById(await records(s));
    for (const id of ids) assert((seen.get(id) ?? 0) >= 1, `call ${id} was lost`);
    const duplicates = [...seen.values()].filter((n) => n > 1).length;
    console.log(JSON.stringify({ calls: CALLS, doneAtKill, duplicates }));
    // Only calls running at the kill run again: at most one per partition b consumed.
    assert(duplicates <= 16, `${duplicates} calls ran twice`);
    assertEquals(seen.size, CALLS);
    // The survivor shows every call's final state, b's accepted ones too.
    const t0 = Date.now();
    await allInState(a.url, ids, "succeeded", 60_000);
    const counts = (await (await fetch(`${a.url}/functions/shared/calls?limit=1`)).json()).counts;
    assertEquals(counts.succeeded, CALLS, `a's counts: ${JSON.stringify(counts)}`);
    const notRunAgain = a.logs().filter((l) => l.includes("was finished already")).length;
    console.log(JSON.stringify({
      acceptedByB: acceptedByB.length,
      viewLagMs: Date.now() - t0,
      notRunAgain,
    }));
  },
);

Deno.test({
  name: "schedule through Kafka: @every 1s ticks go through the shared topic, none twice",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    let broker: Broker | undefined;
    const s = await setup([{ name: "ticker", schedule: "@every 1s" }]);
    let plane: ControlPlane | undefined;
    try {
      broker = await startBroker({ version: KAFKA_VERSIONS["4"] });
      plane = await startDev({
        functionsDir: s.dir,
        config: s.config + `kafka:
  enabled: true
  brokers: ["${broker.bootstrap}"]
  consumergroup: f2s-schedule-test
  listeners:
    - topic: schedule-test-unused
      actions: [{ name: unused, f2sfunctions: [ticker] }]
`,
        timeoutMs: 60_000,
      });
      const ticks = async () => (await records(s)).filter((r) => r.tick !== "-");
      await waitFor("the first tick", async () => (await ticks()).length >= 1, 60_000);
      const first = (await ticks()).length;
      await new Promise((r) => setTimeout(r, 5_000));
      const inFive = (await ticks()).length - first;
      assert(inFive >= 4 && inFive <= 6, `${inFive} runs in 5 s`);
      const times = (await ticks()).map((r) => r.tick);
      assertEquals(new Set(times).size, times.length, "no tick ran twice");
      const logs = plane.logs().join("\n");
      assert(/the async consumer joined its group/.test(logs), "ticks went through the topic");
    } finally {
      await plane?.stop();
      await broker?.stop();
      await cleanup(s);
    }
  },
});

twoPlaneTest(
  "call state through Kafka: either replica answers for any call, same privileges",
  [{ name: "orders" }],
  async ({ s, a, b, broker, planes }) => {
    const olga = basicAuth("olga", "olga-pass");
    const otto = basicAuth("otto", "otto-pass");
    const admin = basicAuth("admin", "admin-pass");
    const post = { method: "POST", headers: olga, body: "x" };
    const atA = await submit(a.url, "/orders", post);
    const atB = await submit(b.url, "/orders", post);
    // Right after the 202 the accepting replica knows the call.
    const first = await fetch(`${a.url}/calls/${atA}`, { headers: olga });
    assertEquals(first.status, 200, await first.text());

    for (const [url, id] of [[b.url, atA], [a.url, atB]]) {
      const done = await waitFor(
        `${id} finished, seen at ${url}`,
        async () => {
          const res = await fetch(`${url}/calls/${id}`, { headers: olga });
          const body = await res.json();
          return res.status === 200 && body.state === "succeeded" ? body : undefined;
        },
        60_000,
        200,
      );
      assertEquals(JSON.parse(done.result.body).caller, "olga", "the result is shared too");
      const other = await fetch(`${url}/calls/${id}`, { headers: otto });
      await other.body?.cancel();
      assertEquals(other.status, 404, "another caller does not see it on any replica");
      const viewer = await fetch(`${url}/calls/${id}`, { headers: admin });
      await viewer.body?.cancel();
      assertEquals(viewer.status, 200, "settings:view sees it on any replica");
    }
    for (const p of planes) {
      const mine = await (await fetch(`${p.url}/functions/orders/calls`, { headers: olga }))
        .json();
      assertEquals(mine.calls.map((c: { id: string }) => c.id).sort(), [atA, atB].sort());
      const his = await (await fetch(`${p.url}/functions/orders/calls`, { headers: otto }))
        .json();
      assertEquals(his.calls.length, 0, "otto's list holds only his calls");
      const all = await (await fetch(`${p.url}/functions/orders/calls`, { headers: admin }))
        .json();
      assertEquals(all.counts.succeeded, 2);
    }
    // b dies; a replica started afterwards reads every call's state from the topic,
    // the ones b accepted included.
    await b.stop("SIGKILL");
    const c = await plane(s, broker, "orders", 2);
    planes.push(c);
    // Until it has read the topic, it says "try again" (503), never "no such call" (404).
    for (const id of [atA, atB]) {
      const seen = new Set<number>();
      const body = await waitFor(
        `${id} at the new replica`,
        async () => {
          const res = await fetch(`${c.url}/calls/${id}`, { headers: olga });
          seen.add(res.status);
          if (res.status === 503) assertEquals(res.headers.get("retry-after"), "1");
          const text = await res.text();
          return res.status === 200 ? JSON.parse(text) : undefined;
        },
        30_000,
        20,
      );
      assertEquals(body.state, "succeeded");
      assert([...seen].every((status) => status === 200 || status === 503), `${[...seen]}`);
    }
    const unknown = await fetch(`${c.url}/calls/no-such-call`, { headers: olga });
    await unknown.body?.cancel();
    assertEquals(unknown.status, 404, "once it has read the topic, an unknown call is 404");
  },
  ORDERS_AUTH,
);

const maxRetries = 3;
twoPlaneTest(
  "retries through Kafka: attempts made by a killed replica count on the survivor",
  [{
    name: "failing",
    maxReplicas: 2,
    async: { maxRetries, maxConcurrency: 20 },
  }],
  async ({ s, a, b }) => {
    // Always 500: each call is tried 1 + maxRetries times (100 ms doubling backoff), and
    // the calls of a partition one after the other, so b is mid-way through several.
    const ids = await Promise.all(
      Array.from({ length: 48 }, () => submit(a.url, "/failing/flaky?fail=1000")),
    );
    await waitFor(
      "calls retried",
      async () => {
        const runs = [...countById(await records(s)).values()];
        return runs.filter((n) => n >= 2).length >= 8;
      },
      60_000,
      50,
    );
    await b.stop("SIGKILL");
    killLeftovers(s, [a.pid]);
    await allInState(a.url, ids, "dead-lettered", 120_000);
    const runs = countById(await records(s));
    const over = ids.filter((id) => (runs.get(id) ?? 0) > maxRetries + 1);
    console.log(JSON.stringify({ calls: ids.length, runMoreThanLimit: over.length }));
    // At most one run more than the limit: the one b started but had not shared yet.
    for (const id of ids) {
      const n = runs.get(id) ?? 0;
      assert(n >= maxRetries + 1 && n <= maxRetries + 2, `call ${id} ran ${n} times`);
    }
  },
);

twoPlaneTest(
  "async through Kafka: a replica stopped with SIGTERM mid-way runs no call twice",
  [{ name: "shared", maxReplicas: 2, async: { maxConcurrency: 20 } }],
  async ({ s, a, b }) => {
    const ids: string[] = [];
    for (let batch = 0; batch < 8; batch++) {
      const target = batch % 2 === 0 ? a : b;
      ids.push(
        ...await Promise.all(
          Array.from({ length: 50 }, () => submit(target.url, "/shared/slow?ms=100")),
        ),
      );
    }
    await waitFor("a quarter done", async () => (await records(s)).length >= 100, 120_000);
    // b finishes what it runs, shares it and commits, and hands over the rest.
    await b.stop();
    const doneAtStop = countById(await records(s)).size;
    assert(doneAtStop < 350, `${doneAtStop} calls already done at the stop`);
    await waitFor(
      "every accepted call ran",
      async () => countById(await records(s)).size >= ids.length,
      120_000,
      500,
    );
    const seen = countById(await records(s));
    const twice = [...seen.values()].filter((n) => n > 1).length;
    console.log(JSON.stringify({ calls: ids.length, doneAtStop, twice }));
    assertEquals(twice, 0, "calls b ran before or while stopping ran again");
    await allInState(a.url, ids, "succeeded", 60_000);
  },
);
