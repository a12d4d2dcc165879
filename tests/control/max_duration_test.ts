// spec.timeouts.maxDuration through `f2s dev` with the example app's /stream route: a
// streaming answer keeps flowing past httpTimeout (the limit to its first byte) and is cut at
// maxDuration; without maxDuration, requestTimeout still bounds the whole exchange.
import { assert, assertEquals } from "../harness/assert.ts";
import { processesMatching, startDev, waitFor } from "../harness/dev.ts";

const EXAMPLE = new URL("../../examples/nodejs/server.js", import.meta.url).pathname;
/** 64 KiB chunks, one every 100 ms: 100 chunks would take about 10 s. */
const SLOW_STREAM = "/stream?bytes=6553600&ms=100";

async function functionsDir(timeouts: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "f2s-maxduration-test-" });
  await Deno.mkdir(`${dir}/app`);
  await Deno.copyFile(EXAMPLE, `${dir}/app/server.js`);
  await Deno.writeTextFile(
    `${dir}/app.yaml`,
    JSON.stringify({
      apiVersion: "f2s.opensight.ch/v1alpha1",
      kind: "Function",
      metadata: { name: "app", namespace: "f2s" },
      spec: { endpoint: "/app", method: "ANY", timeouts },
      target: {
        containerImage: "f2s-tests/app:latest",
        minReplicas: 1,
        maxReplicas: 1,
        local: { dir: "./app", command: "node server.js" },
      },
    }),
  );
  return dir;
}

/** Reads a streamed answer to its end or its cut: bytes, whether it ended whole, time taken. */
async function drain(res: Response): Promise<{ bytes: number; whole: boolean; ms: number }> {
  const started = Date.now();
  let bytes = 0;
  try {
    for await (const chunk of res.body!) bytes += chunk.byteLength;
    return { bytes, whole: true, ms: Date.now() - started };
  } catch {
    return { bytes, whole: false, ms: Date.now() - started };
  }
}

async function withDev(
  timeouts: Record<string, string>,
  body: (url: string) => Promise<void>,
): Promise<void> {
  const dir = await functionsDir(timeouts);
  const dev = await startDev({ functionsDir: dir });
  try {
    await waitFor("the instance answers", async () => {
      const r = await fetch(`${dev.url}/invoke/app/`);
      await r.body?.cancel();
      return r.status === 200;
    }, 30_000);
    await body(dev.url);
  } finally {
    await dev.stop();
    await waitFor("no processes left in " + dir, () => processesMatching(dir).length === 0, 20_000);
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("maxDuration: a streaming answer runs past httpTimeout and is cut at maxDuration", async () => {
  await withDev({ httpTimeout: "1s", requestTimeout: "1s", maxDuration: "3s" }, async (url) => {
    const started = Date.now();
    const res = await fetch(`${url}/invoke/app${SLOW_STREAM}`);
    assertEquals(res.status, 200);
    const got = await drain(res);
    const total = Date.now() - started;
    assertEquals(got.whole, false, "cut, not ended normally");
    assert(total >= 2800, `ran past the 1 s timeouts until maxDuration (${total} ms)`);
    assert(total < 8000, `cut at maxDuration, well before the stream's ~10 s (${total} ms)`);
    assert(got.bytes > 64 * 1024 * 10, `kept streaming past 1 s (${got.bytes} bytes)`);
  });
});

Deno.test("maxDuration: unset, requestTimeout still bounds a streaming answer", async () => {
  await withDev({ httpTimeout: "1s", requestTimeout: "2s" }, async (url) => {
    const started = Date.now();
    const res = await fetch(`${url}/invoke/app${SLOW_STREAM}`);
    assertEquals(res.status, 200);
    const got = await drain(res);
    const total = Date.now() - started;
    assertEquals(got.whole, false);
    assert(total < 6000, `cut at requestTimeout (${total} ms)`);
    // A short stream within the limits ends whole.
    const short = await drain(await fetch(`${url}/invoke/app/stream?bytes=200000&ms=100`));
    assertEquals(short, { ...short, bytes: 200000, whole: true });
  });
});
