// Trigger matching and request building for one message, without a broker: absent keys and
// headers, repeated headers, the loop guards, and what a function receives.
import type { KafkaAction, KafkaTrigger } from "../../control/kafka/config.ts";
import { firedRoutes, type Route } from "../../control/kafka/deliver.ts";
import { triggerMatches } from "../../control/kafka/match.ts";
import {
  type ConsumedMessage,
  contentTypeOf,
  invocationRequest,
  MAX_HOPS,
  viewOf,
} from "../../control/kafka/message.ts";
import { assertEquals } from "../harness/assert.ts";
import { testFunction } from "./helpers.ts";

const enc = (s: string) => new TextEncoder().encode(s);

function message(
  key: string | null,
  value: string,
  headers: [string, string][] = [],
): ConsumedMessage {
  return {
    topic: "t",
    partition: 2,
    offset: "41",
    key: key === null ? null : enc(key),
    value: enc(value),
    headers: headers.map(([k, v]) => [k, enc(v)]),
  };
}

Deno.test("an absent key or header never equals or contains, and always does not", () => {
  const absent = viewOf(message(null, "v"));
  const results = (["equal", "not equal", "contains", "not contains"] as const).map((filter) => [
    triggerMatches({ type: "key", filter, value: "" }, absent),
    triggerMatches({ type: "header", name: "x-a", filter, value: "" }, absent),
  ]);
  assertEquals(results, [[false, false], [true, true], [false, false], [true, true]]);
});

Deno.test("header triggers ignore the name's case and see every value of a repeated header", () => {
  const view = viewOf(message("k", "v", [["X-Tenant", "blue"], ["x-tenant", "green"]]));
  const t = (filter: KafkaTrigger["filter"], value: string): KafkaTrigger => ({
    type: "header",
    name: "X-TENANT",
    filter,
    value,
  });
  assertEquals(triggerMatches(t("equal", "green"), view), true);
  assertEquals(triggerMatches(t("not equal", "green"), view), false);
  assertEquals(triggerMatches(t("contains", "lu"), view), true);
  assertEquals(triggerMatches(t("not contains", "red"), view), true);
});

Deno.test("an action's triggers must all match; none means every message", () => {
  const action = (triggers: KafkaTrigger[]): Route => ({
    action: { name: "a", triggers, functions: ["f"], response: {} } as KafkaAction,
    id: "t/a",
    responseTopic: "t",
  });
  const both = action([
    { type: "key", filter: "equal", value: "k" },
    { type: "value", filter: "contains", value: "pay" },
  ]);
  const none = action([]);
  assertEquals(firedRoutes(message("k", "pay me"), [both]).length, 1);
  assertEquals(firedRoutes(message("k", "ignore"), [both]).length, 0);
  assertEquals(firedRoutes(message(null, ""), [none]).length, 1);
});

Deno.test("responses do not fire their own action, and response chains stop at MAX_HOPS", () => {
  const route = (id: string): Route => ({
    action: { name: id, triggers: [], functions: ["f"], response: {}, contentType: "auto" },
    id,
    responseTopic: "t",
  });
  const [a, b] = [route("t/a"), route("t/b")];
  const ids = (m: ConsumedMessage) => firedRoutes(m, [a, b]).map((r) => r.id);
  assertEquals(ids(message("k", "v", [["x-f2s-action", "t/a"], ["x-f2s-hops", "1"]])), ["t/b"]);
  assertEquals(ids(message("k", "v", [["x-f2s-hops", String(MAX_HOPS - 1)]])), ["t/a", "t/b"]);
  assertEquals(ids(message("k", "v", [["x-f2s-hops", String(MAX_HOPS)]])), []);
});

Deno.test("the request carries the value, usable headers and where the message came from", async () => {
  const m = message("order/7", "body bytes", [
    ["x-custom", "1"],
    ["connection", "close"],
    ["bad header", "dropped"],
    ["x-request-id", "from-message"],
  ]);
  const req = invocationRequest(testFunction("f", undefined, "GET"), m, "req-1");
  assertEquals(req.method, "POST");
  assertEquals(await req.text(), "body bytes");
  assertEquals(Object.fromEntries(req.headers), {
    "x-custom": "1",
    "x-request-id": "req-1",
    "x-f2s-kafka-topic": "t",
    "x-f2s-kafka-partition": "2",
    "x-f2s-kafka-offset": "41",
    "x-f2s-kafka-key": "order/7",
    "content-type": "application/octet-stream",
  });
  assertEquals(invocationRequest(testFunction("f", undefined, "PATCH"), m, "r").method, "PATCH");
});

Deno.test("a message without content-type: JSON values are application/json, unless configured", () => {
  const f = testFunction("f");
  const type = (value: string, configured?: string, headers: [string, string][] = []) =>
    invocationRequest(f, message("k", value, headers), "r", configured).headers.get(
      "content-type",
    );
  assertEquals(type('{"name":"F2S"}'), "application/json");
  assertEquals(type("[1, 2]"), "application/json");
  assertEquals(type("42"), "application/json");
  assertEquals(type("not json"), "application/octet-stream");
  assertEquals(type(""), "application/octet-stream");
  assertEquals(type('{"a":1}', "text/plain"), "text/plain");
  // The message's own header always wins.
  assertEquals(type('{"a":1}', "auto", [["Content-Type", "text/csv"]]), "text/csv");
  // Bytes that are not UTF-8 are never JSON.
  assertEquals(
    contentTypeOf(new Uint8Array([0x22, 0xff, 0x22]), "auto"),
    "application/octet-stream",
  );
});
