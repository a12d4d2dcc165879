// What keeps F2S's HTTP/1.1 server answering under descriptor pressure: the connection
// cap (503 and close beyond it) and an accept loop that backs off on accept errors
// (EMFILE) instead of ending; and the head encoder refusing what would split a head.

import { serveHttp1 } from "../../common/http1_server.ts";
import { encodeHead, HeadError } from "../../common/http1_wire.ts";
import { assert, assertEquals, assertThrows } from "../harness/assert.ts";
import { closeQuietly, readToEnd } from "../harness/raw_client.ts";

const FIXTURE = new URL("./fixtures/plain_server.ts", import.meta.url).pathname;
const encoder = new TextEncoder();

/** One GET on a fresh connection; the whole answer as text ("" when closed at once). */
async function get(port: number, timeoutMs = 5000): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const timer = setTimeout(() => conn.close(), timeoutMs);
  try {
    await conn.write(encoder.encode("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"));
    return await readToEnd(conn);
  } finally {
    clearTimeout(timer);
    closeQuietly(conn);
  }
}

Deno.test("server: beyond maxConnections a new connection gets 503 and is closed", async () => {
  const server = serveHttp1(
    { hostname: "127.0.0.1", port: 0, maxConnections: 2 },
    () => ({ status: 200, headers: [], body: encoder.encode("ok") }),
  );
  const port = server.addr.port;
  const held = [
    await Deno.connect({ hostname: "127.0.0.1", port }),
    await Deno.connect({ hostname: "127.0.0.1", port }),
  ];
  try {
    await new Promise((r) => setTimeout(r, 100));
    const over = await get(port);
    assert(over.startsWith("HTTP/1.1 503 "), `expected 503, got ${over.slice(0, 60)}`);
    assert(/retry-after: 1/i.test(over), over);
    for (const c of held) c.close();
    held.length = 0;
    await new Promise((r) => setTimeout(r, 100));
    const again = await get(port);
    assert(
      again.startsWith("HTTP/1.1 200 "),
      `expected 200 below the cap, got ${again.slice(0, 60)}`,
    );
  } finally {
    for (const c of held) c.close();
    await server.shutdown();
  }
});

Deno.test("server: out of descriptors, the accept loop backs off and keeps serving", async () => {
  // No cap to protect it: ulimit -n 64 and 150 connections run accept() into EMFILE.
  const child = new Deno.Command("bash", {
    args: ["-c", `ulimit -n 64; exec "${Deno.execPath()}" run -A "${FIXTURE}" 100000`],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const conns: Deno.TcpConn[] = [];
  let stderr = "";
  const errReading = (async () => {
    for await (const t of child.stderr.pipeThrough(new TextDecoderStream())) stderr += t;
  })();
  try {
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const { value } = await reader.read();
    const port = JSON.parse(value!).port as number;
    for (let i = 0; i < 150; i++) {
      try {
        conns.push(await Deno.connect({ hostname: "127.0.0.1", port }));
      } catch {
        break; // the backlog is full: enough pressure
      }
    }
    await new Promise((r) => setTimeout(r, 500));
    for (const c of conns.splice(0)) c.close();
    const started = Date.now();
    let answer = "";
    while (!answer.startsWith("HTTP/1.1 200") && Date.now() - started < 5000) {
      answer = await get(port, 5000 - (Date.now() - started)).catch(() => "");
    }
    assert(answer.startsWith("HTTP/1.1 200"), `no answer within 5 s after exhaustion:\n${stderr}`);
    assert(stderr.includes("accept failed; backing off"), `no accept error logged:\n${stderr}`);
    const bursts = stderr.split("\n").filter((l) => l.includes("accept failed")).length;
    assert(bursts <= 2, `accept errors logged ${bursts} times, not once per burst`);
    reader.releaseLock();
  } finally {
    for (const c of conns) c.close();
    try {
      child.kill("SIGKILL");
    } catch {
      // It exited: the assertions above say why.
    }
    await child.status;
    await errReading;
    await child.stdout.cancel().catch(() => {});
  }
});

Deno.test("encodeHead refuses CR, LF, NUL and characters above U+00FF; Latin-1 passes as bytes", () => {
  const out = new Uint8Array(64);
  for (
    const value of ["a\r\nX-F2S-Group: admins", "a\nb", "a\rb", "a\0b", "Černý", "a\u010d\u010ab"]
  ) {
    assertThrows(() => encodeHead("GET / HTTP/1.1", [["x-a", value]], "", out), HeadError);
  }
  assertThrows(() => encodeHead("GET / HTTP/1.1", [["x a", "v"]], "", out), HeadError);
  assertThrows(() => encodeHead("GET / HTTP/1.1", [["x:a", "v"]], "", out), HeadError);
  assertThrows(() => encodeHead("GET /\r\nX: y HTTP/1.1", [], "", out), HeadError);
  const { buf, written } = encodeHead("GET / HTTP/1.1", [["x-a", "caf\xe9\x9b"]], "", out);
  assertEquals(
    [...buf.subarray(0, written)],
    [..."GET / HTTP/1.1\r\nx-a: caf\xe9\x9b\r\n\r\n"].map((c) => c.charCodeAt(0)),
  );
});

Deno.test("server: an answer sent before the upload ends still reaches a client that finishes uploading", async () => {
  // The handler answers without reading the 8 MiB body. Closing with the body unread would
  // make the kernel reset the connection, failing the client's upload and losing the answer;
  // lingering (as nginx does) drains the rest, then closes.
  const server = serveHttp1(
    { hostname: "127.0.0.1", port: 0 },
    () => ({ status: 413, headers: [], body: encoder.encode("too big for me") }),
  );
  const total = 8 * 1024 * 1024;
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
  try {
    await conn.write(
      encoder.encode(`POST / HTTP/1.1\r\nHost: h\r\nContent-Length: ${total}\r\n\r\n`),
    );
    // Let the answer go out and the server finish with the request before the rest arrives.
    await new Promise((r) => setTimeout(r, 200));
    const chunk = new Uint8Array(256 * 1024);
    for (let sent = 0; sent < total; sent += chunk.length) {
      let off = 0;
      while (off < chunk.length) off += await conn.write(chunk.subarray(off));
    }
    let text = "";
    const buf = new Uint8Array(4096);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    assert(text.startsWith("HTTP/1.1 413 "), `got ${text.slice(0, 60)}`);
    assert(text.endsWith("too big for me"), text);
    assert(/connection: close/i.test(text), text);
  } finally {
    conn.close();
    await server.shutdown();
  }
});
