// The kafka section of config.yaml: the seed's shape loads unchanged, F2S's additions get
// their defaults, and every mistake is refused with the path of the field that is wrong.
import { ConfigError, parseConfig } from "../../control/config.ts";
import { KAFKA_DEFAULTS } from "../../control/kafka/config.ts";
import { assertEquals, assertThrows } from "../harness/assert.ts";

const SEED = `
f2s:
  kafka:
    enabled: true
    brokers: [192.168.2.41:30051]
    listeners:
      - topic: test-topic
        consumergroup: f2s-consumer
        actions:
          - name: test-action
            triggers:
              - type: key
                filter: equal
                value: test-key
            f2sfunctions:
              - ffe4eb97-3716-479f-8cd4-f86d05bb8e99
            response:
              key: test-response
`;

Deno.test("the seed's kafka section loads with F2S's defaults", () => {
  const { kafka } = parseConfig(SEED, "seed.yaml", {});
  assertEquals(kafka, {
    enabled: true,
    brokers: ["192.168.2.41:30051"],
    consumerGroup: KAFKA_DEFAULTS.consumerGroup,
    clientId: "f2s",
    fromBeginning: false,
    retries: 3,
    retryBackoff: 500,
    retryBackoffMax: 30_000,
    deadLetterTopic: undefined,
    sessionTimeout: 30_000,
    heartbeatInterval: 3_000,
    concurrentPartitions: 1,
    listeners: [{
      topic: "test-topic",
      consumerGroup: "f2s-consumer",
      deadLetterTopic: undefined,
      actions: [{
        name: "test-action",
        triggers: [{ type: "key", name: undefined, filter: "equal", value: "test-key" }],
        functions: ["ffe4eb97-3716-479f-8cd4-f86d05bb8e99"],
        response: { key: "test-response", topic: undefined },
        contentType: "auto",
      }],
    }],
  });
});

Deno.test("F2S's additions: header and value triggers, response topic, delivery settings", () => {
  const { kafka } = parseConfig(
    `
kafka:
  enabled: true
  brokers: ["kafka-0.kafka:9092", "[::1]:9093"]
  consumergroup: f2s-main
  retries: 5
  retry_backoff: 250ms
  retry_backoff_max: 10s
  dead_letter_topic: f2s.dead
  session_timeout: 10s
  heartbeat_interval: 1s
  concurrent_partitions: 4
  from_beginning: true
  listeners:
    - topic: orders
      dead_letter_topic: orders-dead
      actions:
        - name: big-orders
          triggers:
            - { type: header, name: X-Tenant, filter: not equal, value: test }
            - { type: value, filter: contains, value: 1000 }
          f2sfunctions: [billing, audit]
          response: { key: billed, topic: orders-out }
`,
    "config.yaml",
    {},
  );
  assertEquals(kafka.brokers, ["kafka-0.kafka:9092", "[::1]:9093"]);
  assertEquals(
    [kafka.retries, kafka.retryBackoff, kafka.retryBackoffMax, kafka.deadLetterTopic],
    [5, 250, 10_000, "f2s.dead"],
  );
  assertEquals([kafka.sessionTimeout, kafka.heartbeatInterval], [10_000, 1_000]);
  assertEquals([kafka.concurrentPartitions, kafka.fromBeginning], [4, true]);
  const [listener] = kafka.listeners;
  assertEquals(listener.deadLetterTopic, "orders-dead");
  assertEquals(listener.actions[0].triggers, [
    { type: "header", name: "X-Tenant", filter: "not equal", value: "test" },
    // A number written without quotes is compared as text.
    { type: "value", name: undefined, filter: "contains", value: "1000" },
  ]);
  assertEquals(listener.actions[0].functions, ["billing", "audit"]);
  assertEquals(listener.actions[0].response, { key: "billed", topic: "orders-out" });
});

Deno.test("a disabled section needs no brokers or listeners", () => {
  assertEquals(
    parseConfig("f2s: { kafka: { enabled: false } }", "c.yaml", {}).kafka.enabled,
    false,
  );
  assertEquals(parseConfig("", "c.yaml", {}).kafka.enabled, false);
});

Deno.test("a broker without a port is on 9092; env overrides replace the file's values before they are checked", () => {
  // The original F2S's README: `brokers: [kafka-1.kafka]`.
  const file = 'kafka: { enabled: true, brokers: [kafka-1.kafka, "[::1]", "h:19092"], ' +
    "listeners: [{ topic: t, actions: [{ name: a, f2sfunctions: [fn] }] }] }";
  assertEquals(parseConfig(file, "c.yaml", {}).kafka.brokers, [
    "kafka-1.kafka:9092",
    "[::1]:9092",
    "h:19092",
  ]);
  const broken = file.replace("kafka-1.kafka", '"not a broker"');
  assertThrows(() => parseConfig(broken, "c.yaml", {}), ConfigError);
  // The environment's brokers replace the file's: its broken one no longer matters.
  const env = { F2S_KAFKA_BROKERS: "127.0.0.1:1234, b2" };
  assertEquals(parseConfig(broken, "c.yaml", env).kafka.brokers, ["127.0.0.1:1234", "b2:9092"]);
  // Disabled by the environment: the section's requirements for an enabled one do not apply.
  const disabled = parseConfig("kafka: { enabled: true }", "c.yaml", {
    F2S_KAFKA_ENABLED: "false",
  });
  assertEquals(disabled.kafka.enabled, false);
  // A broken environment value is reported under its own name.
  const e = assertThrows(
    () => parseConfig(file, "c.yaml", { F2S_KAFKA_BROKERS: "a b", F2S_KAFKA_ENABLED: "maybe" }),
    ConfigError,
  ) as ConfigError;
  assertEquals(e.errors.map((x) => x.path).sort(), [
    "env F2S_KAFKA_BROKERS[0]",
    "env F2S_KAFKA_ENABLED",
  ]);
});

Deno.test("contentType: auto by default, the listener's for its actions, an action's own wins", () => {
  const c = parseConfig(
    `kafka:
  enabled: true
  brokers: [h]
  listeners:
    - topic: a
      actions: [{ name: x, f2sfunctions: [fn] }]
    - topic: b
      contentType: text/plain; charset=utf-8
      actions:
        - { name: x, f2sfunctions: [fn] }
        - { name: y, f2sfunctions: [fn], contentType: application/octet-stream }
`,
    "c.yaml",
    {},
  ).kafka;
  assertEquals(c.listeners[0].actions[0].contentType, "auto");
  assertEquals(c.listeners[1].actions.map((a) => a.contentType), [
    "text/plain; charset=utf-8",
    "application/octet-stream",
  ]);
  assertEquals(
    problems(
      withListener(`{ topic: t, actions: [{ name: a, f2sfunctions: [f], contentType: json }] }`),
    ),
    ['kafka.listeners[0].actions[0].contentType: "json" is not a media type (e.g. application/json) or auto'],
  );
});

/** The problems parseConfig reports for `kafka` (YAML flow style), as "path: message". */
function problems(kafka: string): string[] {
  const e = assertThrows(
    () => parseConfig(`kafka: ${kafka}`, "c.yaml", {}),
    ConfigError,
  ) as ConfigError;
  return e.errors.map((x) => `${x.path}: ${x.message}`);
}

/** A valid enabled section with `listener` as its only listener. */
function withListener(listener: string, extra = ""): string {
  return `{ enabled: true, brokers: ["127.0.0.1:9092"], ${extra} listeners: [${listener}] }`;
}

const ACTION = "{ name: a, f2sfunctions: [fn] }";

Deno.test("invalid kafka config is refused with the field named", async (t) => {
  const cases: [string, string, RegExp][] = [
    ["unknown section key", "{ consumer_group: x }", /^kafka\.consumer_group: is not a known key/],
    [
      "broker that is not host[:port]",
      '{ brokers: ["local host:90x"] }',
      /^kafka\.brokers\[0\]: "local host:90x" is not host or host:port/,
    ],
    ["broker port out of range", '{ brokers: ["h:70000"] }', /^kafka\.brokers\[0\]: "h:70000"/],
    [
      "enabled without brokers",
      `{ enabled: true, listeners: [{ topic: t, actions: [${ACTION}] }] }`,
      /^kafka\.brokers: needs at least one broker/,
    ],
    [
      "enabled without listeners",
      '{ enabled: true, brokers: ["h:1"] }',
      /^kafka\.listeners: needs at least one listener/,
    ],
    [
      "listener without topic",
      withListener(`{ actions: [${ACTION}] }`),
      /^kafka\.listeners\[0\]\.topic: is required/,
    ],
    [
      "invalid topic name",
      withListener(`{ topic: "a b", actions: [${ACTION}] }`),
      /^kafka\.listeners\[0\]\.topic: "a b" is not a Kafka topic name/,
    ],
    [
      "unknown listener key",
      withListener(`{ topic: t, group: g, actions: [${ACTION}] }`),
      /^kafka\.listeners\[0\]\.group: is not a known key/,
    ],
    [
      "listener without actions",
      withListener("{ topic: t }"),
      /^kafka\.listeners\[0\]\.actions: needs at least one action/,
    ],
    [
      "unknown action key",
      withListener("{ topic: t, actions: [{ name: a, functions: [fn] }] }"),
      /^kafka\.listeners\[0\]\.actions\[0\]\.functions: is not a known key/,
    ],
    [
      "action without functions",
      withListener("{ topic: t, actions: [{ name: a }] }"),
      /^kafka\.listeners\[0\]\.actions\[0\]\.f2sfunctions: is required/,
    ],
    [
      "empty function list",
      withListener("{ topic: t, actions: [{ name: a, f2sfunctions: [] }] }"),
      /^kafka\.listeners\[0\]\.actions\[0\]\.f2sfunctions: needs at least one function/,
    ],
    [
      "duplicate action names",
      withListener(`{ topic: t, actions: [${ACTION}, ${ACTION}] }`),
      /^kafka\.listeners\[0\]\.actions\[1\]\.name: "a" is used twice/,
    ],
    [
      "unknown response key",
      withListener(
        "{ topic: t, actions: [{ name: a, f2sfunctions: [fn], response: { keys: k } }] }",
      ),
      /^kafka\.listeners\[0\]\.actions\[0\]\.response\.keys: is not a known key/,
    ],
    [
      "unknown trigger type",
      withListener(
        "{ topic: t, actions: [{ name: a, f2sfunctions: [fn], triggers: [{ type: body, value: x }] }] }",
      ),
      /^kafka\.listeners\[0\]\.actions\[0\]\.triggers\[0\]\.type: "body" is not a trigger type \(key, header, value\)/,
    ],
    [
      "missing trigger type",
      withListener(
        "{ topic: t, actions: [{ name: a, f2sfunctions: [fn], triggers: [{ value: x }] }] }",
      ),
      /^kafka\.listeners\[0\]\.actions\[0\]\.triggers\[0\]\.type: is required/,
    ],
    [
      "unknown filter",
      withListener(
        "{ topic: t, actions: [{ name: a, f2sfunctions: [fn], triggers: [{ type: key, filter: equals, value: x }] }] }",
      ),
      /^kafka\.listeners\[0\]\.actions\[0\]\.triggers\[0\]\.filter: "equals" is not a filter \(equal, not equal, contains, not contains\)/,
    ],
    [
      "header trigger without name",
      withListener(
        "{ topic: t, actions: [{ name: a, f2sfunctions: [fn], triggers: [{ type: header, value: x }] }] }",
      ),
      /^kafka\.listeners\[0\]\.actions\[0\]\.triggers\[0\]\.name: is required for a header trigger/,
    ],
    [
      "name on a key trigger",
      withListener(
        "{ topic: t, actions: [{ name: a, f2sfunctions: [fn], triggers: [{ type: key, name: h, value: x }] }] }",
      ),
      /^kafka\.listeners\[0\]\.actions\[0\]\.triggers\[0\]\.name: is only used with type header/,
    ],
    [
      "trigger without value",
      withListener(
        "{ topic: t, actions: [{ name: a, f2sfunctions: [fn], triggers: [{ type: key }] }] }",
      ),
      /^kafka\.listeners\[0\]\.actions\[0\]\.triggers\[0\]\.value: is required/,
    ],
    [
      "unknown trigger key",
      withListener(
        "{ topic: t, actions: [{ name: a, f2sfunctions: [fn], triggers: [{ type: key, value: x, regex: y }] }] }",
      ),
      /^kafka\.listeners\[0\]\.actions\[0\]\.triggers\[0\]\.regex: is not a known key/,
    ],
    [
      "negative retries",
      withListener(`{ topic: t, actions: [${ACTION}] }`, "retries: -1,"),
      /^kafka\.retries: must be between 0 and 100/,
    ],
    [
      "fractional retries",
      withListener(`{ topic: t, actions: [${ACTION}] }`, "retries: 1.5,"),
      /^kafka\.retries: must be a whole number/,
    ],
    [
      "backoff not a duration",
      withListener(`{ topic: t, actions: [${ACTION}] }`, "retry_backoff: fast,"),
      /^kafka\.retry_backoff: "fast" is not a duration/,
    ],
    [
      "backoff max below backoff",
      withListener(
        `{ topic: t, actions: [${ACTION}] }`,
        "retry_backoff: 2s, retry_backoff_max: 1s,",
      ),
      /^kafka\.retry_backoff_max: must be at least retry_backoff/,
    ],
    [
      "invalid dead-letter topic",
      withListener(`{ topic: t, actions: [${ACTION}] }`, 'dead_letter_topic: "dead letters",'),
      /^kafka\.dead_letter_topic: "dead letters" is not a Kafka topic name/,
    ],
    [
      "heartbeat not shorter than session",
      withListener(
        `{ topic: t, actions: [${ACTION}] }`,
        "session_timeout: 2s, heartbeat_interval: 2s,",
      ),
      /^kafka\.heartbeat_interval: must be shorter than session_timeout/,
    ],
    [
      "zero concurrent partitions",
      withListener(`{ topic: t, actions: [${ACTION}] }`, "concurrent_partitions: 0,"),
      /^kafka\.concurrent_partitions: must be between 1 and 1000/,
    ],
  ];
  for (const [name, kafka, expected] of cases) {
    await t.step(name, () => {
      const found = problems(kafka);
      if (!found.some((p) => expected.test(p))) {
        throw new Error(`expected a problem matching ${expected}, got:\n  ${found.join("\n  ")}`);
      }
    });
  }
});

Deno.test("the start-up message names the field under f2s.kafka", () => {
  const e = assertThrows(
    () => parseConfig(SEED.replace("filter: equal", "filter: equals"), "config.yaml", {}),
    ConfigError,
  );
  assertEquals(
    e.message,
    "invalid configuration in config.yaml:\n" +
      '  - f2s.kafka.listeners[0].actions[0].triggers[0].filter: "equals" is not a filter ' +
      "(equal, not equal, contains, not contains)",
  );
});
