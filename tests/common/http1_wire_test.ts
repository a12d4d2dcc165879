// The wire format's head reading over a connection whose bytes arrive in reads that fill the
// buffer: a head must be found wherever the buffer has moved its unread bytes.

import { readHeadText, type WireReader } from "../../common/http1_wire.ts";
import { newHeadScan, scanRequestHead } from "../../common/http1_request.ts";
import { readMore } from "../../common/http1_wire.ts";
import { assertEquals } from "../harness/assert.ts";

/** A reader over `text` whose reads take as much as fits (a loopback socket with it all sent). */
function readerOver(text: string, size: number): WireReader {
  const bytes = new TextEncoder().encode(text);
  let at = 0;
  return {
    buf: new Uint8Array(size),
    start: 0,
    end: 0,
    read(into) {
      if (at === bytes.length) return Promise.resolve(null);
      const n = Math.min(into.length, bytes.length - at);
      into.set(bytes.subarray(at, at + n));
      at += n;
      return Promise.resolve(n);
    },
  };
}

Deno.test("wire: a head that outgrows the buffer after an earlier one is found (answers)", async () => {
  // The first read fills the 64-byte buffer: the 100 Continue and most of the final head.
  // Growing the buffer moves the unread bytes to its start; the final head's end, 3 bytes
  // into the next read, must be searched there (it was skipped: the client hung).
  const interim = "HTTP/1.1 100 Continue\r\n\r\n";
  const prefix = "HTTP/1.1 200 OK\r\nx-pad: ";
  const pad = "p".repeat(64 + 3 - interim.length - prefix.length);
  const r = readerOver(interim + prefix + pad + "\r\n\r\n", 64);
  assertEquals(await readHeadText(r), "HTTP/1.1 100 Continue");
  assertEquals(await readHeadText(r), prefix + pad);
  assertEquals(await readHeadText(r), null);
});

Deno.test("wire: a request head that outgrows the buffer after an earlier one is found", async () => {
  const first = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
  const prefix = "GET /b HTTP/1.1\r\nHost: x\r\nx-pad: ";
  const pad = "p".repeat(64 + 3 - first.length - prefix.length);
  const r = readerOver(first + prefix + pad + "\r\n\r\n", 64);
  const heads: string[] = [];
  const scan = newHeadScan();
  for (;;) {
    const text = scanRequestHead(r, scan);
    if (text !== undefined) {
      heads.push(text);
      continue;
    }
    const n = await readMore(r);
    if (n === null) break;
    r.end += n;
  }
  assertEquals(heads, ["GET /a HTTP/1.1\r\nHost: x", prefix + pad]);
});
