// The call-state topic (control/async/call_state.ts) on a real Kafka broker, without the
// rest of the control plane: what one replica publishes reaches another replica's view, a
// replica started later reads every call from the beginning except those past retention
// (and says it has caught up only once it has read all that was there when it started),
// a foreign record on the topic is skipped without stopping the others, and the topic is
// created compacted and time-bounded.
import { assert, assertEquals } from "../harness/assert.ts";
import { waitFor } from "../harness/dev.ts";
import { type Broker, KAFKA_VERSIONS, startBroker } from "../kafka/broker.ts";
import { produce, testKafka } from "../kafka/helpers.ts";
import { Reader } from "../../common/config_util.ts";
import { createLogger } from "../../common/log.ts";
import { parseKafkaConfig } from "../../control/kafka/config.ts";
import { type SharedCalls, startSharedCalls } from "../../control/async/call_state.ts";
import { type CallRecord, type CallView, openCallView } from "../../control/async/call_view.ts";

const TOPIC = "calls-state-test";
const RETENTION = 120_000;

function record(id: string, patch: Partial<CallRecord> = {}): CallRecord {
  return {
    id,
    function: "orders",
    state: "queued",
    attempts: 0,
    nextAt: Date.now(),
    createdAt: Date.now(),
    callbackAttempts: 0,
    source: "http",
    caller: { name: "olga", group: "orders" },
    ...patch,
  };
}

Deno.test({
  name: "call-state topic: replicas share records, a late one replays them, bounded in time",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    let broker: Broker | undefined;
    const dir = await Deno.makeTempDir({ prefix: "f2s-call-state-" });
    const replicas: { shared: SharedCalls; view: CallView }[] = [];
    try {
      broker = await startBroker({ version: KAFKA_VERSIONS["4"] });
      const r = new Reader();
      const kafka = parseKafkaConfig(
        {
          enabled: true,
          brokers: [broker.bootstrap],
          consumergroup: "state-test",
          listeners: [{ topic: "unused", actions: [{ name: "unused", f2sfunctions: ["x"] }] }],
        },
        "kafka",
        r,
      );
      assertEquals(r.errors, []);
      const replica = (n: number) => {
        const view = openCallView(`${dir}/${n}/async.db`);
        const shared = startSharedCalls({
          kafka,
          topic: TOPIC,
          view,
          retention: RETENTION,
          log: createLogger(`replica-${n}`),
        });
        replicas.push({ shared, view });
        return { shared, view };
      };
      const a = replica(0);
      const b = replica(1);

      await a.shared.publish(record("x"));
      assertEquals(a.view.get("x")?.state, "queued", "the publisher's view at once");
      await waitFor("b sees x", () => b.view.get("x")?.state === "queued", 30_000, 100);
      const body = new TextEncoder().encode("the answer");
      await b.shared.publish(
        record("x", {
          state: "succeeded",
          attempts: 1,
          startedAt: Date.now(),
          finishedAt: Date.now(),
          status: 200,
          resultBody: body,
        }),
      );
      await waitFor("a sees x finished", () => a.view.get("x")?.state === "succeeded", 30_000, 100);
      assertEquals(new TextDecoder().decode(a.view.get("x")!.resultBody), "the answer");

      // Someone else's bytes on the topic, then an old finished call and a current one.
      await produce(testKafka(broker.bootstrap), TOPIC, [
        { key: "junk", value: "not a call" },
        { key: "y", value: JSON.stringify({ ...record("y"), state: "hacked" }) },
      ]);
      const old = Date.now() - 2 * RETENTION;
      await a.shared.publish(
        record("old", { state: "failed", attempts: 1, createdAt: old, finishedAt: old }),
      );
      await a.shared.publish(record("z"));
      await waitFor("b sees z past the junk", () => b.view.get("z") !== undefined, 30_000, 100);
      assertEquals(b.view.get("y"), undefined, "a record with an unknown state is refused");

      // Enough records that a replica started now takes a while to read them all.
      const bulk = Array.from({ length: 1000 }, (_, i) => `bulk-${i}`);
      await Promise.all(bulk.map((id) => a.shared.publish(record(id))));
      await waitFor("b sees the bulk", () => b.view.get(bulk[999]) !== undefined, 30_000, 100);
      assert(a.shared.caughtUp() && b.shared.caughtUp(), "replicas that started on an empty topic");

      // A replica started now reads everything from the beginning, but not what is past
      // retention; it says it has caught up only once all of it is in its view.
      const cStarted = performance.now();
      const c = replica(2);
      assertEquals(c.shared.caughtUp(), false, "a replica that has not read yet");
      let polls = 0;
      let missing: string[] = [];
      await waitFor(
        "c to catch up",
        () => {
          polls++;
          if (!c.shared.caughtUp()) return false;
          missing = [...bulk, "x", "z"].filter((id) => c.view.get(id) === undefined);
          return true;
        },
        30_000,
        2,
      );
      // Checked here, not in the poll (a check that throws is retried).
      assertEquals(missing.length, 0, "caught up, yet calls from before its start are missing");
      assert(polls > 1, "the catch-up was observed while it happened");
      console.log(
        `a replica started on ${bulk.length + 5} records caught up after ${
          Math.round(performance.now() - cStarted)
        } ms`,
      );
      await waitFor(
        "c replays x and z",
        () => c.view.get("x")?.state === "succeeded" && c.view.get("z") !== undefined,
        30_000,
        100,
      );
      assertEquals(c.view.get("old"), undefined, "a call finished before the retention");
      assertEquals(c.view.counts("orders").succeeded, 1);

      const admin = testKafka(broker.bootstrap).admin();
      await admin.connect();
      try {
        const described = await admin.describeConfigs({
          resources: [{ type: 2, name: TOPIC, configNames: ["cleanup.policy", "retention.ms"] }],
          includeSynonyms: false,
        });
        const entries = Object.fromEntries(
          described.resources[0].configEntries.map((e) => [e.configName, e.configValue]),
        );
        assertEquals(entries["cleanup.policy"], "compact,delete");
        assert(Number(entries["retention.ms"]) >= RETENTION, JSON.stringify(entries));
      } finally {
        await admin.disconnect();
      }
    } finally {
      for (const r of replicas) {
        await r.shared.stop();
        r.view.close();
      }
      await broker?.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
