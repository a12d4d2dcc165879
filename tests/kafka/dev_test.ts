// End to end: `f2s dev` with kafka enabled in its config.yaml, a real broker and a real
// function process started from zero by the message (the dispatcher path: cold start,
// metrics), its answer produced to the response topic. Skipped, with the reason printed,
// until the control plane starts the Kafka triggers (control/platform.ts or control/cli/dev.ts).
import { assert, assertEquals } from "../harness/assert.ts";
import { startDev } from "../harness/dev.ts";
import { copy } from "../harness/files.ts";
import { withDevAndBroker } from "./dev_broker.ts";
import { createTopics, produce, readTopic, waitFor } from "./helpers.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const ECHO = `${ROOT}tests/control/fixtures/echo`;

async function controlPlaneStartsKafka(): Promise<boolean> {
  for (const file of ["control/platform.ts", "control/cli/dev.ts"]) {
    const text = await Deno.readTextFile(`${ROOT}${file}`).catch(() => "");
    if (text.includes("startKafkaTriggers")) return true;
  }
  return false;
}

const wired = await controlPlaneStartsKafka();
if (!wired) {
  console.error(
    "tests/kafka/dev_test.ts: skipped, f2s dev does not start the Kafka triggers yet " +
      "(no startKafkaTriggers in control/platform.ts or control/cli/dev.ts)",
  );
}

Deno.test({
  name: "f2s dev invokes a function from a Kafka message and produces its answer",
  ignore: !wired,
  // kafkajs (the test's own client) keeps sockets of disconnected clients for a while.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withDevAndBroker("f2s-kafka-dev-", async ({ broker, kafka, dir, started }) => {
      await createTopics(kafka, [{ topic: "dev-in" }, { topic: "dev-out" }]);
      await copy(ECHO, `${dir}/echo`);
      await Deno.writeTextFile(
        `${dir}/echo.yaml`,
        JSON.stringify({
          apiVersion: "f2s.opensight.ch/v1alpha1",
          kind: "Function",
          metadata: { name: "echo", namespace: "f2s" },
          spec: { endpoint: "/echo", method: "POST" },
          target: {
            containerImage: "f2s-tests/echo:latest",
            minReplicas: 0,
            maxReplicas: 1,
            local: { dir: "./echo", command: "node server.js" },
          },
        }),
      );
      const dev = started(
        await startDev({
          functionsDir: dir,
          config: `
f2s:
  kafka:
    enabled: true
    brokers: ["${broker.bootstrap}"]
    from_beginning: true
    listeners:
      - topic: dev-in
        consumergroup: f2s-dev
        actions:
          - name: echo-action
            triggers:
              - { type: key, filter: equal, value: echo-me }
            f2sfunctions: [echo]
            response: { key: echoed, topic: dev-out }
`,
        }),
      );
      const url = dev.url;
      await waitFor("kafka connected in /health", async () => {
        const health = await (await fetch(`${url}/health`)).json();
        return health.kafka?.connected === true;
      }, 60_000);
      await produce(kafka, "dev-in", [
        { key: "ignored", value: "not for echo" },
        { key: "echo-me", value: "hello from kafka", headers: { "x-request-id": "kafka-e2e-1" } },
      ]);
      const [answer] = await readTopic(kafka, "dev-out", 1, { timeoutMs: 60_000, settleMs: 500 });
      assert(answer, "an answer on dev-out");
      assertEquals(answer.key, "echoed");
      assertEquals(answer.headers["x-f2s-status"], "200");
      assertEquals(answer.headers["x-request-id"], "kafka-e2e-1");
      assertEquals(answer.headers["x-f2s-original-key"], "echo-me");
      const echoed = JSON.parse(answer.value);
      assertEquals(echoed.method, "POST");
      assertEquals(echoed.body, "hello from kafka");
      assertEquals(echoed.headers["x-f2s-kafka-topic"], "dev-in");
      assertEquals(echoed.headers["x-request-id"], "kafka-e2e-1");
      const metrics = await (await fetch(`${url}/metrics`)).text();
      assert(/f2s_kafka_connected 1/.test(metrics), "f2s_kafka_connected 1 in /metrics");
      assert(
        /f2s_kafka_messages_consumed_total\{topic="dev-in"\} 2/.test(metrics),
        "both messages counted",
      );
      assert(/f2s_cold_starts_total\{function="echo"\} 1/.test(metrics), "a cold start");
    });
  },
});
