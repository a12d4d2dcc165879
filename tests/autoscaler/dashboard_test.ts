// The Grafana dashboard (docs/grafana-dashboard.json) against the real metrics: every query
// names only metrics the control plane exports, every F2S function metric is on it, and a
// real Prometheus scraping a populated registry answers every panel's query with data.

import { realClock } from "../../common/clock.ts";
import { assert, assertEquals } from "../harness/assert.ts";
import { startPrometheus } from "../harness/prometheus.ts";
import { createConcurrencyTracker } from "../../control/autoscaler/concurrency.ts";
import { createMetrics } from "../../control/metrics.ts";

const DASHBOARD = new URL("../../docs/grafana-dashboard.json", import.meta.url);

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { uid: string };
  gridPos: { h: number; w: number; x: number; y: number };
  targets?: { expr: string; refId: string }[];
}

async function dashboard() {
  return JSON.parse(await Deno.readTextFile(DASHBOARD)) as {
    uid: string;
    title: string;
    panels: Panel[];
    templating: { list: { name: string }[] };
  };
}

function exprs(panels: Panel[]): { panel: string; expr: string }[] {
  return panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
}

/** Metric names a query reads (histogram series map to their histogram). */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\bf2s_[a-z0-9_]+/g)].map((m) =>
    m[0].replace(/_(bucket|sum|count)$/, "")
  );
}

/** A control plane's registry with a sample of everything, served like /metrics. */
function populatedMetrics() {
  const metrics = createMetrics({ processMetrics: true });
  const tracker = createConcurrencyTracker(realClock, { metrics });
  const fn = { function: "demo" };
  metrics.invocations.inc({ ...fn, code: "200" }, 5);
  metrics.invocations.inc({ ...fn, code: "503" });
  metrics.duration.observe(fn, 0.12);
  metrics.inflight.set(fn, 2);
  metrics.held.set(fn, 1);
  metrics.coldStarts.inc(fn);
  metrics.coldStartDuration.observe(fn, 0.8);
  metrics.desiredInstances.set(fn, 3);
  metrics.readyInstances.set(fn, 2);
  metrics.scalingDecisions.inc({ ...fn, direction: "up" });
  metrics.observedConcurrency.set({ ...fn, window: "stable" }, 2);
  metrics.observedConcurrency.set({ ...fn, window: "panic" }, 4);
  metrics.panicMode.set(fn, 1);
  tracker.change("demo", 2);
  // Keeps counters and histograms moving so rate() over the test window is defined.
  const timer = setInterval(() => {
    metrics.invocations.inc({ ...fn, code: "200" });
    metrics.invocations.inc({ ...fn, code: "503" });
    metrics.duration.observe(fn, 0.2);
    metrics.coldStarts.inc(fn);
    metrics.coldStartDuration.observe(fn, 0.5);
    metrics.scalingDecisions.inc({ ...fn, direction: "up" });
  }, 300);
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async () =>
      new Response(await metrics.registry.metrics(), {
        headers: { "content-type": metrics.registry.contentType },
      }),
  );
  return {
    metrics,
    target: `127.0.0.1:${server.addr.port}`,
    async stop() {
      clearInterval(timer);
      await server.shutdown();
    },
  };
}

Deno.test("dashboard: well-formed, and shows every function metric that exists", async () => {
  const d = await dashboard();
  assertEquals([d.uid, d.title], ["f2s-functions", "F2S functions"]);
  const ids = d.panels.map((p) => p.id);
  assertEquals(new Set(ids).size, ids.length, "panel ids must be unique");
  for (const p of d.panels) {
    assert(p.gridPos.x + p.gridPos.w <= 24, `${p.title} is wider than the grid`);
    if (p.type !== "row") {
      assertEquals(p.datasource?.uid, "${datasource}", `${p.title} datasource`);
      assert((p.targets ?? []).length > 0, `${p.title} has no query`);
    }
  }
  assertEquals(d.templating.list.map((v) => v.name), ["datasource", "function"]);

  const registry = createMetrics({ processMetrics: true }).registry;
  const exported = new Set(registry.getMetricsAsArray().map((m) => m.name));
  const used = new Set(exprs(d.panels).flatMap((e) => metricNames(e.expr)));
  for (const name of used) assert(exported.has(name), `dashboard uses unknown metric ${name}`);
  const functionMetrics = [...exported].filter((n) =>
    !n.startsWith("f2s_process_") && !n.startsWith("f2s_nodejs_")
  );
  for (const name of functionMetrics) {
    assert(used.has(name), `metric ${name} is not on the dashboard`);
  }
});

Deno.test({
  name: "dashboard: every panel's query returns data from a real Prometheus",
  async fn() {
    const source = populatedMetrics();
    const prom = await startPrometheus({ targets: [source.target], scrapeInterval: "1s" });
    try {
      await prom.waitForTargetsUp();
      await new Promise((r) => setTimeout(r, 3500)); // a few scrapes for rate()
      const d = await dashboard();
      const empty: string[] = [];
      for (const { panel, expr } of exprs(d.panels)) {
        const q = expr.replaceAll("$function", ".*").replaceAll("$__rate_interval", "10s");
        const result = await prom.query(q);
        if (result.length === 0) empty.push(`${panel}: ${q}`);
      }
      assertEquals(empty, [], "queries without data");
    } finally {
      await prom.stop();
      await source.stop();
    }
  },
});
