/**
 * A measuring stick for the benches, not part of F2S: the least an HTTP/1.1 reverse proxy
 * written in TypeScript on this Deno costs per request. One async loop per client
 * connection reads a head, sends it on over a pooled keep-alive connection with one
 * header added, reads the answer (Content-Length bodies only) and writes it back. It has
 * none of F2S's guarantees: no timeouts, limits, header policy, request smuggling checks,
 * streaming, retries or metrics. Its ratio to nginx in the same run says how much of a
 * gap between F2S and nginx is Deno's I/O and a minimal parse, and how much is F2S's code.
 *
 *   deno run -A bench/deno_floor.ts LISTEN_PORT UPSTREAM_PORT
 */

const [listenPort, upstreamPort] = Deno.args.map(Number);
const latin1 = new TextDecoder("latin1");
const encoder = new TextEncoder();
const pool: Deno.Conn[] = [];

interface Message {
  start: string;
  headers: [string, string][];
  body: Uint8Array;
  /** The peer said `Connection: close`. */
  close: boolean;
}

function headEnd(buf: Uint8Array, to: number): number {
  for (let i = buf.indexOf(13); i >= 0 && i + 3 < to; i = buf.indexOf(13, i + 1)) {
    if (buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) return i;
  }
  return -1;
}

/** One message with a Content-Length body (or none), or null when the peer closed. */
async function readMessage(conn: Deno.Conn, buf: Uint8Array): Promise<Message | null> {
  let end = 0;
  for (;;) {
    const n = await conn.read(buf.subarray(end));
    if (n === null) return null;
    end += n;
    const at = headEnd(buf, end);
    if (at < 0) continue;
    const lines = latin1.decode(buf.subarray(0, at)).split("\r\n");
    const headers: [string, string][] = [];
    let length = 0;
    let close = false;
    for (let i = 1; i < lines.length; i++) {
      const colon = lines[i].indexOf(":");
      const name = lines[i].slice(0, colon).toLowerCase();
      const value = lines[i].slice(colon + 1).trim();
      if (name === "content-length") length = Number(value);
      else if (name === "transfer-encoding") throw new Error("chunked bodies are not measured");
      else if (name === "connection") close = value.toLowerCase().includes("close");
      else if (name !== "keep-alive") headers.push([name, value]);
    }
    const bodyStart = at + 4;
    while (end - bodyStart < length) {
      const m = await conn.read(buf.subarray(end));
      if (m === null) return null;
      end += m;
    }
    return { start: lines[0], headers, body: buf.slice(bodyStart, bodyStart + length), close };
  }
}

function encode(message: Message, extra: string): Uint8Array {
  let head = message.start + "\r\n";
  for (const [name, value] of message.headers) head += `${name}: ${value}\r\n`;
  head += `${extra}content-length: ${message.body.length}\r\n\r\n`;
  const out = new Uint8Array(head.length * 3 + message.body.length);
  const { written } = encoder.encodeInto(head, out);
  out.set(message.body, written);
  return out.subarray(0, written + message.body.length);
}

async function connectUpstream(): Promise<Deno.Conn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: upstreamPort });
  conn.setNoDelay(true);
  return conn;
}

async function serve(client: Deno.Conn): Promise<void> {
  const buf = new Uint8Array(64 * 1024);
  const upstreamBuf = new Uint8Array(64 * 1024);
  try {
    for (;;) {
      const request = await readMessage(client, buf);
      if (!request) break;
      const bytes = encode(request, "x-forwarded-for: 127.0.0.1\r\n");
      let upstream = pool.pop();
      let answer: Message | null = null;
      if (upstream) {
        // A pooled connection the upstream has closed meanwhile: once more on a fresh one.
        answer = await upstream.write(bytes).then(() => readMessage(upstream!, upstreamBuf))
          .catch(() => null);
        if (!answer) upstream.close();
      }
      if (!answer) {
        upstream = await connectUpstream();
        await upstream.write(bytes);
        answer = await readMessage(upstream, upstreamBuf);
        if (!answer) break;
      }
      if (answer.close) upstream!.close();
      else pool.push(upstream!);
      await client.write(encode(answer, ""));
    }
  } catch {
    // A broken connection ends this client's loop; the measuring stick does not recover.
  }
  client.close();
}

const listener = Deno.listen({ hostname: "127.0.0.1", port: listenPort });
for await (const client of listener) {
  client.setNoDelay(true);
  serve(client);
}
