/**
 * The HTTP/1.1 wire format both of F2S's own HTTP halves read: a connection's bytes with a
 * buffer in front of them, heads found in that buffer, and bodies framed by length, by
 * chunks or by the end of the connection. common/http1.ts (the client) reads answers with
 * it, common/http1_server.ts (the server) reads requests.
 */

/** Most a head (request or status line plus headers) may take. */
export const MAX_HEAD = 64 * 1024;
/** Largest read of body bytes handed on as one chunk. */
export const READ_SIZE = 64 * 1024;

export const latin1 = new TextDecoder("latin1");

/** A malformed or broken message: the connection it came on cannot be used further. */
export class WireError extends Error {}

/** One connection's read side: the transport's read and the buffered bytes not yet used. */
export interface WireReader {
  read(buf: Uint8Array): Promise<number | null>;
  buf: Uint8Array<ArrayBuffer>;
  /** Buffered bytes not yet consumed are buf[start, end). */
  start: number;
  end: number;
  /**
   * A read started ahead of need (a pooled or keep-alive connection waiting for its next
   * message: it notices at once when the peer closes). The next read of more bytes
   * awaits it instead of starting one.
   */
  pending?: Promise<number | null>;
}

/**
 * Starts reading more bytes into the buffer (making room first) and returns the read: the
 * one started ahead, or a new one. Not async, so the hot path awaits the read itself
 * rather than a wrapper around it.
 */
export function readMore(r: WireReader): Promise<number | null> {
  if (r.pending) {
    const pending = r.pending;
    r.pending = undefined;
    return pending;
  }
  if (r.start === r.end) r.start = r.end = 0;
  if (r.end === r.buf.length) {
    const live = r.end - r.start;
    const size = live * 2 > r.buf.length ? r.buf.length * 2 : r.buf.length;
    const next = new Uint8Array(size);
    next.set(r.buf.subarray(r.start, r.end));
    r.buf = next;
    r.start = 0;
    r.end = live;
  }
  return r.read(r.buf.subarray(r.end));
}

/** Reads more bytes into the buffer; false at the end of the stream. */
export async function fill(r: WireReader): Promise<boolean> {
  const n = await readMore(r);
  if (n === null) return false;
  r.end += n;
  return true;
}

/** Where the blank line ending a head starts in buf[from, to), or -1. */
export function indexOfHeadEnd(buf: Uint8Array, from: number, to: number): number {
  // TypedArray.indexOf runs natively: far quicker than comparing byte by byte in JS.
  for (let i = buf.indexOf(13, from); i >= 0 && i + 3 < to; i = buf.indexOf(13, i + 1)) {
    if (buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) return i;
  }
  return -1;
}

/**
 * The next head as text (without its blank line), reading as needed; null when the stream
 * ends before a head starts. Throws a WireError past MAX_HEAD or when the stream ends
 * inside a head.
 */
export async function readHeadText(r: WireReader): Promise<string | null> {
  let scanned = r.start;
  for (;;) {
    const at = indexOfHeadEnd(r.buf, Math.max(r.start, scanned - 3), r.end);
    if (at - r.start > MAX_HEAD) throw new WireError("head too large");
    if (at >= 0) {
      const text = latin1.decode(r.buf.subarray(r.start, at));
      r.start = at + 4;
      return text;
    }
    scanned = r.end;
    if (r.end - r.start > MAX_HEAD) throw new WireError("head too large");
    const n = await readMore(r);
    if (n === null) {
      if (r.end === r.start) return null;
      throw new WireError("connection closed mid-head");
    }
    r.end += n;
  }
}

/** Reads one line (without CRLF), for chunked framing. */
export async function readLine(r: WireReader): Promise<string> {
  for (;;) {
    const at = r.buf.indexOf(10, r.start);
    if (at > r.start && at < r.end && r.buf[at - 1] === 13) {
      const line = latin1.decode(r.buf.subarray(r.start, at - 1));
      r.start = at + 1;
      return line;
    }
    if (r.end - r.start > MAX_HEAD) throw new WireError("chunk line too long");
    if (!(await fill(r))) throw new WireError("connection closed mid-body");
  }
}

/** Takes up to `max` buffered bytes (reading if none are buffered); null at end of stream. */
export async function take(r: WireReader, max: number): Promise<Uint8Array | null> {
  if (r.pending && !(await fill(r))) return null;
  if (r.start === r.end) {
    // Read straight into a fresh buffer: it is handed on, so it cannot be reused anyway.
    const chunk = new Uint8Array(Math.min(max, READ_SIZE));
    const n = await r.read(chunk);
    return n === null ? null : chunk.subarray(0, n);
  }
  const n = Math.min(max, r.end - r.start);
  const chunk = r.buf.slice(r.start, r.start + n);
  r.start += n;
  return chunk;
}

/** Exactly `length` bytes (a body already known to be small), or a WireError. */
export async function takeExactly(r: WireReader, length: number): Promise<Uint8Array<ArrayBuffer>> {
  if (!r.pending && r.end - r.start >= length) {
    // The usual case: the whole body came with its head.
    const body = r.buf.slice(r.start, r.start + length);
    r.start += length;
    return body;
  }
  const body = new Uint8Array(length);
  let got = 0;
  while (got < length) {
    const chunk = await take(r, length - got);
    if (chunk === null) throw new WireError("connection closed mid-body");
    body.set(chunk, got);
    got += chunk.length;
  }
  return body;
}

/** How a body is delimited: chunks, a length, or (neither) the end of the connection. */
export interface Framing {
  chunked: boolean;
  length: number | undefined;
}

export interface BodyHooks {
  /** Before the first read (the server sends `100 Continue` here when asked to). */
  start?(): Promise<void>;
  /** The whole body was read; the connection may carry the next message. */
  end(): void;
  /** The body broke off or its reader cancelled it: the connection cannot be reused. */
  abort(): void;
}

/** The body as a stream, read from the connection only as fast as it is consumed. */
export function bodyStream(
  r: WireReader,
  framing: Framing,
  hooks: BodyHooks,
): ReadableStream<Uint8Array> {
  let remaining = framing.length ?? Infinity;
  let chunkLeft = 0;
  let started = hooks.start === undefined;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        if (!started) {
          started = true;
          await hooks.start!();
        }
        if (framing.chunked) {
          if (chunkLeft === 0) {
            const line = (await readLine(r)).split(";")[0].trim();
            const size = /^[0-9a-fA-F]{1,15}$/.test(line) ? parseInt(line, 16) : NaN;
            if (!Number.isFinite(size)) {
              throw new WireError(`bad chunk size "${line.slice(0, 40)}"`);
            }
            if (size === 0) {
              while ((await readLine(r)) !== ""); // trailers, ignored
              controller.close();
              hooks.end();
              return;
            }
            chunkLeft = size;
          }
          const chunk = await take(r, chunkLeft);
          if (chunk === null) throw new WireError("connection closed mid-body");
          chunkLeft -= chunk.length;
          if (chunkLeft === 0 && (await readLine(r)) !== "") {
            throw new WireError("chunk longer than its size");
          }
          controller.enqueue(chunk);
          return;
        }
        if (remaining === 0) {
          controller.close();
          hooks.end();
          return;
        }
        const chunk = await take(r, Math.min(remaining, READ_SIZE));
        if (chunk === null) {
          if (remaining !== Infinity) throw new WireError("connection closed mid-body");
          controller.close();
          hooks.end();
          return;
        }
        remaining -= chunk.length;
        controller.enqueue(chunk);
        if (remaining === 0) {
          controller.close();
          hooks.end();
        }
      } catch (e) {
        hooks.abort();
        controller.error(e);
      }
    },
    cancel() {
      // The reader went away: drop the connection rather than reading the rest.
      hooks.abort();
    },
  }, { highWaterMark: 0 });
}

/**
 * Encodes a head into `out` as Latin-1 (header values are bytes, which Latin-1 text maps
 * one to one), growing it when needed; returns the buffer used and the length written.
 */
export function encodeHead(
  head: string,
  out: Uint8Array,
  extra = 0,
): { buf: Uint8Array; written: number } {
  if (out.length < head.length * 3 + extra) out = new Uint8Array(head.length * 3 + extra);
  const { read, written } = encoder.encodeInto(head, out);
  if (read === written) return { buf: out, written }; // pure ASCII, the usual case
  for (let i = 0; i < head.length; i++) out[i] = head.charCodeAt(i) & 0xff;
  return { buf: out, written: head.length };
}

const encoder = new TextEncoder();

/** The last chunk of a chunked body, with no trailers. */
export const LAST_CHUNK = encoder.encode("0\r\n\r\n");

/** One chunk of a chunked body: its size, the data, CRLF. */
export function chunkFrame(data: Uint8Array): Uint8Array {
  const size = encoder.encode(data.length.toString(16) + "\r\n");
  const frame = new Uint8Array(size.length + data.length + 2);
  frame.set(size);
  frame.set(data, size.length);
  frame[frame.length - 2] = 13;
  frame[frame.length - 1] = 10;
  return frame;
}
