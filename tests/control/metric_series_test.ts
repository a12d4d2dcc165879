// The dispatcher's own counter and histogram must expose exactly what prom-client's would.

import client from "prom-client";
import { createCounter, createHistogram } from "../../common/metric_series.ts";
import { createMetrics } from "../../control/metrics.ts";
import { assert, assertEquals, assertThrows } from "../harness/assert.ts";

const BUCKETS = [0.005, 0.01, 0.1, 1, 10];
const OBSERVED = [0, 0.005, 0.0051, 0.02, 0.5, 1, 3, 11, 250];

Deno.test("metric series: a histogram's exposition is prom-client's, bucket for bucket", async () => {
  const theirs = new client.Registry();
  const ours = new client.Registry();
  const reference = new client.Histogram({
    name: "h_seconds",
    help: "help text",
    labelNames: ["function"] as const,
    buckets: BUCKETS,
    registers: [theirs],
  });
  const mine = createHistogram({
    name: "h_seconds",
    help: "help text",
    labelNames: ["function"] as const,
    buckets: BUCKETS,
    registers: [ours],
  });
  const series = mine.labels("a");
  for (const v of OBSERVED) {
    reference.observe({ function: "a" }, v);
    series.observe(v);
  }
  reference.observe({ function: "b" }, 0.05);
  mine.observe({ function: "b" }, 0.05);
  assertEquals(await ours.metrics(), await theirs.metrics());

  mine.remove("b");
  reference.remove("b");
  assertEquals(await ours.metrics(), await theirs.metrics());
  assertThrows(() => series.observe(NaN), TypeError);
  assertThrows(() => mine.observe({} as { function: string }, 1), Error, "function");
});

Deno.test("metric series: a counter's exposition is prom-client's", async () => {
  const theirs = new client.Registry();
  const ours = new client.Registry();
  const reference = new client.Counter({
    name: "c_total",
    help: "counted",
    labelNames: ["function", "code"] as const,
    registers: [theirs],
  });
  const mine = createCounter({
    name: "c_total",
    help: "counted",
    labelNames: ["function", "code"] as const,
    registers: [ours],
  });
  const ok = mine.labels("a", "200");
  for (let i = 0; i < 5; i++) {
    ok.inc();
    reference.inc({ function: "a", code: "200" });
  }
  mine.inc({ function: "a", code: "503" }, 2);
  reference.inc({ function: "a", code: "503" }, 2);
  assertEquals(await ours.metrics(), await theirs.metrics());
  assertThrows(() => mine.labels("only-one"), Error, "label values");
});

Deno.test("metrics: collect hooks run once per scrape, before any value is read", async () => {
  const metrics = createMetrics({ processMetrics: false });
  let runs = 0;
  metrics.onCollect(() => {
    runs++;
    metrics.inflight.set({ function: "f" }, runs);
    metrics.lastActivity.set({ function: "f" }, runs);
  });
  for (const scrape of [1, 2]) {
    const text = await metrics.registry.metrics();
    assertEquals(runs, scrape);
    assert(text.includes(`f2s_inflight_requests{function="f"} ${scrape}`), text);
    assert(text.includes(`f2s_last_activity_timestamp_seconds{function="f"} ${scrape}`), text);
  }
});
