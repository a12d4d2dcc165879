// The Function model and the configuration: seed manifests load unchanged, every problem
// is reported with its field path, env variables override the file.
import { assert, assertEquals, assertThrows } from "../harness/assert.ts";
import { parse as parseYaml } from "yaml";
import { parseFunction, toManifest } from "../../common/function.ts";
import { ConfigError, parseConfig, redactConfig } from "../../control/config.ts";
import { createRoutingTable } from "../../dispatcher/routing.ts";
import { joinPath } from "../../dispatcher/dispatcher.ts";

const SEED_MANIFEST = `
apiVersion: "f2s.opensight.ch/v1alpha1"
kind: "Function"
metadata:
  name: "test-nodejs-blocking"
  namespace: "f2s"
spec:
  endpoint: "/nodejs-blocking"
  method: "GET"
  description: |
    Blocking Function
target:
  containerImage: "romanhuesler/f2snodejstest"
  endpoint: "/blocking"
  port: 9092
  minReplicas: 0
  maxReplicas: 5
`;

Deno.test("a seed manifest loads unchanged and gets F2S's defaults", () => {
  const result = parseFunction(parseYaml(SEED_MANIFEST));
  assert(result.ok, JSON.stringify(!result.ok && result.errors));
  const fn = result.fn;
  assertEquals(fn.name, "test-nodejs-blocking");
  assertEquals(fn.endpoint, "/nodejs-blocking");
  assertEquals(fn.method, "GET");
  assertEquals(fn.image, "romanhuesler/f2snodejstest");
  assertEquals(fn.targetPath, "/blocking");
  assertEquals([fn.minReplicas, fn.maxReplicas, fn.port], [0, 5, 9092]);
  // Unset scaling values fall back to the global autoscaling settings.
  assertEquals(fn.scaling.targetConcurrency, undefined);
  assertEquals(fn.scaling.idleTimeout, undefined);
  // What F2S writes back parses to the same function.
  const again = parseFunction(toManifest(fn));
  assert(again.ok);
  assertEquals(again.fn, fn);
});

Deno.test("validation lists every problem with its field path", () => {
  const result = parseFunction({
    apiVersion: "f2s.opensight.ch/v2",
    metadata: { name: "Bad_Name" },
    spec: { endpoint: "no-slash", method: "FETCH", timeouts: { requestTimeout: "soon" } },
    target: {
      minReplicas: 3,
      maxReplicas: 2,
      port: 70000,
      env: { "1X": "a" },
      resources: { limits: { cpu: "lots" } },
      scaling: { targetConcurrency: 0, idleTimeout: "1 week", unknown: 1 },
      local: { dir: "" },
    },
  });
  assert(!result.ok);
  const paths = result.errors.map((e) => e.path).sort();
  assertEquals(paths, [
    "apiVersion",
    "metadata.name",
    "spec.endpoint",
    "spec.method",
    "spec.timeouts.requestTimeout",
    "target.containerImage",
    "target.env.1X",
    "target.local.dir",
    "target.maxReplicas",
    "target.port",
    "target.resources.limits.cpu",
    "target.scaling.idleTimeout",
    "target.scaling.targetConcurrency",
    "target.scaling.unknown",
  ]);
});

Deno.test("durations accept milliseconds and units; env lists and maps both work", () => {
  const result = parseFunction({
    metadata: { name: "d" },
    spec: {
      endpoint: "/d/",
      method: "post",
      timeouts: { requestTimeout: "2m", httpTimeout: 1500 },
    },
    target: {
      containerImage: "x",
      env: [{ name: "A", value: "1" }],
      scaling: { idleTimeout: "30s", panicWindow: "500ms" },
    },
  });
  assert(result.ok);
  assertEquals(result.fn.endpoint, "/d");
  assertEquals(result.fn.method, "POST");
  assertEquals(result.fn.timeouts, { requestTimeout: 120_000, httpTimeout: 1500 });
  assertEquals(result.fn.scaling.idleTimeout, 30_000);
  assertEquals(result.fn.scaling.panicWindow, 500);
  assertEquals(result.fn.env, { A: "1" });
});

const SEED_CONFIG = `
debug: true
prometheus:
  url: 192.168.2.40:32133
f2s:
  timeouts:
    request_timeout: 120000
    http_timeout: 60000
    scaling_timeout: 4000
  auth:
    global_config:
      type: none
    basic:
      - username: roman
        password: helloworld
        group: admins
    token:
      tokens:
        - token: eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.x
      jwt_secret: test
    authorization:
      - group: admins
        privileges:
          - functions:list
          - functions:invoke
  kafka:
    enabled: false
    brokers:
      - 192.168.2.41:30051
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

Deno.test("the seed's config.yaml loads, and environment variables take precedence", () => {
  const c = parseConfig(SEED_CONFIG, "config.yaml", {});
  assertEquals(c.debug, true);
  assertEquals(c.prometheus.url, "192.168.2.40:32133");
  assertEquals(c.timeouts, { requestTimeout: 120_000, httpTimeout: 60_000, scalingTimeout: 4000 });
  assertEquals(c.auth.basic[0].username, "roman");
  assertEquals(c.kafka.listeners[0].actions[0].functions, ["ffe4eb97-3716-479f-8cd4-f86d05bb8e99"]);
  const e = parseConfig(SEED_CONFIG, "config.yaml", {
    Prometheus_URL: "localhost:9090",
    F2S_SCALING_TIMEOUT: "9000",
    F2S_DEBUG: "false",
  });
  assertEquals(e.prometheus.url, "localhost:9090");
  assertEquals(e.timeouts.scalingTimeout, 9000);
  assertEquals(e.debug, false);
});

Deno.test("an invalid config is refused with every unknown key and wrong type named", () => {
  const err = assertThrows(
    () =>
      parseConfig(
        `debug: "yes"\nprometheus: { url: 5 }\nf2s:\n  timeouts: { request_timeout: soon, idle: 1 }\n  colour: red\nextra: 1\n`,
        "bad.yaml",
        {},
      ),
    ConfigError,
  ) as ConfigError;
  const paths = err.errors.map((e) => e.path).sort();
  assertEquals(paths, [
    "debug",
    "extra",
    "f2s.colour",
    "f2s.timeouts.idle",
    "f2s.timeouts.request_timeout",
    "prometheus.url",
  ]);
  assert(err.message.includes("bad.yaml"));
  assertThrows(() => parseConfig("a: [", "broken.yaml", {}), ConfigError, "not valid YAML");
});

Deno.test("f2s.max_connections: 0 by default (the server's own cap), a count, never negative", () => {
  assertEquals(parseConfig("", "config.yaml", {}).maxConnections, 0);
  assertEquals(parseConfig("f2s: { max_connections: 500 }", "config.yaml", {}).maxConnections, 500);
  const err = assertThrows(
    () => parseConfig("f2s: { max_connections: -1 }", "config.yaml", {}),
    ConfigError,
  ) as ConfigError;
  assertEquals(err.errors.map((e) => e.path), ["f2s.max_connections"]);
});

Deno.test("redacted config hides every secret", () => {
  const c = parseConfig(SEED_CONFIG, "config.yaml", {});
  const text = JSON.stringify(redactConfig(c));
  for (const secret of ["helloworld", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.x", '"test"']) {
    assert(!text.includes(secret), `secret ${secret} leaked`);
  }
});

Deno.test("routing: longest endpoint prefix wins, least outstanding instance is picked", () => {
  const table = createRoutingTable();
  const mk = (name: string, endpoint: string) => {
    const r = parseFunction({
      metadata: { name },
      spec: { endpoint, method: "ANY" },
      target: { containerImage: "x" },
    });
    assert(r.ok);
    return r.fn;
  };
  table.setFunction(mk("a", "/a"));
  table.setFunction(mk("ab", "/a/b"));
  assertEquals(table.match("/a/b/c")?.fn.name, "ab");
  assertEquals(table.match("/a/b/c")?.suffix, "/c");
  assertEquals(table.match("/a/x")?.fn.name, "a");
  assertEquals(table.match("/ax"), undefined);
  assertEquals(table.match("/a")?.suffix, "");
  table.updateInstance({ id: "1", function: "a", url: "u1", state: "ready" });
  table.updateInstance({ id: "2", function: "a", url: "u2", state: "ready" });
  table.pick("a", 0)!.inflight = 3;
  for (let i = 0; i < 5; i++) {
    const s = table.pick("a", 0)!;
    assertEquals(s.inflight < 3, true);
  }
  table.ready("a").forEach((s) => (s.inflight = 1));
  assertEquals(table.pick("a", 1), undefined, "every instance at its concurrency limit");
  table.updateInstance({ id: "1", function: "a", url: "u1", state: "draining" });
  assertEquals(table.ready("a").map((s) => s.instance.id), ["2"]);
  assertEquals(joinPath("/", "/x"), "/x");
  assertEquals(joinPath("/json", ""), "/json");
  assertEquals(joinPath("/json", "/y"), "/json/y");
});
