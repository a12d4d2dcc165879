// The HTTP/1.1 server and client over a Unix socket (how f2s dev's dispatcher reaches its
// fizzlets): the same exchanges as over TCP, bodies small and streamed,
// and the forwarder using the socket instead of the instance's port once told to.

import { createHttp1Client } from "../../common/http1.ts";
import { serveHttp1, type ServerRequest } from "../../common/http1_server.ts";
import { createForwarder } from "../../dispatcher/forward.ts";
import { freePort } from "../../common/self.ts";
import { assert, assertEquals } from "../harness/assert.ts";

const encoder = new TextEncoder();

/** A server on a fresh socket that answers with what it got: method, length, peer. */
async function echoOnSocket() {
  const dir = await Deno.makeTempDir({ prefix: "f2s-unix-test-" });
  const path = `${dir}/s.sock`;
  const server = serveHttp1({ hostname: "", port: 0, path }, async (req: ServerRequest) => {
    const body = req.body instanceof ReadableStream
      ? new Uint8Array(await new Response(req.body).arrayBuffer())
      : req.body ?? new Uint8Array();
    const text = JSON.stringify({
      method: req.method,
      target: req.target,
      length: body.length,
      last: body[body.length - 1] ?? null,
      peer: req.remoteAddress,
    });
    return {
      status: 200,
      headers: [["content-type", "application/json"]],
      body: encoder.encode(text),
    };
  });
  return {
    path,
    async close() {
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function text(body: ReadableStream<Uint8Array> | Uint8Array | null): Promise<string> {
  if (body === null) return "";
  if (body instanceof Uint8Array) return new TextDecoder().decode(body);
  return await new Response(body).text();
}

Deno.test("http1 over a Unix socket: small bodies on a kept-alive connection, a streamed one", async () => {
  const server = await echoOnSocket();
  const client = createHttp1Client(0, { path: server.path });
  try {
    for (let i = 0; i < 3; i++) {
      const res = await client.request({
        method: "POST",
        target: `/small?i=${i}`,
        headers: [["host", "fizzlet"], ["content-length", "5"]],
        body: encoder.encode("hello"),
        signal: new AbortController().signal,
      });
      assertEquals(res.status, 200);
      assertEquals(JSON.parse(await text(res.body)), {
        method: "POST",
        target: `/small?i=${i}`,
        length: 5,
        last: 111,
        peer: "127.0.0.1",
      });
    }
    // No length: chunked, through the streaming transport (node:net on the same socket).
    const size = 3 * 1024 * 1024 + 7;
    let sent = 0;
    const upload = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= size) return controller.close();
        const n = Math.min(64 * 1024, size - sent);
        const chunk = new Uint8Array(n).fill(7);
        sent += n;
        controller.enqueue(chunk);
      },
    });
    const res = await client.request({
      method: "PUT",
      target: "/big",
      headers: [["host", "fizzlet"]],
      body: upload,
      signal: new AbortController().signal,
    });
    assertEquals(JSON.parse(await text(res.body)).length, size);
  } finally {
    client.close();
    await server.close();
  }
});

Deno.test("forwarder: after viaSocket an instance is reached through its socket, not its port", async () => {
  const server = await echoOnSocket();
  const forwarder = createForwarder();
  // Nothing listens on this port: only the socket can answer.
  const base = `http://127.0.0.1:${freePort()}`;
  const req: ServerRequest = {
    method: "GET",
    target: "/x",
    headers: [["host", "f2s.local"]],
    body: null,
    remoteAddress: "10.1.2.3",
    watchClient: () => () => {},
  };
  const options = { requestId: "r-1", exchange: new AbortController(), httpTimeout: 5000 };
  try {
    let refused = false;
    try {
      await forwarder.forward(base, "/x", req, null, options);
    } catch {
      refused = true;
    }
    assert(refused, "the port alone must not answer");
    forwarder.viaSocket(base, server.path);
    const res = await forwarder.forward(base, "/x?via=socket", req, null, {
      ...options,
      exchange: new AbortController(),
    });
    assertEquals(res.status, 200);
    assertEquals(JSON.parse(await text(res.body)).target, "/x?via=socket");
  } finally {
    forwarder.close();
    await server.close();
  }
});
