// `f2s dev` on the shipped examples: both modes end to end, large bodies streamed through
// the dispatcher with flat memory, and the `f2s fn` client against the running platform.
import { runF2s } from "../harness/cli.ts";
import { assert, assertEquals, assertMatch } from "../harness/assert.ts";
import { processesMatching, startDev, waitFor } from "../harness/dev.ts";
import { copy } from "../harness/files.ts";
import { peakRss, rssMiB } from "../harness/rss.ts";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";

const ROOT = new URL("../../", import.meta.url).pathname;

async function examples(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "f2s-examples-test-" });
  await copy(`${ROOT}examples`, dir);
  return dir;
}

Deno.test("both examples answer through f2s dev, and large bodies stream with flat memory", async () => {
  const dir = await examples();
  const dev = await startDev({
    functionsDir: dir,
    config: "f2s:\n  timeouts: { http_timeout: 240000, request_timeout: 300000 }\n",
  });
  try {
    // Command mode (python): a JSON body in, the script's JSON out.
    const py = await fetch(`${dev.url}/invoke/hello-python`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "F2S" }),
    });
    const pyText = await py.text();
    assertEquals(py.status, 200, pyText);
    assertMatch(pyText, /F2S/);
    // Proxy mode (node).
    const node = await fetch(`${dev.url}/invoke/hello-node/anything?x=1`);
    assertEquals(node.status, 200);
    assertEquals((await node.json()).query, { x: "1" });

    // Download: counted as it arrives, never held by the control plane.
    const down = 512 * 1024 * 1024;
    let baseline = rssMiB(dev.pid);
    let peak = await peakRss(dev.pid, async () => {
      const res = await fetch(`${dev.url}/invoke/hello-node/stream?bytes=${down}`);
      let received = 0;
      for await (const chunk of res.body!) received += chunk.byteLength;
      assertEquals(received, down);
    });
    assert(
      peak - baseline < 96,
      `dev grew by ${Math.round(peak - baseline)} MiB for a ${down >> 20} MiB download`,
    );
    // Upload: a generated stream of unknown length arrives whole (same hash). Deno's fetch
    // reads a streamed request body somewhat ahead of a slow upstream, so the bound here is
    // "never the whole body", not flat.
    const up = 96 * 1024 * 1024;
    baseline = rssMiB(dev.pid);
    peak = await peakRss(dev.pid, async () => {
      let sent = 0;
      const hash = await crypto.subtle.digest("SHA-256", new Uint8Array(1 << 20).fill(120));
      assert(hash.byteLength === 32);
      const body = new ReadableStream<Uint8Array>({
        pull(c) {
          if (sent >= up) return c.close();
          const chunk = new Uint8Array(Math.min(1 << 20, up - sent)).fill(120);
          sent += chunk.byteLength;
          c.enqueue(chunk);
        },
      });
      const res = await fetch(`${dev.url}/invoke/hello-node/upload`, { method: "POST", body });
      const result = await res.json();
      assertEquals(res.status, 200, JSON.stringify(result));
      assertEquals(result.bodyLength, up);
    });
    assert(
      peak - baseline < up / (1 << 20),
      `dev grew by ${Math.round(peak - baseline)} MiB for a ${up >> 20} MiB upload`,
    );
  } finally {
    await dev.stop();
    await waitFor("no example process left", () => processesMatching(dir).length === 0);
    await Deno.remove(dir, { recursive: true });
  }
});

function fn(url: string, ...args: string[]) {
  return runF2s(["fn", "--url", url, ...args]);
}

Deno.test("f2s fn: apply waits for readiness, list, get, invoke, delete, and clear errors", async () => {
  const dir = await examples();
  const empty = await Deno.makeTempDir({ prefix: "f2s-fn-cli-" });
  const dev = await startDev({ functionsDir: empty, args: ["--images", dir] });
  try {
    const manifest = parseYaml(await Deno.readTextFile(`${dir}/nodejs/function.yaml`));
    manifest.target.minReplicas = 1;
    manifest.target.local.dir = `${dir}/nodejs`;
    const file = `${empty}/../f2s-cli-${crypto.randomUUID()}.yaml`;
    await Deno.writeTextFile(file, stringifyYaml(manifest));
    let r = await fn(dev.url, "apply", "-f", file);
    assertEquals(r.code, 0, r.stderr);
    assertMatch(r.stdout, /function\/hello-node created/);
    assertMatch(r.stdout, /hello-node is ready \(1\/1\)/);
    r = await fn(dev.url, "list");
    assertMatch(r.stdout, /hello-node\s+\/hello-node\s+ANY\s+1\/1/);
    r = await fn(dev.url, "get", "hello-node", "-o", "json");
    assertEquals(JSON.parse(r.stdout).status.readyReplicas, 1);
    r = await fn(dev.url, "invoke", "hello-node/anything", "--data", '{"a":1}');
    assertEquals(r.code, 0, r.stderr);
    assertEquals(JSON.parse(r.stdout).method, "POST");
    // A misspelt field is reported, as kubectl reports the API server's warnings.
    manifest.target.replicas = 3;
    await Deno.writeTextFile(file, stringifyYaml(manifest));
    r = await fn(dev.url, "apply", "-f", file);
    assertMatch(r.stdout, /configured/);
    assertMatch(r.stderr, /Warning: hello-node: target\.replicas: is not a known field; ignored/);
    r = await fn(dev.url, "delete", "hello-node");
    assertMatch(r.stdout, /deleted/);
    r = await fn(dev.url, "get", "hello-node");
    assertEquals(r.code, 1);
    assertMatch(r.stderr, /404.*"hello-node" not found/);
    r = await fn("http://127.0.0.1:1", "list");
    assertEquals(r.code, 3); // unreachable: exit code 3 (docs/cli.md)
    assertMatch(r.stderr, /cannot reach the control plane/);
    r = await fn(dev.url, "frobnicate");
    assertEquals(r.code, 2);
    await Deno.remove(file);
  } finally {
    await dev.stop();
    await Deno.remove(empty, { recursive: true });
    await Deno.remove(dir, { recursive: true });
  }
});
