// The control plane's HTTP/1.1 server, spoken to in raw bytes: keep-alive, pipelining,
// body framing both ways, refusals that keep requests from being smuggled, a client that
// leaves, and a graceful shutdown.

import { serveHttp1, type ServerHandler, type ServerRequest } from "../../common/http1_server.ts";
import { webHandler } from "../../common/web_bridge.ts";
import { assert, assertEquals } from "../harness/assert.ts";
import { waitFor } from "../harness/poll.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function bodyText(req: ServerRequest): Promise<string> {
  if (req.body === null) return "";
  if (req.body instanceof Uint8Array) return decoder.decode(req.body);
  return await new Response(req.body).text();
}

/** An echo: method, target and body back as text, and the request's headers as JSON. */
const echo: ServerHandler = async (req) => ({
  status: 200,
  headers: [["content-type", "text/plain"], ["x-headers", JSON.stringify(req.headers)]],
  body: encoder.encode(`${req.method} ${req.target} ${await bodyText(req)}`),
});

function start(handler: ServerHandler = echo) {
  return serveHttp1({ hostname: "127.0.0.1", port: 0 }, handler);
}

/** Writes `parts` (pausing between them) and reads until the server closes or `quietMs`. */
async function raw(
  port: number,
  parts: string[],
  quietMs = 300,
): Promise<{ text: string; closed: boolean }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  let text = "";
  let closed = false;
  const reading = (async () => {
    const buf = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) {
          closed = true;
          return;
        }
        text += decoder.decode(buf.subarray(0, n));
      }
    } catch {
      closed = true;
    }
  })();
  for (const part of parts) {
    await conn.write(encoder.encode(part));
    await new Promise((r) => setTimeout(r, 20));
  }
  await Promise.race([reading, new Promise((r) => setTimeout(r, quietMs))]);
  const closedByServer = closed;
  if (!closed) conn.close();
  await reading;
  return { text, closed: closedByServer };
}

const statuses = (text: string) => [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]);

Deno.test("server: keep-alive, pipelined requests answered in order, with length and date", async () => {
  const server = start();
  try {
    const { text, closed } = await raw(server.addr.port, [
      "GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b?q=1 HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello",
      "GET /c HTTP/1.1\r\nhost: x\r\n\r\n",
    ]);
    assert(!closed, "a keep-alive connection stays open");
    assertEquals(statuses(text), ["200", "200", "200"]);
    assert(text.startsWith("HTTP/1.1 200 OK\r\n"), text);
    const bodies = [...text.matchAll(/\r\n\r\n([A-Z]+ [^ ]+ [a-z]*)/g)].map((m) => m[1]);
    assertEquals(bodies, ["GET /a ", "POST /b?q=1 hello", "GET /c "]);
    assert(/content-length: 7\r\n/.test(text), text); // "GET /a "
    assert(/date: \w{3}, \d\d \w{3} \d{4}/.test(text), text);
    // Header names arrive lower-cased, values as sent.
    assert(text.includes('x-headers: [["host","x"]]\r\n'), text);
  } finally {
    await server.shutdown();
  }
});

Deno.test("server: chunked uploads are decoded, and 100-continue is sent before the body", async () => {
  const server = start();
  try {
    const chunked = await raw(server.addr.port, [
      "PUT /up HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n",
      "5;ext=1\r\nhello\r\n",
      "6\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n",
    ]);
    assertEquals(statuses(chunked.text), ["200"]);
    assert(chunked.text.endsWith("PUT /up hello world"), chunked.text);

    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    await conn.write(
      encoder.encode(
        "POST /c HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 2\r\n\r\n",
      ),
    );
    const buf = new Uint8Array(1024);
    const n = await conn.read(buf);
    assertEquals(decoder.decode(buf.subarray(0, n!)), "HTTP/1.1 100 Continue\r\n\r\n");
    await conn.write(encoder.encode("ok"));
    let answer = "";
    while (!answer.endsWith("POST /c ok")) {
      const m = await conn.read(buf);
      if (m === null) break;
      answer += decoder.decode(buf.subarray(0, m));
    }
    assert(answer.startsWith("HTTP/1.1 200 OK"), answer);
    conn.close();
  } finally {
    await server.shutdown();
  }
});

Deno.test("server: ambiguous or malformed requests are refused and the connection closed", async () => {
  let handled = 0;
  const server = start((req) => {
    handled++;
    return echo(req);
  });
  const cases: [string, string][] = [
    [
      "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n",
      "400",
    ],
    ["POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\n", "400"],
    ["POST / HTTP/1.1\r\nhost: x\r\ncontent-length: +3\r\n\r\n", "400"],
    ["POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: gzip, chunked\r\n\r\n", "501"],
    ["GET / HTTP/1.1\r\n\r\n", "400"], // no Host
    ["GET / HTTP/1.1\r\nhost: x\r\nhost: y\r\n\r\n", "400"],
    ["GET / HTTP/1.1\r\nhost: x\r\nx-a: 1\r\n  folded\r\n\r\n", "400"],
    ["GET / HTTP/1.1\r\nhost : x\r\n\r\n", "400"],
    ["GET /a b HTTP/1.1\r\nhost: x\r\n\r\n", "400"],
    ["GET / HTTP/2.0\r\nhost: x\r\n\r\n", "505"],
    [`GET / HTTP/1.1\r\nhost: x\r\nx-big: ${"a".repeat(70 * 1024)}\r\n\r\n`, "431"],
  ];
  try {
    for (const [request, status] of cases) {
      const { text, closed } = await raw(server.addr.port, [
        request,
        "GET / HTTP/1.1\r\nhost: x\r\n\r\n",
      ]);
      assertEquals(statuses(text), [status], JSON.stringify(request.slice(0, 80)));
      assert(closed, `closed after ${status}`);
      assert(text.includes("connection: close"), text);
      assert(text.includes('{"error":'), text);
    }
    assertEquals(handled, 0, "no refused request reaches the handler");
  } finally {
    await server.shutdown();
  }
});

Deno.test("server: answers by length, chunked or until close; HEAD and 204 carry no body", async () => {
  const stream = (parts: string[]) =>
    new ReadableStream<Uint8Array>({
      start(c) {
        for (const p of parts) c.enqueue(encoder.encode(p));
        c.close();
      },
    });
  const server = start((req) => {
    if (req.target === "/chunked") return { status: 200, headers: [], body: stream(["ab", "cd"]) };
    if (req.target === "/sized") {
      return { status: 200, headers: [["content-length", "4"]], body: stream(["ab", "cd"]) };
    }
    if (req.target === "/none") return { status: 204, headers: [], body: null };
    return { status: 200, headers: [], body: encoder.encode("body") };
  });
  try {
    const chunked = await raw(server.addr.port, ["GET /chunked HTTP/1.1\r\nhost: x\r\n\r\n"]);
    assert(chunked.text.includes("transfer-encoding: chunked\r\n"), chunked.text);
    assert(chunked.text.endsWith("\r\n\r\n2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n"), chunked.text);

    const sized = await raw(server.addr.port, ["GET /sized HTTP/1.1\r\nhost: x\r\n\r\n"]);
    assert(sized.text.includes("content-length: 4\r\n"), sized.text);
    assert(sized.text.endsWith("\r\n\r\nabcd"), sized.text);

    const old = await raw(server.addr.port, ["GET /chunked HTTP/1.0\r\n\r\n"]);
    assert(old.closed && old.text.endsWith("\r\n\r\nabcd"), old.text);
    assert(!old.text.includes("chunked"), old.text);

    const head = await raw(server.addr.port, ["HEAD / HTTP/1.1\r\nhost: x\r\n\r\n"]);
    assert(
      head.text.includes("content-length: 4\r\n") && head.text.endsWith("\r\n\r\n"),
      head.text,
    );

    const none = await raw(server.addr.port, ["GET /none HTTP/1.1\r\nhost: x\r\n\r\n"]);
    assert(none.text.startsWith("HTTP/1.1 204 No Content\r\n"), none.text);
    assert(!none.text.includes("content-length"), none.text);

    const ka10 = await raw(server.addr.port, [
      "GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n",
      "GET / HTTP/1.0\r\n\r\n",
    ]);
    assertEquals(statuses(ka10.text), ["200", "200"]);
    assert(ka10.text.includes("connection: keep-alive\r\n"), ka10.text);
    assert(ka10.closed, "an HTTP/1.0 request without keep-alive closes");
  } finally {
    await server.shutdown();
  }
});

Deno.test("server: a client leaving mid-answer is reported; a throwing handler costs one 500", async () => {
  let gone = false;
  const server = start((req) => {
    if (req.target === "/throw") throw new Error("boom");
    return new Promise((resolve) => {
      req.watchClient(() => {
        gone = true;
        resolve({ status: 200, headers: [], body: null });
      });
    });
  });
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    await conn.write(encoder.encode("GET /wait HTTP/1.1\r\nhost: x\r\n\r\n"));
    await new Promise((r) => setTimeout(r, 50));
    assert(!gone);
    conn.close();
    await waitFor("the watchClient callback", () => gone, 2000);

    const thrown = await raw(server.addr.port, [
      "GET /throw HTTP/1.1\r\nhost: x\r\n\r\nGET /throw HTTP/1.1\r\nhost: x\r\n\r\n",
    ]);
    assertEquals(statuses(thrown.text), ["500", "500"]);
  } finally {
    await server.shutdown();
  }
});

Deno.test("server: shutdown lets an answer in progress finish and closes idle connections", async () => {
  let release!: () => void;
  const held = new Promise<void>((r) => release = r);
  const server = start(async (req) => {
    if (req.target === "/slow") await held;
    return { status: 200, headers: [], body: encoder.encode("done") };
  });
  const port = server.addr.port;
  const idle = await fetch(`http://127.0.0.1:${port}/`);
  assertEquals(await idle.text(), "done");
  const slow = fetch(`http://127.0.0.1:${port}/slow`);
  await new Promise((r) => setTimeout(r, 50));
  let stopped = false;
  const stopping = server.shutdown().then(() => stopped = true);
  await new Promise((r) => setTimeout(r, 50));
  assert(!stopped, "shutdown waits for the answer in progress");
  await Deno.connect({ hostname: "127.0.0.1", port }).then(
    (c) => {
      c.close();
      throw new Error("a stopped server must not accept connections");
    },
    () => {},
  );
  release();
  const res = await slow;
  assertEquals(res.headers.get("connection"), "close");
  assertEquals(await res.text(), "done");
  await stopping;
  await server.finished;
});

Deno.test("server: web handlers run on it with their URL, headers, body and signal", async () => {
  const server = start(webHandler(async (req, info) => {
    if (new URL(req.url).pathname === "/stream") {
      return new Response(
        new ReadableStream({
          async pull(c) {
            await new Promise((r) => setTimeout(r, 20));
            c.enqueue(encoder.encode("tick"));
            c.close();
          },
        }),
      );
    }
    return Response.json({
      url: req.url,
      method: req.method,
      type: req.headers.get("content-type"),
      body: await req.text(),
      from: (info.remoteAddr as Deno.NetAddr).hostname,
    });
  }));
  try {
    const port = server.addr.port;
    const res = await fetch(`http://127.0.0.1:${port}/p?q=1`, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: new ReadableStream({
        start(c) {
          c.enqueue(encoder.encode("streamed "));
          c.enqueue(encoder.encode("upload"));
          c.close();
        },
      }),
    });
    assertEquals(await res.json(), {
      url: `http://127.0.0.1:${port}/p?q=1`,
      method: "POST",
      type: "text/plain",
      body: "streamed upload",
      from: "127.0.0.1",
    });
    assert(res.headers.get("content-length") !== null, "an answer held in memory has a length");
    const streamed = await fetch(`http://127.0.0.1:${port}/stream`);
    assertEquals(await streamed.text(), "tick");
  } finally {
    await server.shutdown();
  }
});

Deno.test("server: a head sent too slowly and an idle keep-alive connection are closed", async () => {
  const server = serveHttp1(
    { hostname: "127.0.0.1", port: 0, headTimeout: 200, idleTimeout: 400 },
    echo,
  );
  try {
    const slow = await raw(server.addr.port, ["GET / HTTP/1.1\r\nhost: x\r\n"], 1500);
    assert(slow.closed, "a head begun but not finished within headTimeout closes");
    assertEquals(slow.text, "");

    const started = performance.now();
    const idle = await raw(server.addr.port, ["GET / HTTP/1.1\r\nhost: x\r\n\r\n"], 2000);
    assertEquals(statuses(idle.text), ["200"]);
    assert(idle.closed, "an idle keep-alive connection closes after idleTimeout");
    assert(performance.now() - started >= 400, "not before idleTimeout");
  } finally {
    await server.shutdown();
  }
});

Deno.test("server: a pipelined head that outgrows the read buffer after an earlier request is answered", async () => {
  // The first read fills the 8 KiB buffer: request one and most of request two's head.
  // The buffer then grows and moves the unread bytes to its start; the head's end, 10
  // bytes into the next read, must still be found there (it was skipped: the second
  // request waited for the head timeout).
  const server = start();
  try {
    const first = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    const prefix = "GET /b HTTP/1.1\r\nHost: x\r\nx-pad: ";
    const pad = "p".repeat(8 * 1024 + 10 - first.length - prefix.length);
    const { text } = await raw(server.addr.port, [first + prefix + pad + "\r\n\r\n"], 2000);
    assertEquals(statuses(text), ["200", "200"]);
    assert(text.includes("GET /b "), text.slice(-200));
  } finally {
    await server.shutdown();
  }
});

Deno.test("server: a pipelined request's small body already buffered is taken at once", async () => {
  // After the GET a read is started ahead (to notice the client leaving); the POST's body
  // is already in the buffer before it, so the POST is answered without waiting for that
  // read (it waited until the client sent more or closed).
  const server = start();
  try {
    const { text } = await raw(server.addr.port, [
      "GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\ncontent-length: 5\r\n\r\nhello",
    ], 1500);
    assertEquals(statuses(text), ["200", "200"]);
    assert(text.includes("POST /b hello"), text);
  } finally {
    await server.shutdown();
  }
});

Deno.test("server: the idle timeout counts from each request's answer, not the connection's first", async () => {
  // A connection keeps one wait deadline and moves its due time forward: requests every
  // 200 ms for twice the 600 ms idle timeout keep it open; then it closes when idle.
  const server = serveHttp1({ hostname: "127.0.0.1", port: 0, idleTimeout: 600 }, echo);
  try {
    const parts = Array.from({ length: 6 }, (_, i) => `GET /${i} HTTP/1.1\r\nhost: x\r\n\r\n`);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    let text = "";
    const reading = (async () => {
      const buf = new Uint8Array(64 * 1024);
      for (;;) {
        const n = await conn.read(buf).catch(() => null);
        if (n === null) return;
        text += decoder.decode(buf.subarray(0, n));
      }
    })();
    for (const part of parts) {
      await conn.write(encoder.encode(part));
      await new Promise((r) => setTimeout(r, 200));
    }
    assertEquals(statuses(text).length, 6, "every request answered on the one connection");
    const closedAt = await Promise.race([
      reading.then(() => "closed"),
      new Promise((r) => setTimeout(() => r("open"), 3000)),
    ]);
    assertEquals(closedAt, "closed", "an idle connection still closes");
    try {
      conn.close();
    } catch {
      // closed by the server
    }
  } finally {
    await server.shutdown();
  }
});
