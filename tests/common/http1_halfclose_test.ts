// A chunked request whose bytes come in several writes, the client then half-closing (as
// the wire property test does): a complete request is still answered (as nginx does), an
// incomplete one closes the connection, and in both cases shutdown finishes promptly. The
// body stream used to stall when the first chunk's size line came without its data.

import { serveHttp1 } from "../../common/http1_server.ts";
import { assert, assertEquals } from "../harness/assert.ts";
import { closeQuietly, readToEnd } from "../harness/raw_client.ts";

const encoder = new TextEncoder();
const HEAD = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
const BODY = "5\r\nhello\r\n0\r\n\r\n";

/** Serves an echo of the body read whole (500 when reading it fails). */
function echoServer() {
  return serveHttp1({ hostname: "127.0.0.1", port: 0 }, async (req) => {
    let text = "";
    if (req.body instanceof ReadableStream) text = await new Response(req.body).text();
    else if (req.body) text = new TextDecoder().decode(req.body);
    return { status: 200, headers: [], body: encoder.encode(`got:${text}`) };
  });
}

/**
 * Sends `parts` as separate writes (a pause between them so they arrive apart), half-closes,
 * then reads until the server closes or 5 s pass; the answer as text and whether it ended.
 */
async function exchange(port: number, parts: string[]): Promise<{ text: string; ended: boolean }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    conn.close();
  }, 5000);
  try {
    for (const [i, part] of parts.entries()) {
      if (i > 0) await new Promise((r) => setTimeout(r, 60));
      await conn.write(encoder.encode(part));
    }
    await conn.closeWrite();
    const text = await readToEnd(conn);
    return { text, ended: !timedOut };
  } finally {
    clearTimeout(timer);
    closeQuietly(conn);
  }
}

/** Fails unless the server shuts down within 2 s. */
async function shutdownPromptly(server: ReturnType<typeof serveHttp1>, label: string) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((r) => timer = setTimeout(() => r("late"), 2000));
  try {
    const result = await Promise.race([server.shutdown().then(() => "done" as const), late]);
    assertEquals(result, "done", `${label}: shutdown did not finish within 2 s`);
  } finally {
    clearTimeout(timer);
  }
}

const complete: [string, string[]][] = [
  ["inside the head", [HEAD.slice(0, 20), HEAD.slice(20) + BODY]],
  ["after the head", [HEAD, BODY]],
  ["after the chunk size", [HEAD + "5\r\n", "hello\r\n0\r\n\r\n"]],
  ["inside the data", [HEAD + "5\r\nhe", "llo\r\n0\r\n\r\n"]],
  ["before the last chunk", [HEAD + "5\r\nhello\r\n", "0\r\n\r\n"]],
  ["everywhere", [HEAD.slice(0, 30), HEAD.slice(30) + "5\r\n", "hel", "lo\r\n", "0\r\n", "\r\n"]],
];

for (const [label, parts] of complete) {
  Deno.test(`server: a complete chunked request split ${label}, then half-closed, is answered`, async () => {
    const server = echoServer();
    try {
      const { text, ended } = await exchange(server.addr.port, parts);
      assert(ended, `${label}: no answer within 5 s (got ${JSON.stringify(text)})`);
      assert(text.startsWith("HTTP/1.1 200 "), `${label}: ${JSON.stringify(text)}`);
      assert(text.endsWith("\r\n\r\ngot:hello"), `${label}: ${JSON.stringify(text)}`);
    } finally {
      await shutdownPromptly(server, label);
    }
  });
}

const incomplete: [string, string[]][] = [
  ["inside the head", [HEAD.slice(0, 20), HEAD.slice(20, 40)]],
  ["after the head", [HEAD]],
  ["after the chunk size", [HEAD, "5\r\n"]],
  ["inside the data", [HEAD + "5\r\n", "he"]],
  ["before the last chunk", [HEAD + "5\r\n", "hello\r\n"]],
  ["inside the trailers", [HEAD + "5\r\nhello\r\n", "0\r\nx-t: 1\r\n"]],
];

for (const [label, parts] of incomplete) {
  Deno.test(`server: a chunked request half-closed ${label} closes the connection`, async () => {
    const server = echoServer();
    try {
      const { text, ended } = await exchange(server.addr.port, parts);
      assert(ended, `${label}: connection still open after 5 s (got ${JSON.stringify(text)})`);
      // No one is left to read an answer; if one is sent it must be a refusal, never the echo.
      assert(
        text === "" || text.startsWith("HTTP/1.1 400 "),
        `${label}: expected a close or 400, got ${JSON.stringify(text)}`,
      );
    } finally {
      await shutdownPromptly(server, label);
    }
  });
}
