// The original F2S's metric names as Prometheus recording rules over F2S's own: the rules
// compute the right values (promtool test rules, two replicas), read only metrics F2S
// really exports, and the Helm chart's Prometheus gets them (helm template: its config
// names the rules file where the ConfigMap is mounted; promtool checks what was rendered).
import { parse as parseYaml, parseAllDocuments } from "yaml";
import { binDir } from "../cluster/binaries.ts";
import { createMetrics } from "../../control/metrics.ts";
import { assert, assertEquals } from "../harness/assert.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const RULES = `${ROOT}helm/files/original-metrics.rules.yml`;

async function run(cmd: string, args: string[], cwd = ROOT) {
  const out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  const dec = new TextDecoder();
  return { code: out.code, text: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

Deno.test("original metric names: promtool test rules over two replicas", async () => {
  const out = await run("promtool", [
    "test",
    "rules",
    "tests/autoscaler/fixtures/original-metrics.test.yml",
  ]);
  assertEquals(out.code, 0, out.text);
  assert(out.text.includes("SUCCESS"), out.text);
});

Deno.test("original metric names: the rules read only metrics F2S exports", async () => {
  const rules = parseYaml(await Deno.readTextFile(RULES)) as {
    groups: { rules: { record: string; expr: string }[] }[];
  };
  const recorded = rules.groups.flatMap((g) => g.rules.map((r) => r.record));
  assertEquals(recorded.sort(), [
    "f2s_active_requests_total",
    "f2s_last_request_timestamp",
    "f2s_request_duration_seconds_bucket",
    "f2s_request_duration_seconds_count",
    "f2s_request_duration_seconds_sum",
    "f2s_requests_completed_total",
    "f2s_requests_failed_total",
    "f2s_requests_incoming_total",
  ]);
  const read = new Set(
    rules.groups.flatMap((g) => g.rules.flatMap((r) => r.expr.match(/\bf2s_[a-z_]+/g) ?? [])),
  );
  const exported = new Set(
    (await createMetrics().registry.getMetricsAsJSON()).map((m) => m.name),
  );
  for (const name of read) {
    assert(
      exported.has(name.replace(/_(bucket|sum|count)$/, "")),
      `${name} is read by a rule but F2S exports no such metric`,
    );
  }
});

Deno.test("original metric names: the chart's Prometheus loads the rules", async (t) => {
  const helm = `${await binDir()}/helm`;
  let present = true;
  try {
    await Deno.stat(helm);
  } catch {
    present = false;
    console.warn(`SKIPPING the chart step: no helm at ${helm} (tests/deps/cluster.sh builds it)`);
  }
  await t.step({
    name: "helm template: rule_files, mount, promtool check rules",
    ignore: !present,
    async fn() {
      const rendered = await run(helm, ["template", "f2s", "helm"]);
      assertEquals(rendered.code, 0, rendered.text);
      const configMap = parseAllDocuments(rendered.text).map((d) => d.toJS()).find((d) =>
        d?.kind === "ConfigMap" && d.metadata.name === "f2s-prometheus"
      );
      assert(configMap, "the f2s-prometheus ConfigMap");
      assertEquals(
        configMap.data["original-metrics.rules.yml"].trim(),
        (await Deno.readTextFile(RULES)).trim(),
      );
      // Debian's promtool lacks Kubernetes discovery, so it cannot check the whole config:
      // the reference is checked here, the rules file with promtool.
      const config = parseYaml(configMap.data["prometheus.yml"]) as { rule_files?: string[] };
      assertEquals(config.rule_files, ["/etc/prometheus/original-metrics.rules.yml"]);
      const deployment = parseAllDocuments(rendered.text).map((d) => d.toJS()).find((d) =>
        d?.kind === "Deployment" && d.metadata.name === "f2s-prometheus"
      );
      const mount = deployment.spec.template.spec.containers[0].volumeMounts.find((
        m: { name: string },
      ) => m.name === "config");
      assertEquals(mount.mountPath, "/etc/prometheus");
      const dir = await Deno.makeTempDir({ prefix: "f2s-prom-rules-" });
      try {
        const file = `${dir}/original-metrics.rules.yml`;
        await Deno.writeTextFile(file, configMap.data["original-metrics.rules.yml"]);
        const checked = await run("promtool", ["check", "rules", file]);
        assertEquals(checked.code, 0, checked.text);
        assert(/SUCCESS: 8 rules found/.test(checked.text), checked.text);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
      // Switched off, neither the rules nor the reference to them are rendered.
      const off = await run(helm, [
        "template",
        "f2s",
        "helm",
        "--set",
        "prometheus.originalMetrics=false",
      ]);
      assertEquals(off.code, 0, off.text);
      assert(!off.text.includes("original-metrics.rules.yml"), "rules rendered while off");
    },
  });
});
