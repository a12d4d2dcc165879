// The UI's plain modules run in Deno as they run in the browser: the Prometheus parser on
// real prom-client output, rates and quantiles, privilege decisions against the server's
// own implementation, and the form model against the real Function validator.
import { parse as parseYaml } from "yaml";
import { parseFunction, toManifest } from "../../common/function.ts";
import {
  grantsAllow,
  grantsOf,
  type Privilege,
  PRIVILEGES,
} from "../../control/auth/privileges.ts";
import { createMetrics } from "../../control/metrics.ts";
import { plainMessage } from "../../ui/js/api.js";
import { startFailure } from "../../ui/js/views/status.js";
import { niceCeil } from "../../ui/js/chart.js";
import {
  emptyForm,
  FIELDS,
  formToManifest,
  manifestToForm,
  placeErrors,
} from "../../ui/js/manifest.js";
import { between, createMetricsPoller, functionStats, quantile } from "../../ui/js/metrics.js";
import { allows, allowsSome, notAllowedMessage } from "../../ui/js/privileges.js";
import { parsePrometheus } from "../../ui/js/prom.js";
import { assert, assertEquals, assertMatch } from "../harness/assert.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

Deno.test("ui prom parser: reads prom-client's exposition of the control plane metrics", async () => {
  const m = createMetrics({ processMetrics: false });
  for (let i = 0; i < 7; i++) m.invocations.inc({ function: "alpha", code: "200" });
  m.invocations.inc({ function: "alpha", code: "503" }, 2);
  m.invocations.inc({ function: "alpha", code: "404" });
  m.invocations.inc({ function: "beta", code: "200" }, 3);
  for (const s of [0.004, 0.02, 0.02, 0.3, 2]) m.duration.observe({ function: "alpha" }, s);
  m.inflight.set({ function: "alpha" }, 4);
  m.readyInstances.set({ function: "alpha" }, 2);
  m.desiredInstances.set({ function: "alpha" }, 3);
  m.lastActivity.set({ function: "alpha" }, 1_700_000_000.5);
  const text = await m.registry.metrics();
  const samples = parsePrometheus(text);
  assert(samples.length > 20, `parsed ${samples.length} samples`);
  const stats = functionStats(samples);
  const alpha = stats.get("alpha")!;
  assertEquals(alpha.invocations, 10);
  assertEquals(alpha.errors, 2);
  assertEquals(alpha.durationCount, 5);
  assert(Math.abs(alpha.durationSum - 2.344) < 1e-9, `sum ${alpha.durationSum}`);
  assertEquals(alpha.buckets[alpha.buckets.length - 1], [Infinity, 5]);
  assertEquals(alpha.buckets.find(([le]) => le === 0.025), [0.025, 3]);
  assertEquals([alpha.inflight, alpha.ready, alpha.desired], [4, 2, 3]);
  assertEquals(alpha.lastActivity, 1_700_000_000.5);
  assertEquals(stats.get("beta")!.invocations, 3);
  assertEquals(stats.get("beta")!.lastActivity, undefined);
});

Deno.test("ui prom parser: escapes, special values, junk lines", () => {
  const samples = parsePrometheus(
    [
      "# HELP x something",
      'x{a="q\\"b\\\\c\\nd",b="2"} 1.5 1700000000000',
      "y +Inf",
      "z NaN",
      "w{} -3e2",
      "broken{a=1} 2",
      'unterminated{a="x} 2',
      "",
      "novalue",
    ].join("\n"),
  );
  assertEquals(samples.length, 4);
  assertEquals(samples[0], { name: "x", labels: { a: 'q"b\\c\nd', b: "2" }, value: 1.5 });
  assertEquals(samples[1].value, Infinity);
  assert(Number.isNaN(samples[2].value));
  assertEquals(samples[3], { name: "w", labels: {}, value: -300 });
});

Deno.test("ui metrics: rates, error share, latency and quantiles between two scrapes", () => {
  const buckets = [[0.1, 50], [0.5, 90], [1, 100], [Infinity, 100]];
  assertEquals(quantile(0.95, buckets), 0.75);
  assertEquals(quantile(0.5, buckets), 0.1);
  assertEquals(quantile(0.99, [[1, 0], [Infinity, 10]]), 1);
  assert(Number.isNaN(quantile(0.5, [[1, 0], [Infinity, 0]])));
  const before = {
    invocations: 100,
    errors: 1,
    durationSum: 10,
    durationCount: 100,
    buckets: [[0.1, 60], [1, 100], [Infinity, 100]],
  };
  const after = {
    invocations: 120,
    errors: 6,
    durationSum: 12,
    durationCount: 120,
    buckets: [[0.1, 60], [1, 120], [Infinity, 120]],
  };
  // deno-lint-ignore no-explicit-any
  const r = between(before as any, after as any, 4);
  assertEquals(r.rps, 5);
  assertEquals(r.errorRatio, 0.25);
  assertEquals(r.avgMs, 100);
  assertEquals(Math.round(r.p95Ms!), 955); // all 20 in (0.1, 1]: 0.1 + 0.9 × 19/20
  // A restarted control plane: counters start again from zero.
  // deno-lint-ignore no-explicit-any
  const reset = between(after as any, { ...after, invocations: 3, errors: 0 } as any, 1);
  assertEquals(reset.rps, 3);
  assertEquals([niceCeil(0.3), niceCeil(1), niceCeil(7), niceCeil(230), niceCeil(0)], [
    0.5,
    1,
    10,
    500,
    1,
  ]);
});

Deno.test("ui metrics poller: scrapes while watched, keeps a window, spaces scrapes", async () => {
  const m = createMetrics({ processMetrics: false });
  const loads: number[] = [];
  const poller = createMetricsPoller({
    load: async () => {
      loads.push(Date.now());
      m.invocations.inc({ function: "f", code: "200" }, 10);
      return await m.registry.metrics();
    },
    intervalMs: 40,
    keepMs: 1000,
  });
  let calls = 0;
  const stop = poller.subscribe(() => calls++);
  await new Promise((r) => setTimeout(r, 400));
  stop();
  const scrapes = loads.length;
  assert(scrapes >= 3 && scrapes <= 11, `${scrapes} scrapes in 400 ms at 40 ms`);
  assertEquals(calls, scrapes);
  assertEquals(poller.latest("f")?.invocations, 10 * scrapes);
  const series = poller.series("f");
  assertEquals(series.length, scrapes - 1);
  for (let i = 1; i < series.length; i++) {
    // 10 requests per scrape interval, whatever the interval turned out to be.
    const perInterval = series[i].rps * (series[i].t - series[i - 1].t) / 1000;
    assert(Math.abs(perInterval - 10) < 1e-6, `${perInterval} requests in interval ${i}`);
  }
  // Stopped: no more scrapes. Watched again at once: the next scrape keeps its distance.
  await new Promise((r) => setTimeout(r, 100));
  assertEquals(loads.length, scrapes);
  const again = poller.subscribe(() => {});
  await new Promise((r) => setTimeout(r, 150));
  again();
  for (let i = 1; i < loads.length; i++) {
    assert(loads[i] - loads[i - 1] >= 38, `scrapes ${loads[i] - loads[i - 1]} ms apart`);
  }
  assert(loads.length > scrapes, "no scrape after subscribing again");

  // Only the last keepMs of scrapes stay.
  const short = createMetricsPoller({
    load: () => m.registry.metrics(),
    intervalMs: 20,
    keepMs: 100,
  });
  const stopShort = short.subscribe(() => {});
  await new Promise((r) => setTimeout(r, 300));
  stopShort();
  const kept = short.series("f");
  assert(kept.length >= 1 && kept.length <= 5, `${kept.length} intervals kept`);
  assert(kept[kept.length - 1].t - kept[0].t <= 100, "older scrapes were kept");
});

Deno.test("ui privileges: the same decisions as the API's authorization", () => {
  const configs = [
    ["functions:list", "functions:invoke"],
    ["functions:invoke:orders-*", "functions:list:orders-?u"],
    ["functions:create", "settings:view"],
    [...PRIVILEGES],
    ["functions:delete:a*b", "functions:update:billing", "nonsense", "settings:view:x"],
    [],
  ];
  const names = [undefined, "orders-eu", "orders-", "billing", "ab", "axxb", "other"];
  let checked = 0;
  for (const privileges of configs) {
    const grants = grantsOf(privileges);
    for (const privilege of PRIVILEGES) {
      for (const name of names) {
        assertEquals(
          allows(privileges, privilege, name),
          grantsAllow(grants, privilege as Privilege, name),
          `${privileges.join(",")} ${privilege} ${name}`,
        );
        checked++;
      }
    }
  }
  assertEquals(checked, configs.length * PRIVILEGES.length * names.length);
  assert(allowsSome(["functions:invoke:orders-*"], "functions:invoke"));
  assert(!allowsSome(["functions:invoke:orders-*"], "functions:create"));
  assertEquals(
    notAllowedMessage("functions:create"),
    "You are not allowed to create functions (missing privilege functions:create).",
  );
  assertEquals(
    notAllowedMessage("functions:delete", "billing"),
    'You are not allowed to delete function "billing" (missing privilege functions:delete).',
  );
});

Deno.test("ui api: API error bodies in plain words", () => {
  assertEquals(
    plainMessage(403, {
      error: 'missing privilege functions:invoke for function "billing"',
      details: { privilege: "functions:invoke", function: "billing" },
    }),
    'You are not allowed to invoke function "billing" (missing privilege functions:invoke).',
  );
  assertEquals(
    plainMessage(400, {
      error: "invalid function manifest: x",
      details: [{ path: "spec.endpoint", message: "is required" }],
    }),
    "Some fields need fixing: spec.endpoint: is required.",
  );
  assertEquals(
    plainMessage(409, { error: 'a function named "x" already exists' }),
    'A function named "x" already exists. Choose another name or endpoint.',
  );
  assertEquals(
    plainMessage(401, { error: "token expired (exp is in the past)" }),
    "You need to sign in (token expired (exp is in the past))",
  );
  assertEquals(plainMessage(404, { error: 'function "x" not found' }), 'Function "x" not found.');
  // A function that cannot start says why, with no advice to wait.
  assertEquals(
    plainMessage(503, {
      error: 'function "x" could not start: no local folder for image "a/x:1"',
      details: { function: "x", reason: "NoLocalFolder" },
    }),
    'Function "x" could not start: no local folder for image "a/x:1".',
  );
  assertMatch(plainMessage(503, { error: "shutting down" }), /busy.*Try again/);
});

Deno.test("ui status: a start failure shows, normal Ready=False reasons do not", () => {
  const ready = (status: string, reason: string) => ({
    conditions: [{ type: "Ready", status, reason, message: "m" }],
  });
  assertEquals(startFailure(ready("False", "NoLocalFolder")), {
    reason: "NoLocalFolder",
    message: "m",
  });
  assertEquals(startFailure(ready("False", "ScaledToZero")), undefined);
  assertEquals(startFailure(ready("False", "Starting")), undefined);
  assertEquals(startFailure(ready("True", "InstancesReady")), undefined);
  assertEquals(startFailure({}), undefined);
});

Deno.test("ui form model: the examples survive manifest → form → manifest unchanged", async () => {
  for (const example of ["examples/nodejs/function.yaml", "examples/python/function.yaml"]) {
    const parsed = parseFunction(parseYaml(await Deno.readTextFile(`${ROOT}${example}`)));
    assert(parsed.ok, example);
    const stored = toManifest(parsed.fn);
    const { manifest } = formToManifest(manifestToForm(stored), stored);
    const again = parseFunction(manifest);
    assert(again.ok, `${example}: ${JSON.stringify(!again.ok && again.errors)}`);
    assertEquals(toManifest(again.fn), stored, example);
  }
  // Secret references are not form rows, and survive an edit of the form.
  const parsed = parseFunction(
    parseYaml(await Deno.readTextFile(`${ROOT}examples/nodejs/function.yaml`)),
  );
  assert(parsed.ok);
  const stored = toManifest({
    ...parsed.fn,
    env: { GREETING: "hi" },
    envRefs: { DB: { secretKeyRef: { name: "hello-node", key: "db" } } },
  });
  const form = manifestToForm(stored);
  assertEquals(form.env, [{ name: "GREETING", value: "hi" }]);
  form.env.push({ name: "MORE", value: "1" });
  const { manifest, envRows } = formToManifest(form, stored);
  assertEquals(manifest.target.env, [
    { name: "GREETING", value: "hi" },
    { name: "MORE", value: "1" },
    { name: "DB", valueFrom: { secretKeyRef: { name: "hello-node", key: "db" } } },
  ]);
  assertEquals(envRows, [0, 1]);
});

Deno.test("ui form model: every field the form offers is one the validator knows", () => {
  const sample: Record<string, string> = {
    "metadata.name": "every-field",
    "spec.description": "all of them",
    "spec.endpoint": "/every/field",
    "spec.method": "post",
    "target.containerImage": "example/every:1",
    "target.minReplicas": "0",
    "target.maxReplicas": "4",
    "target.port": "9092",
    "target.endpoint": "/api",
    "target.scaling.targetConcurrency": "2.5",
    "target.scaling.containerConcurrency": "8",
    "target.scaling.idleTimeout": "5m",
    "spec.timeouts.requestTimeout": "30s",
    "spec.timeouts.httpTimeout": "20000",
    "spec.timeouts.scalingTimeout": "1m",
    "target.resources.requests.cpu": "100m",
    "target.resources.requests.memory": "128Mi",
    "target.resources.limits.cpu": "1",
    "target.resources.limits.memory": "256Mi",
    "target.local.command": "node server.js",
    "target.local.dir": "./app",
  };
  assertEquals(Object.keys(sample).sort(), FIELDS.map((f: { path: string }) => f.path).sort());
  const form = emptyForm();
  Object.assign(form.values, sample);
  form.env = [{ name: "A", value: "1" }, { name: "", value: "" }, { name: "B", value: "two" }];
  const { manifest, envRows } = formToManifest(form, undefined);
  assertEquals(envRows, [0, 2]);
  const parsed = parseFunction(manifest);
  assert(parsed.ok, JSON.stringify(!parsed.ok && parsed.errors));
  const fn = parsed.fn;
  assertEquals(fn.method, "POST");
  assertEquals(fn.scaling, {
    targetConcurrency: 2.5,
    containerConcurrency: 8,
    idleTimeout: 300_000,
  });
  assertEquals(fn.timeouts, {
    requestTimeout: 30_000,
    httpTimeout: 20_000,
    scalingTimeout: 60_000,
  });
  assertEquals(fn.env, { A: "1", B: "two" });
  assertEquals(fn.local, { command: "node server.js", dir: "./app" });
  // Back to the form: durations read as people write them.
  const back = manifestToForm(toManifest(fn));
  assertEquals(back.values["target.scaling.idleTimeout"], "5m");
  assertEquals(back.values["spec.timeouts.httpTimeout"], "20s");
});

Deno.test("ui form model: blank fields vanish, bad text reaches the validator, errors find their field", () => {
  const stored = {
    apiVersion: "f2s.opensight.ch/v1alpha1",
    kind: "Function",
    metadata: { name: "kept", namespace: "f2s", uid: "u-1" },
    spec: { endpoint: "/kept", method: "GET", timeouts: { requestTimeout: 5000 } },
    target: {
      containerImage: "x/kept:1",
      minReplicas: 1,
      maxReplicas: 1,
      scaling: { stableWindow: 30_000, idleTimeout: 120_000 },
    },
    status: { readyReplicas: 1 },
  };
  const form = manifestToForm(stored);
  form.values["spec.timeouts.requestTimeout"] = "";
  form.values["target.scaling.idleTimeout"] = " ";
  form.values["target.minReplicas"] = "two";
  form.values["spec.endpoint"] = "no-slash";
  form.env = [{ name: "", value: "" }, { name: "1BAD", value: "v" }];
  const { manifest, envRows } = formToManifest(form, stored);
  assertEquals(manifest.status, undefined);
  assertEquals(manifest.metadata.uid, "u-1");
  assertEquals(manifest.spec.timeouts, undefined); // emptied objects go too
  assertEquals(manifest.target.scaling, { stableWindow: 30_000 }); // unknown to the form: kept
  assertEquals(manifest.target.minReplicas, "two");
  const result = parseFunction(manifest);
  assert(!result.ok);
  const placed = placeErrors(result.errors, envRows);
  assertEquals(placed.fields["target.minReplicas"], ["must be an integer"]);
  assert(placed.fields["spec.endpoint"]?.[0].includes("must be a path"));
  assertEquals(Object.keys(placed.env), ["1"]); // the second row, not the sent index 0
  assert(placed.env[1].name?.[0].includes("not a valid variable name"));
  assertEquals(placed.other, []);
  const stray = placeErrors([{ path: "target.scaling.stableWindow", message: "bad" }], []);
  assertEquals(stray.other, [{ path: "target.scaling.stableWindow", message: "bad" }]);
});
