// A user migrating from the original F2S: its README's config.yaml (tests/fixtures/
// original-f2s, loaded unchanged, only the broker replaced through F2S_KAFKA_BROKERS) runs
// `f2s dev`; the README's Kafka action reaches a command-mode function as input.json
// although the message has no content-type; the API takes a function's uid where the
// original did (GET, PUT, DELETE /functions/{uid}); the README's token auth works.
import { assert, assertEquals, assertMatch } from "../harness/assert.ts";
import { startDev } from "../harness/dev.ts";
import { copy } from "../harness/files.ts";
import { withDevAndBroker } from "./dev_broker.ts";
import { createTopics, produce, readTopic, waitFor } from "./helpers.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const CONFIG = `${ROOT}tests/fixtures/original-f2s/config.yaml`;

function pythonFunction(name: string, uid?: string) {
  return {
    apiVersion: "f2s.opensight.ch/v1alpha1",
    kind: "Function",
    metadata: { name, namespace: "f2s", ...(uid ? { uid } : {}) },
    spec: { endpoint: `/${name}`, method: "POST" },
    target: {
      containerImage: "f2s-examples/python:latest",
      minReplicas: 0,
      maxReplicas: 1,
      local: { dir: "./python" },
    },
  };
}

Deno.test({
  name:
    "the original F2S's README config.yaml: loads, its Kafka action gets input.json, uids address functions",
  // kafkajs (the test's own client) keeps sockets of disconnected clients for a while.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withDevAndBroker("f2s-original-", async ({ broker, kafka, dir, started }) => {
      await createTopics(kafka, [{ topic: "test" }]);
      await copy(`${ROOT}examples/python`, `${dir}/python`);
      // The README's action names its function by uid (the placeholder xxxxxxxxxx): this
      // function carries that uid; the other gets the uid f2s dev makes.
      await Deno.writeTextFile(
        `${dir}/by-kafka.yaml`,
        JSON.stringify(pythonFunction("by-kafka", "xxxxxxxxxx")),
      );
      await Deno.writeTextFile(`${dir}/by-uid.yaml`, JSON.stringify(pythonFunction("by-uid")));
      const dev = started(
        await startDev({
          functionsDir: dir,
          args: ["--config", CONFIG],
          env: { F2S_KAFKA_BROKERS: broker.bootstrap },
          timeoutMs: 60_000,
        }),
      );
      const url = dev.url;

      // The README's token mode: sign in as its user, then use the token.
      const signin = await fetch(`${url}/auth/signin`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ username: "roman", password: "helloworld" }),
      });
      assertEquals(signin.status, 200);
      const auth = { authorization: `Bearer ${(await signin.json()).token}` };
      const api = (path: string, init: RequestInit = {}) =>
        fetch(url + path, { ...init, headers: { ...auth, ...init.headers } });

      // GET, PUT and DELETE /functions/{uid}.
      const byUid = await (await api("/functions/by-uid")).json();
      const uid = byUid.metadata.uid;
      assertMatch(uid, /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      let res = await api(`/functions/${uid}`);
      assertEquals(res.status, 200);
      assertEquals((await res.json()).metadata.name, "by-uid");
      res = await api(`/functions/${uid.toUpperCase()}`);
      assertEquals(res.status, 200);
      await res.body?.cancel();
      const changed = pythonFunction("by-uid");
      changed.target.maxReplicas = 2;
      res = await api(`/functions/${uid}`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(changed),
      });
      assertEquals(res.status, 200);
      const updated = await res.json();
      assertEquals([updated.target.maxReplicas, updated.metadata.uid], [2, uid]);
      // The derived uid sent back (as a UI edit does) is not written into the user's file.
      res = await api(`/functions/${uid}`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(updated),
      });
      assertEquals(res.status, 200);
      await res.body?.cancel();
      const written = await Deno.readTextFile(`${dir}/by-uid.yaml`);
      assert(!/\buid:/.test(written), `uid in the file: ${written}`);
      res = await api(`/functions/xxxxxxxxxx`);
      assertEquals((await res.json()).metadata.name, "by-kafka");
      res = await api(`/functions/${uid}`, { method: "DELETE" });
      assertEquals(res.status, 204);
      res = await api(`/functions/${uid}`);
      assertEquals(res.status, 404);
      await res.body?.cancel();

      // Kafka: the README's broker without a port loaded; the environment's broker is used.
      await waitFor("kafka connected in /health", async () => {
        const health = await (await fetch(`${url}/health`)).json();
        return health.kafka?.connected === true;
      }, 60_000);
      // The README's listener reads from the latest offset: wait until its group has the
      // partition, so the message below is not before its start.
      const admin = kafka.admin();
      await admin.connect();
      try {
        await waitFor("consumer group f2s-consumer stable", async () => {
          const { groups } = await admin.describeGroups(["f2s-consumer"]);
          return groups[0]?.state === "Stable" && groups[0].members.length > 0;
        }, 60_000);
      } finally {
        await admin.disconnect();
      }
      // No content-type header: the value is JSON, so the function gets input.json.
      await produce(kafka, "test", [{ key: "test-key", value: '{"name":"F2S"}' }]);
      const records = await readTopic(kafka, "test", 2, { timeoutMs: 60_000 });
      const answer = records.find((r) => r.key === "test-response");
      assert(answer, `a response with the README's key: ${JSON.stringify(records)}`);
      assertEquals(answer.headers["x-f2s-status"], "200");
      const out = JSON.parse(answer.value);
      assertEquals(out.inputFile, "input.json");
      assertEquals(out.input, { name: "F2S" });
      assertEquals(out.greeting, "Hello, F2S!");
      assertEquals(out.contentType, "application/json");
    });
  },
});
