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

/**
 * WHATWG's "latin1" decoder is windows-1252: it maps bytes 0x80-0x9F to other characters
 * (0x9B becomes U+203A), which would not round-trip. Heads are decoded with it (fast,
 * native) and, only when such a byte occurred, again byte for byte.
 */
const win1252 = new TextDecoder("latin1");
const NOT_LATIN1 = /[\u0100-\uffff]/;

/** Bytes as text, one character per byte (ISO-8859-1): encodeHead writes them back unchanged. */
export function decodeLatin1(bytes: Uint8Array): string {
  const text = win1252.decode(bytes);
  if (!NOT_LATIN1.test(text)) return text;
  let exact = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    exact += String.fromCharCode(...bytes.subarray(i, i + 4096));
  }
  return exact;
}

/** A header name: an RFC 9110 token. */
export const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** A malformed or broken message: the connection it came on cannot be used further. */
export class WireError extends Error {}

/** The peer ended the stream in the middle of a message. */
export class ConnectionClosed extends WireError {}

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
  // Bytes past r.start already searched: relative, as readMore may move the buffered bytes.
  let seen = 0;
  for (;;) {
    const at = indexOfHeadEnd(r.buf, r.start + Math.max(0, seen - 3), r.end);
    if (at - r.start > MAX_HEAD) throw new WireError("head too large");
    if (at >= 0) {
      const text = decodeLatin1(r.buf.subarray(r.start, at));
      r.start = at + 4;
      return text;
    }
    seen = r.end - r.start;
    if (r.end - r.start > MAX_HEAD) throw new WireError("head too large");
    const n = await readMore(r);
    if (n === null) {
      if (r.end === r.start) return null;
      throw new ConnectionClosed("connection closed mid-head");
    }
    r.end += n;
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
    if (chunk === null) throw new ConnectionClosed("connection closed mid-body");
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
  /**
   * The body broke off (`error`: malformed, or ConnectionClosed) or its reader cancelled
   * it (no error): the connection cannot be reused.
   */
  abort(error?: unknown): void;
}

/** Where the decoding of a chunked body stands (RFC 9112 section 7.1). */
export interface ChunkState {
  /** Data bytes still due in the current chunk. */
  left: number;
  /** The CRLF after a chunk's data is due. */
  crlf: boolean;
  /** Chunk-size lines read so far. */
  sizes: number;
  /** Past the last chunk: trailer lines until an empty one. */
  trailers: boolean;
  trailerBytes: number;
  done: boolean;
}

export function newChunkState(): ChunkState {
  return { left: 0, crlf: false, sizes: 0, trailers: false, trailerBytes: 0, done: false };
}

/** Longest chunk-size line, extensions included. */
const MAX_CHUNK_LINE = 4096;
const EXT_TOKEN = TOKEN.source.slice(1, -1);
const EXT_QUOTED =
  '"(?:[\\t \\x21\\x23-\\x5b\\x5d-\\x7e\\x80-\\xff]|\\\\[\\t \\x21-\\x7e\\x80-\\xff])*"';
/**
 * chunk-size [ chunk-ext ]: hex digits only (no sign, no "0x", no blank before them) and
 * extensions as the grammar has them; at most 16 digits (the size must also be a safe
 * integer), so a size cannot overflow into a small one.
 */
const CHUNK_LINE = new RegExp(
  `^([0-9A-Fa-f]{1,16})((?:;${EXT_TOKEN}(?:=(?:${EXT_TOKEN}|${EXT_QUOTED}))?)*)$`,
);
const TRAILER_LINE = new RegExp(`^${EXT_TOKEN}:[\\t \\x21-\\x7e\\x80-\\xff]*$`);

/** A chunk's size from its size line, or a WireError. */
export function chunkSize(line: string): number {
  const m = CHUNK_LINE.exec(line);
  const size = m ? parseInt(m[1], 16) : NaN;
  if (!Number.isSafeInteger(size)) {
    throw new WireError(`bad chunk size line ${JSON.stringify(line.slice(0, 40))}`);
  }
  return size;
}

/**
 * The next line already buffered (without its CRLF), or null when it has not all arrived.
 * A line ending in a bare LF is a WireError: that is where parsers disagree on framing.
 */
function bufferedLine(r: WireReader, max: number): string | null {
  const live = r.buf.subarray(r.start, r.end);
  const at = live.indexOf(10);
  if (at < 0) {
    if (live.length > max) throw new WireError("line too long in chunked body");
    return null;
  }
  if (at === 0 || live[at - 1] !== 13) throw new WireError("bare LF in chunked body");
  if (at - 1 > max) throw new WireError("line too long in chunked body");
  const line = decodeLatin1(live.subarray(0, at - 1));
  r.start += at + 1;
  return line;
}

/**
 * Decodes what is buffered of a chunked body, without reading: data goes to `out` (at most
 * `max` bytes), framing is checked as it goes (WireError when wrong). Returns the data
 * bytes added; `state.done` once the last chunk and trailers are through.
 */
export function decodeChunks(
  r: WireReader,
  state: ChunkState,
  out: Uint8Array[],
  max: number,
): number {
  let total = 0;
  while (!state.done) {
    if (state.left > 0) {
      const n = Math.min(state.left, r.end - r.start, max - total);
      if (n <= 0) break;
      out.push(r.buf.slice(r.start, r.start + n));
      r.start += n;
      state.left -= n;
      total += n;
      if (state.left === 0) state.crlf = true;
      continue;
    }
    if (state.crlf) {
      const live = r.end - r.start;
      if (live > 0 && r.buf[r.start] !== 13) throw new WireError("chunk longer than its size");
      if (live < 2) break;
      if (r.buf[r.start + 1] !== 10) throw new WireError("chunk longer than its size");
      r.start += 2;
      state.crlf = false;
      continue;
    }
    const line = bufferedLine(r, state.trailers ? MAX_HEAD : MAX_CHUNK_LINE);
    if (line === null) break;
    if (state.trailers) {
      if (line === "") {
        state.done = true;
        break;
      }
      state.trailerBytes += line.length + 2;
      if (state.trailerBytes > MAX_HEAD) throw new WireError("trailers too large");
      if (!TRAILER_LINE.test(line)) throw new WireError("malformed trailer line");
      continue;
    }
    const size = chunkSize(line);
    state.sizes++;
    if (size === 0) state.trailers = true;
    else state.left = size;
  }
  return total;
}

/** A chunked body already partly decoded (the server checks its start before a handler runs). */
export interface ChunkedStart {
  state: ChunkState;
  /** Data decoded so far, handed on first. */
  prefix: Uint8Array[];
}

/** The body as a stream, read from the connection only as fast as it is consumed. */
export function bodyStream(
  r: WireReader,
  framing: Framing,
  hooks: BodyHooks,
  resume?: ChunkedStart,
): ReadableStream<Uint8Array> {
  let remaining = framing.length ?? Infinity;
  const chunks = resume?.state ?? newChunkState();
  let prefix = resume?.prefix;
  let started = hooks.start === undefined;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        if (!started) {
          started = true;
          await hooks.start!();
        }
        if (framing.chunked) {
          if (prefix) {
            for (const chunk of prefix) controller.enqueue(chunk);
            const enqueued = prefix.length > 0;
            prefix = undefined;
            // Returning without enqueueing would stall the reader: the stream calls pull
            // again only after a chunk was taken (a size line with no data yet is empty).
            if (enqueued && controller.desiredSize !== null && controller.desiredSize <= 0) {
              return;
            }
          }
          for (;;) {
            if (chunks.left > 0 && r.start === r.end) {
              // Chunk data not buffered yet: read it straight into a buffer of its own.
              const chunk = await take(r, chunks.left);
              if (chunk === null) throw new ConnectionClosed("connection closed mid-body");
              chunks.left -= chunk.length;
              if (chunks.left === 0) chunks.crlf = true;
              controller.enqueue(chunk);
              return;
            }
            const out: Uint8Array[] = [];
            decodeChunks(r, chunks, out, READ_SIZE);
            for (const chunk of out) controller.enqueue(chunk);
            if (chunks.done) {
              controller.close();
              hooks.end();
              return;
            }
            if (out.length > 0) return;
            if (!(await fill(r))) throw new ConnectionClosed("connection closed mid-body");
          }
        }
        if (remaining === 0) {
          controller.close();
          hooks.end();
          return;
        }
        const chunk = await take(r, Math.min(remaining, READ_SIZE));
        if (chunk === null) {
          if (remaining !== Infinity) throw new ConnectionClosed("connection closed mid-body");
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
        hooks.abort(e);
        controller.error(e);
      }
    },
    cancel() {
      // The reader went away: drop the connection rather than reading the rest.
      hooks.abort();
    },
  }, { highWaterMark: 0 });
}

/** A head that cannot be written as it is (see encodeHead): nothing of it was sent. */
export class HeadError extends Error {}

/** What may not stand in a start line or a header value: CR, LF, NUL, or above U+00FF. */
const BAD_HEAD_TEXT = /[\0\r\n\u0100-\uffff]/;

function describe(text: string): string {
  return JSON.stringify(text.length > 60 ? text.slice(0, 60) + "…" : text);
}

/**
 * Encodes a head into `out` as Latin-1 (header values are bytes, which Latin-1 text maps
 * one to one), growing it when needed; returns the buffer used and the length written.
 * `start` is the request or status line, `headers` the pairs to write (except names in
 * `skip`), `own` the writer's own framing lines (each ending in CRLF). A name that is not
 * a token, or a start line or value holding CR, LF, NUL or a character above U+00FF, is a
 * HeadError: such a value would add headers or requests of its own, so nothing is masked.
 */
export function encodeHead(
  start: string,
  headers: readonly (readonly [string, string])[],
  own: string,
  out: Uint8Array,
  extra = 0,
  skip?: ReadonlySet<string>,
): { buf: Uint8Array; written: number } {
  if (BAD_HEAD_TEXT.test(start)) {
    throw new HeadError(`bad characters in start line ${describe(start)}`);
  }
  let head = start + "\r\n";
  for (let i = 0; i < headers.length; i++) {
    const name = headers[i][0];
    const value = headers[i][1];
    if (skip?.has(name)) continue;
    if (!TOKEN.test(name)) throw new HeadError(`header name ${describe(name)} is not a token`);
    if (BAD_HEAD_TEXT.test(value)) {
      throw new HeadError(`header ${name} holds CR, LF, NUL or a character above U+00FF`);
    }
    head += name + ": " + value + "\r\n";
  }
  head += own + "\r\n";
  if (out.length < head.length * 3 + extra) out = new Uint8Array(head.length * 3 + extra);
  const { read, written } = encoder.encodeInto(head, out);
  if (read === written) return { buf: out, written }; // pure ASCII, the usual case
  // Checked above: every character is one byte.
  for (let i = 0; i < head.length; i++) out[i] = head.charCodeAt(i);
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
