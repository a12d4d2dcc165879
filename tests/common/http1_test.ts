// The HTTP/1.1 client both proxy hops use, against a raw TCP server that answers with
// hand-written bytes: what real upstreams send, in odd shapes and torn into pieces.

import { createHttp1Client, UpstreamError } from "../../common/http1.ts";
import { NotDeliveredError } from "../../common/delivery.ts";
import { freePort } from "../../common/self.ts";
import { assert, assertEquals } from "../harness/assert.ts";
import { rawServer } from "../harness/raw_server.ts";
import { createDeadlines } from "../../common/deadlines.ts";
import { createFakeClock } from "../harness/fake_clock.ts";
import { waitFor } from "../harness/poll.ts";

const encoder = new TextEncoder();

async function get(port: number, headers: [string, string][] = [], method = "GET") {
  const client = createHttp1Client(port);
  try {
    const res = await client.request({
      method,
      target: "/p?q=1",
      headers: [["host", "upstream"], ...headers],
      body: null,
      signal: new AbortController().signal,
    });
    const body = res.body instanceof ReadableStream
      ? new TextDecoder().decode(await new Response(res.body).arrayBuffer())
      : res.body === null
      ? null
      : new TextDecoder().decode(res.body);
    return { ...res, text: body };
  } finally {
    client.close();
  }
}

Deno.test("http1: status, reason and headers as sent, names lower-cased, values trimmed", async () => {
  const server = rawServer(() =>
    "HTTP/1.1 201 Created Just Now\r\nX-Odd-Case:  spaced value \t\r\nSet-Cookie: a=1\r\n" +
    "Set-Cookie: b=2\r\nEmpty:\r\nContent-Length: 5\r\n\r\nhello"
  );
  try {
    const res = await get(server.port, [["x-mine", "1"]]);
    assertEquals(res.status, 201);
    assertEquals(res.statusText, "Created Just Now");
    assertEquals(res.headers, [
      ["x-odd-case", "spaced value"],
      ["set-cookie", "a=1"],
      ["set-cookie", "b=2"],
      ["empty", ""],
      ["content-length", "5"],
    ]);
    assertEquals(res.text, "hello");
    assertEquals(server.heads[0], "GET /p?q=1 HTTP/1.1\r\nhost: upstream\r\nx-mine: 1");
  } finally {
    await server.close();
  }
});

Deno.test("http1: a status line without a reason, and answers without a body", async () => {
  const answers = [
    "HTTP/1.1 204\r\nX-A: 1\r\n\r\n",
    "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
  ];
  const server = rawServer((i) => answers[i]);
  try {
    const a = await get(server.port);
    assertEquals([a.status, a.statusText, a.text], [204, "", null]);
    const b = await get(server.port);
    assertEquals([b.status, b.text], [200, null]);
  } finally {
    await server.close();
  }
});

Deno.test("http1: a head and body torn into pieces across reads arrive whole", async () => {
  const body = "x".repeat(3000);
  const server = rawServer(
    () =>
      `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    97,
  );
  try {
    const res = await get(server.port);
    assertEquals(res.status, 200);
    assertEquals(res.headers[0], ["content-type", "text/plain"]);
    assertEquals(res.text, body);
  } finally {
    await server.close();
  }
});

Deno.test("http1: chunked answers, with extensions and trailers", async () => {
  const server = rawServer(() =>
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
    "5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n"
  );
  try {
    const res = await get(server.port);
    assertEquals(res.text, "hello world");
  } finally {
    await server.close();
  }
});

Deno.test("http1: a HEAD answer has no body even with a length", async () => {
  const server = rawServer(() => "HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n");
  try {
    const res = await get(server.port, [], "HEAD");
    assertEquals([res.status, res.text], [200, null]);
    assertEquals(res.headers, [["content-length", "42"]]);
  } finally {
    await server.close();
  }
});

Deno.test("http1: malformed answers fail with an UpstreamError naming the problem", async () => {
  const cases: [string, string][] = [
    ["HTTP/2 200 OK\r\n\r\n", "malformed status line"],
    ["HTTP/1.1 2x0 OK\r\n\r\n", "malformed status line"],
    ["HTTP/1.1 200OK\r\n\r\n", "malformed status line"],
    ["HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed header line"],
    ["HTTP/1.1 200 OK\r\n: no name\r\n\r\n", "malformed header line"],
    ["HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad content-length"],
    ["HTTP/1.1 200 OK\r\nContent-Length: 1e2\r\n\r\n", "bad content-length"],
    ["HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", "bad content-length"],
  ];
  for (const [answer, problem] of cases) {
    const server = rawServer(() => answer);
    try {
      let error: unknown;
      try {
        await get(server.port);
      } catch (e) {
        error = e;
      }
      assert(error instanceof UpstreamError, `${JSON.stringify(answer)}: ${error}`);
      assert(
        (error as Error).message.includes(problem),
        `${JSON.stringify(answer)}: "${(error as Error).message}" does not say "${problem}"`,
      );
    } finally {
      await server.close();
    }
  }
});

Deno.test("http1: keep-alive connections are reused; a closed one is replaced once", async () => {
  // The first connection answers twice, then the server closes it while it is pooled.
  const server = rawServer((i) =>
    i === 2 ? null : `HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n${i}`
  );
  const client = createHttp1Client(server.port);
  const signal = new AbortController().signal;
  const ask = async () => {
    const res = await client.request({
      method: "GET",
      target: "/",
      headers: [["host", "h"]],
      body: null,
      signal,
    });
    return new TextDecoder().decode(res.body as Uint8Array);
  };
  try {
    assertEquals(await ask(), "0");
    assertEquals(await ask(), "1");
    // Request 3 lands on the pooled connection, which the server closes unanswered: the
    // client sends it again on a fresh connection.
    assertEquals(await ask(), "3");
    assertEquals(server.heads.length, 4);
  } finally {
    client.close();
    await server.close();
  }
});

/** One request on `client`, resolving to the answer's text or the error it failed with. */
async function ask(
  client: ReturnType<typeof createHttp1Client>,
  method: string,
  headers: [string, string][] = [],
  body: Uint8Array | ReadableStream<Uint8Array> | null = null,
): Promise<string | Error> {
  try {
    const res = await client.request({
      method,
      target: "/",
      headers: [["host", "h"], ...headers],
      body,
      signal: new AbortController().signal,
    });
    return new TextDecoder().decode(res.body as Uint8Array);
  } catch (e) {
    return e as Error;
  }
}

const ok = (i: number) => `HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n${i}`;
const POST: [string, string][] = [["content-length", "1"]];

Deno.test("http1: a POST on a pooled connection that closes after reading it is not sent again", async () => {
  // Answer 0 on the first connection; request 1 (the POST) is read, then the connection is
  // closed unanswered: the app may be running it, so it must not run a second time.
  const server = rawServer((i) => i === 1 ? null : ok(i));
  const client = createHttp1Client(server.port);
  try {
    assertEquals(await ask(client, "GET"), "0");
    const failed = await ask(client, "POST", POST, encoder.encode("x"));
    assert(failed instanceof Error, `POST answered: ${failed}`);
    assert(!(failed instanceof NotDeliveredError), `may not go elsewhere: ${failed}`);
    await new Promise((r) => setTimeout(r, 100));
    assertEquals(server.heads.length, 2, "the POST reached the server exactly once");
  } finally {
    client.close();
    await server.close();
  }
});

Deno.test("http1: idempotent requests and Idempotency-Key are sent again on a fresh connection", async () => {
  for (
    const [method, headers] of [
      ["PUT", POST],
      ["DELETE", []],
      ["POST", [...POST, ["idempotency-key", "k-1"]]],
    ] as [string, [string, string][]][]
  ) {
    const server = rawServer((i) => i === 1 ? null : ok(i));
    const client = createHttp1Client(server.port);
    try {
      assertEquals(await ask(client, "GET"), "0");
      const body = headers.length > 0 ? encoder.encode("x") : null;
      assertEquals(await ask(client, method, headers, body), "2", method);
      assertEquals(server.heads.length, 3, method);
    } finally {
      client.close();
      await server.close();
    }
  }
});

Deno.test("http1: a refused connect is NotDeliveredError and leaves a streamed body unread", async () => {
  const client = createHttp1Client(freePort());
  try {
    for (const length of [100, 2 * 1024 * 1024]) {
      const body = new ReadableStream<Uint8Array>({
        pull: (c) => c.enqueue(new Uint8Array(length)),
      });
      const failed = await ask(client, "POST", [["content-length", String(length)]], body);
      assert(failed instanceof NotDeliveredError, `${length}: ${failed}`);
      assertEquals(failed.written, false);
      assertEquals(body.locked, false, "the body can still go to another upstream");
      await body.cancel();
    }
  } finally {
    client.close();
  }
});

Deno.test("http1: pooled connection lost, fresh connect refused: a POST fails (502), a GET may go elsewhere", async () => {
  for (const method of ["POST", "GET"]) {
    // The upstream dies while the request is on its pooled connection: nothing listens any
    // more, and the connection closes after the request was read.
    const server: ReturnType<typeof rawServer> = rawServer((i) => {
      if (i === 0) return ok(i);
      server.stopListening();
      return null;
    });
    const client = createHttp1Client(server.port);
    try {
      assertEquals(await ask(client, "GET"), "0");
      const body = method === "POST" ? encoder.encode("x") : null;
      const failed = await ask(client, method, method === "POST" ? POST : [], body);
      assert(failed instanceof Error, `${method} answered: ${failed}`);
      if (method === "POST") {
        // The bug of issue 13: this was "not delivered", and the dispatcher ran it again.
        assert(!(failed instanceof NotDeliveredError), `POST may not go elsewhere: ${failed}`);
      } else {
        assert(failed instanceof NotDeliveredError, `GET: ${failed}`);
        assertEquals(failed.written, true);
      }
      assertEquals(server.heads.length, 2, method);
    } finally {
      client.close();
      await server.close();
    }
  }
});

Deno.test("http1: a pooled connection idle for idleTimeout is closed, not sooner, and each reuse restarts its idle time", async () => {
  const server = rawServer(ok);
  const clock = createFakeClock();
  // Idle connections are swept every eighth of idleTimeout: closed within 8000 + 1000 ms.
  const client = createHttp1Client(server.port, {
    idleTimeout: 8000,
    deadlines: createDeadlines(clock),
  });
  try {
    assertEquals(await ask(client, "GET"), "0");
    // Just before a sweep: the next sweep must not count as a whole step of idleness.
    await clock.advance(5999);
    assertEquals(await ask(client, "GET"), "1");
    // Idle 7999 ms since its last answer (13998 ms since it opened): still pooled, reused.
    await clock.advance(7999);
    assertEquals(await ask(client, "GET"), "2");
    assertEquals(server.accepted, 1, "the pooled connection was closed before idleTimeout");
    assertEquals(server.open, 1);
    await clock.advance(8000 + 1000 + 20);
    await waitFor("the idle connection to close", () => server.open === 0, 3000);
    assertEquals(clock.pending, 0, "the sweep stops with the pool empty");
  } finally {
    client.close();
    await server.close();
  }
});
