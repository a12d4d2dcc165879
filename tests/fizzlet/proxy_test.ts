/**
 * Reverse-proxy mode against the real example app: 1 GiB streamed both ways with the
 * fizzlet's memory staying flat, 502 and 504 with JSON bodies, an app that starts late
 * still getting proxy mode, and a crashed app being restarted.
 */

import http from "node:http";
import { assert, assertEquals } from "../harness/assert.ts";
import {
  eventually,
  EXAMPLES,
  freePort,
  functionDir,
  GiB,
  MEMORY_LIMIT,
  peakMemory,
  type RunningFizzlet,
  sendChunks,
  startFizzlet,
} from "./helpers.ts";

function nodeApp(appPort: number, extra: string[] = []): Promise<RunningFizzlet> {
  return startFizzlet({
    dir: `${EXAMPLES}/nodejs`,
    args: ["--app-port", String(appPort), "--app-command", "node server.js", ...extra],
  });
}

/**
 * POSTs `total` bytes produced chunk by chunk (never held whole) and returns the answer.
 * node:http sends it, not fetch: Deno's fetch leaves Nagle's algorithm on, and its streamed
 * uploads crawl on delayed ACKs whatever the server does.
 */
function upload(url: string, total: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: "POST",
      headers: { "content-type": "application/octet-stream", "transfer-encoding": "chunked" },
    }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => body += d);
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("error", reject);
    sendChunks(req, total);
  });
}

Deno.test("proxy: 1 GiB upload and 1 GiB download stream through with flat memory", async () => {
  const f = await nodeApp(freePort());
  try {
    await f.waitForLog((l) => l.msg === "mode changed" && l.mode === "proxy");
    const up = await upload(`${f.url}/upload`, GiB);
    assertEquals(up.status, 200);
    assertEquals(JSON.parse(up.body).bodyLength, GiB);

    const down = await fetch(`${f.url}/stream?bytes=${GiB}`);
    assertEquals(down.status, 200);
    let received = 0;
    for await (const chunk of down.body!) received += chunk.byteLength;
    assertEquals(received, GiB);

    const peak = await peakMemory(f.pid);
    assert(peak < MEMORY_LIMIT, `fizzlet peak memory ${peak >> 20} MiB after 2 GiB streamed`);
  } finally {
    assertEquals(await f.stop(), 0);
  }
});

Deno.test("proxy: app unreachable is 502, app too slow is 504, both JSON", async () => {
  const appPort = freePort();
  const empty = await functionDir({});
  const down = await startFizzlet({
    dir: empty,
    args: ["--mode", "proxy", "--app-port", String(appPort)],
    removeOnFailure: [empty],
  });
  try {
    const res = await fetch(`${down.url}/anything`);
    assertEquals(res.status, 502);
    assertEquals(res.headers.get("content-type"), "application/json");
    const body = await res.json();
    assertEquals(body.error, "app unreachable");
    assertEquals(body.details.appPort, appPort);
    const ready = await fetch(`${down.url}/f2s/ready`);
    assertEquals(ready.status, 503);
    assertEquals((await ready.json()).ready, false);
  } finally {
    assertEquals(await down.stop(), 0);
    await Deno.remove(empty, { recursive: true });
  }

  const f = await nodeApp(freePort(), ["--timeout", "300ms"]);
  try {
    await f.waitForLog((l) => l.msg === "mode changed" && l.mode === "proxy");
    const started = Date.now();
    const slow = await fetch(`${f.url}/slow?ms=5000`, { headers: { "x-request-id": "slow-1" } });
    assertEquals(slow.status, 504);
    assert(Date.now() - started < 3000, "504 comes at the timeout, not when the app answers");
    assertEquals((await slow.json()).details.timeoutMs, 300);
    await f.waitForLog((l) => l.msg === "app did not answer in time" && l.requestId === "slow-1");
    // A quick request on the same fizzlet still passes.
    assertEquals((await fetch(`${f.url}/slow?ms=10`)).status, 200);
    const metrics = await (await fetch(`${f.url}/f2s/metrics`)).text();
    assert(metrics.includes('f2s_fizzlet_requests_total{code="504"} 1'), metrics);
    assert(metrics.includes('f2s_fizzlet_requests_total{code="200"} 1'), metrics);
    assert(metrics.includes("f2s_fizzlet_request_duration_seconds_count 2"), metrics);
    assert(metrics.includes("f2s_fizzlet_inflight_requests 0"), metrics);
  } finally {
    assertEquals(await f.stop(), 0);
  }
});

Deno.test("proxy: an app that starts seconds after the fizzlet still gets proxy mode", async () => {
  const appPort = freePort();
  // start.sh exists, so the fizzlet begins in command mode and must switch when the app is up.
  const dir = await functionDir({ "start.sh": "#!/bin/sh\necho from-script\n" });
  const f = await startFizzlet({
    dir,
    removeOnFailure: [dir],
    args: ["--app-port", String(appPort)],
  });
  let app: Deno.ChildProcess | undefined;
  try {
    assertEquals((await (await fetch(`${f.url}/f2s/health`)).json()).mode, "command");
    assertEquals(await (await fetch(`${f.url}/x`)).text(), "from-script\n");
    await new Promise((r) => setTimeout(r, 2500));
    app = new Deno.Command("node", {
      args: ["server.js"],
      cwd: `${EXAMPLES}/nodejs`,
      env: { PORT: String(appPort) },
      stdout: "null",
      stderr: "null",
    }).spawn();
    await f.waitForLog((l) => l.msg === "mode changed" && l.mode === "proxy", 10_000);
    assertEquals((await (await fetch(`${f.url}/f2s/health`)).json()).mode, "proxy");
    const res = await fetch(`${f.url}/late`);
    assertEquals((await res.json()).app, "hello-node");
  } finally {
    app?.kill("SIGKILL");
    await app?.status;
    assertEquals(await f.stop(), 0);
    await Deno.remove(dir, { recursive: true });
  }

  // Without start.sh the fizzlet waits for the app: not ready and 503 until it is up.
  const appPort2 = freePort();
  const empty = await functionDir({});
  const g = await startFizzlet({
    dir: empty,
    args: ["--app-port", String(appPort2)],
    removeOnFailure: [empty],
  });
  try {
    const pending = await fetch(`${g.url}/x`);
    assertEquals(pending.status, 503);
    assertEquals(pending.headers.get("retry-after"), "1");
    await pending.body?.cancel();
    const ready = await fetch(`${g.url}/f2s/ready`);
    assertEquals(ready.status, 503);
    assertEquals((await ready.json()).mode, "pending");
    app = new Deno.Command("node", {
      args: ["server.js"],
      cwd: `${EXAMPLES}/nodejs`,
      env: { PORT: String(appPort2) },
      stdout: "null",
      stderr: "null",
    }).spawn();
    await g.waitForLog((l) => l.msg === "mode changed" && l.mode === "proxy", 10_000);
    assertEquals((await fetch(`${g.url}/f2s/ready`)).status, 200);
    assertEquals((await (await fetch(`${g.url}/x`)).json()).path, "/x");
  } finally {
    app?.kill("SIGKILL");
    await app?.status;
    assertEquals(await g.stop(), 0);
    await Deno.remove(empty, { recursive: true });
  }
});

Deno.test("proxy: an app started with --app-command is restarted when it dies", async () => {
  const appPort = freePort();
  const f = await nodeApp(appPort);
  try {
    const started = await f.waitForLog((l) => l.msg === "app started");
    await f.waitForLog((l) => l.msg === "mode changed" && l.mode === "proxy");
    Deno.kill(started.pid as number, "SIGKILL");
    await f.waitForLog((l) => l.msg === "app exited; restarting");
    await eventually(
      () => f.logs().filter((l) => l.msg === "app started").length === 2,
      10_000,
      "the app to be started again",
    );
    await eventually(
      async () => {
        const ready = await fetch(`${f.url}/f2s/ready`);
        await ready.body?.cancel();
        return ready.ok;
      },
      10_000,
      "readiness after the restart",
    );
    assertEquals((await (await fetch(`${f.url}/again`)).json()).path, "/again");
  } finally {
    assertEquals(await f.stop(), 0);
  }
});

/** An app with every kind of response framing, and idle connections closed after 200 ms. */
const FRAMING_APP = `
const http = require("node:http");
const zlib = require("node:zlib");
const server = http.createServer((req, res) => {
  let size = 0;
  req.on("data", (d) => size += d.length);
  req.on("end", () => {
    const url = new URL(req.url, "http://x");
    switch (url.pathname) {
      case "/chunked":
        res.writeHead(200, { "content-type": "text/plain" });
        for (let i = 0; i < 5; i++) res.write("part" + i + ";");
        return res.end("received=" + size);
      case "/nocontent":
        res.writeHead(204, { "x-empty": "yes" });
        return res.end();
      case "/cookies":
        res.setHeader("set-cookie", ["a=1; Path=/", "b=2; Path=/"]);
        return res.end("cookies");
      case "/gzip": {
        const body = zlib.gzipSync("compressed by the app");
        res.writeHead(200, { "content-encoding": "gzip", "content-length": body.length });
        return res.end(body);
      }
      case "/until-close":
        res.writeHead(200, { "connection": "close" });
        res.write("no length, ");
        return res.end("ends with the connection");
      default:
        res.end("ok " + size);
    }
  });
});
server.keepAliveTimeout = 200;
server.listen(Number(process.env.PORT));
`;

Deno.test("proxy: chunked, empty, multi-cookie, gzip and close-delimited answers pass intact", async () => {
  const dir = await functionDir({ "app.js": FRAMING_APP });
  const f = await startFizzlet({
    dir,
    args: ["--app-port", String(freePort()), "--app-command", "node app.js"],
    removeOnFailure: [dir],
  });
  try {
    await f.waitForLog((l) => l.msg === "mode changed" && l.mode === "proxy");
    const chunked = await fetch(`${f.url}/chunked`, { method: "POST", body: "12345" });
    assertEquals(await chunked.text(), "part0;part1;part2;part3;part4;received=5");
    const head = await fetch(`${f.url}/chunked`, { method: "HEAD" });
    assertEquals(head.status, 200);
    assertEquals(await head.text(), "");
    const empty = await fetch(`${f.url}/nocontent`);
    assertEquals(empty.status, 204);
    assertEquals(empty.headers.get("x-empty"), "yes");
    await empty.body?.cancel();
    const cookies = await fetch(`${f.url}/cookies`);
    assertEquals(cookies.headers.getSetCookie(), ["a=1; Path=/", "b=2; Path=/"]);
    await cookies.body?.cancel();
    // The gzip body arrives as the app sent it (fetch here decompresses it for the test).
    const gzip = await fetch(`${f.url}/gzip`, { headers: { "accept-encoding": "gzip" } });
    assertEquals(gzip.headers.get("content-encoding"), "gzip");
    assertEquals(await gzip.text(), "compressed by the app");
    const untilClose = await fetch(`${f.url}/until-close`);
    assertEquals(await untilClose.text(), "no length, ends with the connection");
    // The app closes idle connections after 200 ms: the pooled ones must not fail requests.
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 400));
      const res = await fetch(`${f.url}/after-idle`, { method: "POST", body: "x".repeat(100) });
      assertEquals(await res.text(), "ok 100");
    }
  } finally {
    assertEquals(await f.stop(), 0);
    await Deno.remove(dir, { recursive: true });
  }
});
