/**
 * A raw TCP upstream for tests of F2S's HTTP/1.1 client hops (tests/common/http1_test.ts,
 * tests/fizzlet/delivery_test.ts): it answers with hand-written bytes, in odd shapes, torn
 * into pieces, or not at all, which no real server library would send on request.
 */

const encoder = new TextEncoder();
/** One character per byte, so Content-Length counts match. */
const latin1 = new TextDecoder("latin1");

/**
 * A TCP server that reads one request per exchange (its head, and a Content-Length body)
 * and answers with `answer(i, head)`, written in `pieces` parts with a pause between (to
 * tear heads and bodies across reads); `null` closes the connection unanswered.
 */
export function rawServer(
  answer: (i: number, head: string) => string | null,
  pieces = 1,
) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const heads: string[] = [];
  const conns = new Set<Deno.Conn>();
  let count = 0;
  let accepted = 0;
  const accepting = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      accepted++;
      (async () => {
        const buf = new Uint8Array(64 * 1024);
        let pending = "";
        try {
          while (true) {
            const n = await conn.read(buf);
            if (n === null) break;
            pending += latin1.decode(buf.subarray(0, n));
            let end;
            while ((end = pending.indexOf("\r\n\r\n")) >= 0) {
              const head = pending.slice(0, end);
              const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
              if (pending.length < end + 4 + length) break; // the body is still coming
              pending = pending.slice(end + 4 + length);
              heads.push(head);
              const text = answer(count++, head);
              if (text === null) {
                conn.close();
                return;
              }
              const bytes = encoder.encode(text);
              const size = Math.ceil(bytes.length / pieces);
              for (let at = 0; at < bytes.length; at += size) {
                await conn.write(bytes.subarray(at, at + size));
                if (pieces > 1) await new Promise((r) => setTimeout(r, 5));
              }
            }
          }
        } catch {
          // closed by the test
        } finally {
          conns.delete(conn);
          try {
            conn.close();
          } catch {
            // already closed
          }
        }
      })();
    }
  })();
  let listening = true;
  const stopListening = () => {
    if (listening) listener.close();
    listening = false;
  };
  return {
    port: (listener.addr as Deno.NetAddr).port,
    heads,
    /** Connections accepted so far. */
    get accepted() {
      return accepted;
    },
    /** Connections open now (one closed by its client leaves once the server reads its end). */
    get open() {
      return conns.size;
    },
    /** Closes the listening socket (new connections are refused), keeping open ones. */
    stopListening,
    async close() {
      stopListening();
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // already closed
        }
      }
      await accepting.catch(() => {});
    },
  };
}
