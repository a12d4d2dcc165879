/**
 * The Kafka trigger scenarios, run against one real broker per Kafka version (each
 * version's *_test.ts file calls `kafkaTriggerSuite`). Every step uses its own topics and
 * consumer groups, so the steps share the broker without seeing each other's records.
 */

import client from "prom-client";
import { Reader } from "../../common/config_util.ts";
import { createEventLog, type EventLog } from "../../control/events.ts";
import { type KafkaConfig, parseKafkaConfig } from "../../control/kafka/config.ts";
import { type KafkaTriggers, startKafkaTriggers } from "../../control/kafka/triggers.ts";
import type { FunctionDef } from "../../common/function.ts";
import { createLogger } from "../../common/log.ts";
import { assert, assertEquals, assertMatch } from "../harness/assert.ts";
import { type Broker, startBroker } from "./broker.ts";
import {
  committedOffsets,
  createTopics,
  forwardingInvoke,
  type FunctionServer,
  produce,
  readTopic,
  resolverOf,
  signal,
  startFunctionServer,
  testFunction,
  testKafka,
  waitFor,
} from "./helpers.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** The seed-shaped section with test timings: short sessions, read from the start. */
function kafkaConfig(bootstrap: string, raw: Record<string, unknown>): KafkaConfig {
  const r = new Reader();
  const config = parseKafkaConfig(
    {
      enabled: true,
      brokers: [bootstrap],
      from_beginning: true,
      session_timeout: "6s",
      heartbeat_interval: "500ms",
      ...raw,
    },
    "kafka",
    r,
  );
  if (r.errors.length > 0) throw new Error(`test config invalid: ${JSON.stringify(r.errors)}`);
  return config;
}

interface Running {
  triggers: KafkaTriggers;
  registry: client.Registry;
  events: EventLog;
}

async function startTriggers(
  config: KafkaConfig,
  fns: FunctionDef[],
  invoke: (fn: FunctionDef, req: Request, id: string) => Promise<Response>,
  clientId?: string,
): Promise<Running> {
  const registry = new client.Registry();
  const events = createEventLog();
  const triggers = await startKafkaTriggers({
    config,
    resolve: resolverOf(fns),
    invoke,
    events,
    registry,
    clientId,
    log: createLogger("kafka-test", { clientId }),
  });
  return { triggers, registry, events };
}

async function metricValue(registry: client.Registry, line: string): Promise<number | undefined> {
  const text = await registry.metrics();
  const found = text.split("\n").find((l) => l.startsWith(line + " "));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}

export function kafkaTriggerSuite(version: string): void {
  Deno.test({
    name: `kafka triggers against Apache Kafka ${version} (KRaft)`,
    // kafkajs keeps sockets and timers of disconnected clients until they time out.
    sanitizeOps: false,
    sanitizeResources: false,
    async fn(t) {
      let broker: Broker | undefined;
      const functions = startFunctionServer();
      try {
        broker = await startBroker({ version });
        const b = broker;
        const steps: [string, () => Promise<void>][] = [
          ["each filter type matches and does not match", () => filters(b, functions)],
          [
            "response key, topic and headers; two functions on one action",
            () => responses(b, functions),
          ],
          [
            "failing function: retried with backoff, error response, dead letter, next message",
            () => failures(b, functions),
          ],
          [
            "crash after invoking, before committing: processed again",
            () => crashBeforeCommit(b, functions),
          ],
          ["stop finishes the in-flight message and commits it", () => stopDrains(b, functions)],
          [
            "two replicas share the partitions through the consumer group",
            () => replicas(b, functions),
          ],
          [
            "broker restarted: unhealthy while away, consumption resumes",
            () => brokerRestart(b, functions),
          ],
        ];
        for (const [name, run] of steps) {
          const ok = await t.step(name, run);
          if (!ok) console.error(b.logTail(30));
        }
      } finally {
        await broker?.stop();
        await functions.close();
      }
    },
  });
}

async function filters(broker: Broker, functions: FunctionServer): Promise<void> {
  const kafka = testKafka(broker.bootstrap);
  await createTopics(kafka, [{ topic: "filters-in" }, { topic: "filters-out" }]);
  const out = { topic: "filters-out" };
  const config = kafkaConfig(broker.bootstrap, {
    consumergroup: "g-filters",
    listeners: [{
      topic: "filters-in",
      actions: [
        {
          name: "eq",
          triggers: [{ type: "key", filter: "equal", value: "order" }],
          f2sfunctions: ["f-eq"],
          response: { key: "r-eq", ...out },
        },
        {
          name: "neq",
          triggers: [{ type: "header", name: "X-Kind", filter: "not equal", value: "test" }],
          f2sfunctions: ["f-neq"],
          response: { key: "r-neq", ...out },
        },
        {
          name: "contains",
          triggers: [{ type: "value", filter: "contains", value: "urgent" }],
          f2sfunctions: ["f-contains"],
          response: { key: "r-contains", ...out },
        },
        {
          name: "ncontains",
          triggers: [{ type: "key", filter: "not contains", value: "skip" }],
          f2sfunctions: ["f-ncontains"],
          response: { key: "r-ncontains", ...out },
        },
      ],
    }],
  });
  const fns = ["f-eq", "f-neq", "f-contains", "f-ncontains"].map((n) => testFunction(n));
  await produce(kafka, "filters-in", [
    { key: "order", value: "urgent: pay", headers: { "x-kind": "test" } },
    { key: "order-skip", value: "normal", headers: { "x-kind": "prod" } },
    { key: null, value: "very urgent" },
  ]);
  const { triggers } = await startTriggers(config, fns, forwardingInvoke(functions.url));
  try {
    const responses = await readTopic(kafka, "filters-out", 7, { settleMs: 1000 });
    assertEquals(functions.bodiesFor("f-eq"), ["urgent: pay"]);
    assertEquals(functions.bodiesFor("f-neq"), ["normal", "very urgent"]);
    assertEquals(functions.bodiesFor("f-contains"), ["urgent: pay", "very urgent"]);
    assertEquals(functions.bodiesFor("f-ncontains"), ["urgent: pay", "very urgent"]);
    assertEquals(
      responses.map((r) => `${r.key}=${r.value}`).sort(),
      [
        "r-contains=f-contains:urgent: pay",
        "r-contains=f-contains:very urgent",
        "r-eq=f-eq:urgent: pay",
        "r-ncontains=f-ncontains:urgent: pay",
        "r-ncontains=f-ncontains:very urgent",
        "r-neq=f-neq:normal",
        "r-neq=f-neq:very urgent",
      ],
    );
    await waitFor(
      "offset 3 committed",
      async () => (await committedOffsets(kafka, "g-filters", "filters-in"))[0] === 3,
    );
  } finally {
    await triggers.stop();
  }
}

async function responses(broker: Broker, functions: FunctionServer): Promise<void> {
  const kafka = testKafka(broker.bootstrap);
  await createTopics(kafka, [{ topic: "orders" }]);
  const uid = "ffe4eb97-3716-479f-8cd4-f86d05bb8e99";
  // Seed shape: consumergroup on the listener, function by uid, response.key only.
  const config = kafkaConfig(broker.bootstrap, {
    listeners: [{
      topic: "orders",
      consumergroup: "g-orders",
      actions: [{
        name: "notify",
        triggers: [{ type: "key", filter: "equal", value: "go" }],
        f2sfunctions: ["fn-one", uid],
        response: { key: "done" },
      }],
    }],
  });
  const fns = [testFunction("fn-one", undefined, "GET"), testFunction("fn-two", uid, "PUT")];
  functions.handle("fn-one", (r) => Response.json({ one: r.body }));
  functions.handle("fn-two", (r) => new Response(`two got ${r.body}`, { status: 201 }));
  const { triggers, registry, events } = await startTriggers(
    config,
    fns,
    forwardingInvoke(functions.url),
  );
  try {
    await waitFor("kafka healthy", () => triggers.health().connected);
    await produce(kafka, "orders", [{
      key: "go",
      value: "payload",
      headers: { "x-request-id": "req-123", "x-custom": "v" },
    }]);
    // The two responses land on the listener's own topic and must not fire it again.
    const records = await readTopic(kafka, "orders", 3, { settleMs: 1500 });
    assertEquals(records.length, 3, JSON.stringify(records));
    const answers = records.filter((r) => r.key === "done")
      .sort((a, b) => a.headers["x-f2s-function"].localeCompare(b.headers["x-f2s-function"]));
    assertEquals(answers.map((r) => r.value), ['{"one":"payload"}', "two got payload"]);
    for (const [i, a] of answers.entries()) {
      assertEquals(a.headers["x-request-id"], "req-123");
      assertEquals(a.headers["x-f2s-original-key"], "go");
      assertEquals(a.headers["x-f2s-function"], ["fn-one", "fn-two"][i]);
      assertEquals(a.headers["x-f2s-status"], ["200", "201"][i]);
    }
    const calls = functions.received.filter((r) => r.fn === "fn-one" || r.fn === "fn-two");
    assertEquals(calls.map((c) => `${c.fn} ${c.method}`).sort(), ["fn-one POST", "fn-two PUT"]);
    for (const c of calls) {
      assertEquals(c.body, "payload");
      assertEquals(c.headers.get("x-request-id"), "req-123");
      assertEquals(c.headers.get("x-custom"), "v");
      assertEquals(c.headers.get("x-f2s-kafka-topic"), "orders");
      assertEquals(c.headers.get("x-f2s-kafka-partition"), "0");
      assertEquals(c.headers.get("x-f2s-kafka-offset"), "0");
      assertEquals(c.headers.get("x-f2s-kafka-key"), "go");
    }
    await waitFor(
      "offset 3 committed (the message and both responses)",
      async () => (await committedOffsets(kafka, "g-orders", "orders"))[0] === 3,
    );
    assertEquals(await metricValue(registry, "f2s_kafka_connected"), 1);
    assertEquals(
      await metricValue(registry, 'f2s_kafka_invocations_total{function="fn-two",outcome="ok"}'),
      1,
    );
    assertEquals(
      await metricValue(registry, 'f2s_kafka_produced_total{topic="orders",kind="response"}'),
      2,
    );
    assertEquals(
      await metricValue(registry, 'f2s_kafka_messages_consumed_total{topic="orders"}'),
      3,
    );
    assert(events.list({ type: "kafka.connected" }).length >= 1, "kafka.connected event");
  } finally {
    await triggers.stop();
  }
}

async function failures(broker: Broker, functions: FunctionServer): Promise<void> {
  const kafka = testKafka(broker.bootstrap);
  await createTopics(kafka, [{ topic: "jobs" }, { topic: "jobs-out" }, { topic: "jobs-dlt" }]);
  const config = kafkaConfig(broker.bootstrap, {
    consumergroup: "g-jobs",
    retries: 2,
    retry_backoff: "100ms",
    dead_letter_topic: "jobs-dlt",
    listeners: [{
      topic: "jobs",
      actions: [
        { name: "work", f2sfunctions: ["worker"], response: { topic: "jobs-out" } },
        {
          name: "ghost",
          triggers: [{ type: "value", filter: "equal", value: "broken" }],
          f2sfunctions: ["not-deployed"],
          response: { topic: "jobs-out" },
        },
      ],
    }],
  });
  const attempts = new Map<string, number[]>();
  functions.handle("worker", (r) => {
    const times = [...attempts.get(r.body) ?? [], performance.now()];
    attempts.set(r.body, times);
    if (r.body === "flaky" && times.length <= 2) return new Response("not yet", { status: 503 });
    if (r.body === "broken") return Response.json({ error: "boom" }, { status: 500 });
    if (r.body === "bad") return new Response("bad input", { status: 400 });
    return new Response(`done ${r.body}`);
  });
  const { triggers, registry } = await startTriggers(
    config,
    [testFunction("worker")],
    forwardingInvoke(functions.url),
  );
  try {
    await produce(
      kafka,
      "jobs",
      ["flaky", "broken", "bad", "after"].map((v) => ({
        key: `k-${v}`,
        value: v,
      })),
    );
    const out = await readTopic(kafka, "jobs-out", 5, { settleMs: 500 });
    // One partition, handled in order: every attempt of a message before the next message.
    assertEquals(functions.bodiesFor("worker"), [
      "flaky",
      "flaky",
      "flaky",
      "broken",
      "broken",
      "broken",
      "bad",
      "after",
    ]);
    const broken = attempts.get("broken")!;
    assert(broken[1] - broken[0] >= 95, `first backoff ${broken[1] - broken[0]} ms < 100 ms`);
    assert(broken[2] - broken[1] >= 195, `second backoff ${broken[2] - broken[1]} ms < 200 ms`);
    const summary = out.map((r) =>
      `${r.headers["x-f2s-original-key"]} ${r.headers["x-f2s-function"]} ${
        r.headers["x-f2s-status"]
      } ${r.value}`
    ).sort();
    assertEquals(summary.length, 5, summary.join("\n"));
    assertEquals(summary[0], "k-after worker 200 done after");
    assertEquals(summary[1], "k-bad worker 400 bad input");
    assertEquals(
      summary[2],
      'k-broken not-deployed 404 {"error":"function \\"not-deployed\\" ' +
        'is not deployed","details":{"function":"not-deployed","topic":"jobs"}}',
    );
    assertEquals(summary[3], 'k-broken worker 500 {"error":"boom"}');
    assertEquals(summary[4], "k-flaky worker 200 done flaky");
    const dead = await readTopic(kafka, "jobs-dlt", 2, { settleMs: 500 });
    assertEquals(
      dead.map((r) =>
        `${r.key} ${r.value} ${r.headers["x-f2s-function"]} ${r.headers["x-f2s-status"]} ${
          r.headers["x-f2s-error"]
        }`
      ).sort(),
      [
        'k-broken broken not-deployed 404 function "not-deployed" is not deployed',
        "k-broken broken worker 500 boom",
      ],
    );
    await waitFor(
      "offset 4 committed",
      async () => (await committedOffsets(kafka, "g-jobs", "jobs"))[0] === 4,
    );
    const metric = (outcome: string) =>
      metricValue(registry, `f2s_kafka_invocations_total{function="worker",outcome="${outcome}"}`);
    assertEquals(
      [
        await metric("ok"),
        await metric("rejected"),
        await metric("failed"),
        await metric("retried"),
      ],
      [2, 1, 1, 4],
    );
  } finally {
    await triggers.stop();
  }
}

/** Runs tests/kafka/trigger_process.ts; resolves once it printed "ready". */
async function spawnTriggerProcess(configPath: string, functionUrl: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}tests/kafka/trigger_process.ts`, configPath, functionUrl],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { F2S_LOG_LEVEL: "warn" },
  }).spawn();
  let stderr = "";
  (async () => {
    for await (const c of child.stderr.pipeThrough(new TextDecoderStream())) {
      stderr = (stderr + c).slice(-10_000);
    }
  })().catch(() => {});
  const ready = (async () => {
    for await (const c of child.stdout.pipeThrough(new TextDecoderStream())) {
      if (c.includes("ready")) return true;
    }
    return false;
  })();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const ok = await Promise.race([
    ready,
    new Promise<false>((r) => timer = setTimeout(() => r(false), 60_000)),
  ]);
  clearTimeout(timer);
  if (!ok) {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
    await child.status;
    throw new Error(`trigger process not ready:\n${stderr}`);
  }
  return { child, stderr: () => stderr };
}

async function crashBeforeCommit(broker: Broker, functions: FunctionServer): Promise<void> {
  const kafka = testKafka(broker.bootstrap);
  await createTopics(kafka, [{ topic: "crash-in" }, { topic: "crash-out" }]);
  const dir = await Deno.makeTempDir({ prefix: "f2s-kafka-crash-" });
  const configPath = `${dir}/config.yaml`;
  await Deno.writeTextFile(
    configPath,
    `f2s:
  kafka:
    enabled: true
    brokers: ["${broker.bootstrap}"]
    from_beginning: true
    session_timeout: 3s
    heartbeat_interval: 500ms
    listeners:
      - topic: crash-in
        consumergroup: g-crash
        actions:
          - name: slow-action
            triggers:
              - type: key
                filter: equal
                value: crash-key
            f2sfunctions: [slow]
            response: { key: slow-done, topic: crash-out }
`,
  );
  const invoked = signal<string>();
  const release = signal();
  let calls = 0;
  functions.handle("slow", async (r) => {
    calls++;
    if (calls === 1) {
      invoked.resolve(r.headers.get("x-f2s-kafka-offset") ?? "");
      await release.promise;
    }
    return new Response(`handled ${r.body} on call ${calls}`);
  });
  const children: Deno.ChildProcess[] = [];
  try {
    const first = await spawnTriggerProcess(configPath, functions.url);
    children.push(first.child);
    await produce(kafka, "crash-in", [{ key: "crash-key", value: "important" }]);
    assertEquals(await invoked.promise, "0");
    first.child.kill("SIGKILL");
    await first.child.status;
    release.resolve();
    assertEquals((await committedOffsets(kafka, "g-crash", "crash-in"))[0], -1);

    const second = await spawnTriggerProcess(configPath, functions.url);
    children.push(second.child);
    const out = await readTopic(kafka, "crash-out", 1, { settleMs: 500 });
    assertEquals(out.map((r) => `${r.key} ${r.value}`), ["slow-done handled important on call 2"]);
    assertEquals(
      functions.received.filter((r) => r.fn === "slow").map((r) =>
        r.headers.get("x-f2s-kafka-offset")
      ),
      ["0", "0"],
    );
    await waitFor(
      "offset 1 committed",
      async () => (await committedOffsets(kafka, "g-crash", "crash-in"))[0] === 1,
    );
    second.child.kill("SIGTERM");
    const status = await second.child.status;
    assertEquals(status.code, 0, `trigger process exit: ${second.stderr()}`);
  } finally {
    release.resolve();
    for (const c of children) {
      try {
        c.kill("SIGKILL");
      } catch { /* already exited */ }
      await c.status;
    }
    await Deno.remove(dir, { recursive: true });
  }
}

async function stopDrains(broker: Broker, functions: FunctionServer): Promise<void> {
  const kafka = testKafka(broker.bootstrap);
  await createTopics(kafka, [{ topic: "drain-in" }, { topic: "drain-out" }]);
  const config = kafkaConfig(broker.bootstrap, {
    consumergroup: "g-drain",
    listeners: [{
      topic: "drain-in",
      actions: [{ name: "hold", f2sfunctions: ["hold"], response: { topic: "drain-out" } }],
    }],
  });
  const invoked = signal();
  const release = signal();
  functions.handle("hold", async (r) => {
    invoked.resolve();
    await release.promise;
    return new Response(`held ${r.body}`);
  });
  const { triggers } = await startTriggers(
    config,
    [testFunction("hold")],
    forwardingInvoke(functions.url),
  );
  try {
    await produce(kafka, "drain-in", [{ key: "k", value: "first" }, { key: "k", value: "second" }]);
    await invoked.promise;
    let stopped = false;
    const stopping = triggers.stop().then(() => (stopped = true));
    await new Promise((r) => setTimeout(r, 500));
    assert(!stopped, "stop() must wait for the message being handled");
    release.resolve();
    await stopping;
    assertEquals(functions.bodiesFor("hold"), ["first"], "no new message after stop()");
    assertEquals((await committedOffsets(kafka, "g-drain", "drain-in"))[0], 1);
    const out = await readTopic(kafka, "drain-out", 1, { settleMs: 300 });
    assertEquals(out.map((r) => r.value), ["held first"]);
  } finally {
    release.resolve();
    await triggers.stop();
  }
}

async function replicas(broker: Broker, functions: FunctionServer): Promise<void> {
  const kafka = testKafka(broker.bootstrap);
  await createTopics(kafka, [{ topic: "shared", partitions: 2 }, { topic: "shared-out" }]);
  const config = kafkaConfig(broker.bootstrap, {
    consumergroup: "g-shared",
    listeners: [{
      topic: "shared",
      actions: [{ name: "count", f2sfunctions: ["counter"], response: { topic: "shared-out" } }],
    }],
  });
  const handled: { replica: string; partition: string; value: string }[] = [];
  const invokeAs = (replica: string) => {
    const forward = forwardingInvoke(functions.url);
    return (fn: FunctionDef, req: Request, id: string) => {
      handled.push({
        replica,
        partition: req.headers.get("x-f2s-kafka-partition")!,
        value: req.headers.get("x-f2s-kafka-key")!,
      });
      return forward(fn, req, id);
    };
  };
  const fns = [testFunction("counter")];
  const one = await startTriggers(config, fns, invokeAs("one"), "replica-one");
  const two = await startTriggers(config, fns, invokeAs("two"), "replica-two");
  try {
    const admin = kafka.admin();
    await admin.connect();
    try {
      await waitFor("both replicas in a stable group", async () => {
        const { groups: [g] } = await admin.describeGroups(["g-shared"]);
        return g.state === "Stable" && g.members.length === 2 &&
          one.triggers.health().connected && two.triggers.health().connected;
      });
    } finally {
      await admin.disconnect();
    }
    const records = Array.from({ length: 20 }, (_, i) => ({
      key: `m${String(i).padStart(2, "0")}`,
      value: "x",
      partition: i % 2,
    }));
    await produce(kafka, "shared", records);
    await waitFor("20 invocations", () => handled.length >= 20);
    await new Promise((r) => setTimeout(r, 500));
    assertEquals(handled.map((h) => h.value).sort(), records.map((r) => r.key));
    const byPartition = new Map<string, typeof handled>();
    for (const h of handled) {
      byPartition.set(h.partition, [...byPartition.get(h.partition) ?? [], h]);
    }
    assertEquals([...byPartition.keys()].sort(), ["0", "1"]);
    for (const [p, hs] of byPartition) {
      // One owner per partition, and that partition's records in produced order.
      assertEquals(new Set(hs.map((h) => h.replica)).size, 1, `partition ${p} had two owners`);
      assertEquals(hs.map((h) => h.value), [...hs.map((h) => h.value)].sort());
    }
    assertEquals(new Set(handled.map((h) => h.replica)).size, 2, "both replicas got a partition");

    // One replica goes away: the other takes over its partition.
    await one.triggers.stop();
    handled.length = 0;
    await produce(
      kafka,
      "shared",
      [0, 1, 0, 1].map((p, i) => ({ key: `n${i}`, value: "y", partition: p })),
    );
    await waitFor("4 invocations after failover", () => handled.length >= 4);
    assertEquals(handled.map((h) => `${h.replica} ${h.value}`).sort(), [
      "two n0",
      "two n1",
      "two n2",
      "two n3",
    ]);
  } finally {
    await one.triggers.stop();
    await two.triggers.stop();
  }
}

async function brokerRestart(broker: Broker, functions: FunctionServer): Promise<void> {
  const kafka = testKafka(broker.bootstrap);
  await createTopics(kafka, [{ topic: "restart-in" }, { topic: "restart-out" }]);
  const configFor = (group: string) =>
    kafkaConfig(broker.bootstrap, {
      consumergroup: group,
      listeners: [{
        topic: "restart-in",
        actions: [{
          name: "echo",
          f2sfunctions: [group === "g-restart-a" ? "fa" : "fb"],
          response: { topic: "restart-out" },
        }],
      }],
    });
  const fns = [testFunction("fa"), testFunction("fb")];
  const invoke = forwardingInvoke(functions.url);
  const a = await startTriggers(configFor("g-restart-a"), fns, invoke, "restart-a");
  let b: Running | undefined;
  try {
    await produce(kafka, "restart-in", [{ key: "k", value: "before" }]);
    await waitFor("fa got the first message", () => functions.bodiesFor("fa").length === 1);
    assert(a.triggers.health().connected, "healthy before the broker goes away");

    await broker.shutdown();
    const down = await waitFor("kafka reported unhealthy", () => {
      const h = a.triggers.health();
      return h.connected ? undefined : h;
    });
    assert(down.enabled && typeof down.detail === "string" && down.detail.length > 0);
    assertEquals(await metricValue(a.registry, "f2s_kafka_connected"), 0);
    await waitFor(
      "kafka.disconnected event",
      () => a.events.list({ type: "kafka.disconnected" }).length > 0,
    );

    // Starting while the broker is away neither throws nor waits for it.
    const t0 = performance.now();
    b = await startTriggers(configFor("g-restart-b"), fns, invoke, "restart-b");
    assert(performance.now() - t0 < 2_000, "startKafkaTriggers must not wait for brokers");
    await new Promise((r) => setTimeout(r, 500));
    const bHealth = b.triggers.health();
    assertEquals(bHealth.connected, false);
    assertMatch(bHealth.detail ?? "", /./);

    await broker.start();
    const bb = b;
    await waitFor(
      "both healthy again",
      () => a.triggers.health().connected && bb.triggers.health().connected,
      90_000,
    );
    await produce(testKafka(broker.bootstrap), "restart-in", [{ key: "k", value: "after" }]);
    await waitFor(
      "fa got the message sent after the restart",
      () => functions.bodiesFor("fa").includes("after"),
      60_000,
    );
    await waitFor(
      "fb (started while the broker was away) got both",
      () => functions.bodiesFor("fb").includes("after"),
      60_000,
    );
    assertEquals(functions.bodiesFor("fa"), ["before", "after"]);
    assertEquals(functions.bodiesFor("fb"), ["before", "after"]);
    const out = await readTopic(testKafka(broker.bootstrap), "restart-out", 4, { settleMs: 300 });
    assertEquals(out.map((r) => r.value).sort(), [
      "fa:after",
      "fa:before",
      "fb:after",
      "fb:before",
    ]);
  } finally {
    await a.triggers.stop();
    await b?.triggers.stop();
  }
}
