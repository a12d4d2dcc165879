/**
 * A small HTTP/1.1 client for F2S's own hops (fizzlet → app, dispatcher → instance): pooled
 * keep-alive connections with TCP_NODELAY, request bodies streamed (raw with a known length,
 * else chunked), response bodies streamed by their framing (length, chunked, or until
 * close), and nothing re-encoded on the way.
 *
 * Why not a general client: Deno's fetch leaves Nagle's algorithm on (a streamed upload
 * stalls on delayed ACKs) and decompresses gzip answers while keeping their
 * Content-Encoding; node:http in Deno gave less than half this client's throughput in
 * bench/fizzlet.ts. Connections run on Deno.TcpConn, except for streamed request bodies
 * (unknown or large length), which go through a node:net socket: copying a Deno.serve
 * request body into a Deno.TcpConn slows down quadratically with its size (1 GiB: 26 s),
 * through node:net it stays linear (1 GiB: about 4 s here).
 *
 * One client speaks to one trusted upstream (host and port, or a Unix socket); it never pipelines and does
 * not do upgrades. A request that fails before its answer is sent again (once, on a fresh
 * connection, after a pooled one broke) only as common/delivery.ts allows; when that rule
 * lets the caller send it elsewhere, the failure is a NotDeliveredError.
 *
 * The common exchange (a pooled connection, a body in memory or none, a small answer with a
 * length) runs in one async function that awaits only the write and the reads: the head is
 * found and parsed in the buffer synchronously, and there is no async layer per attempt or
 * per head, no closure per exchange and no idle deadline per release. Measured with a
 * client-only loop (32 concurrent, node app, CPU per request, medians of 5): 19.1 µs before,
 * 17.6 µs after.
 */

import net from "node:net";
import { type Deadline, type Deadlines, deadlines as sharedDeadlines } from "./deadlines.ts";
import { maySendAgain, NotDeliveredError } from "./delivery.ts";
import {
  bodyStream,
  chunkFrame,
  decodeLatin1,
  encodeHead,
  HeadError,
  indexOfHeadEnd,
  LAST_CHUNK,
  MAX_HEAD,
  READ_SIZE,
  readMore,
  takeExactly,
  WireError,
  type WireReader,
} from "./http1_wire.ts";

/** Bodies up to this size with a known length are read whole: no stream per response. */
const SMALL_BODY = 64 * 1024;
/** Request bodies with a known length up to this size are sent in one write with the head. */
const SMALL_UPLOAD = 1024 * 1024;

/** The app's answer was malformed or broke off (a WireError of the client's own kind). */
export class UpstreamError extends WireError {}

/**
 * The caller's request body failed (its client went away, or its framing broke) before all
 * of it was sent: the exchange ends, and the upstream is not to blame.
 */
export class RequestBodyError extends Error {}

export interface UpstreamRequest {
  method: string;
  /** Path and query, e.g. "/a?b=1". */
  target: string;
  /** Header lines to send (lower-case names; must include host). */
  headers: [string, string][];
  /** A stream, or bytes already in memory (sent with the head in one write). */
  body: ReadableStream<Uint8Array> | Uint8Array | null;
  /** Closes the connection (and so fails the exchange) when aborted. */
  signal: AbortSignal;
}

export interface UpstreamResponse {
  status: number;
  statusText: string;
  /** Raw header pairs as received (names lower-cased). */
  headers: [string, string][];
  body: ReadableStream<Uint8Array> | Uint8Array<ArrayBuffer> | null;
}

/** One TCP connection to the app, whichever API drives it. */
interface Transport {
  read(buf: Uint8Array): Promise<number | null>;
  write(data: Uint8Array): Promise<void>;
  /**
   * One write that takes some of `data` (nearly always all of it) and says how much; it
   * leaves `wrote` to the caller. The exchange awaits it directly: a wrapper promise per
   * request head cost more than the rare second write.
   */
  writeSome(data: Uint8Array): Promise<number>;
  close(): void;
  /** False for connections that are closed after one exchange. */
  poolable: boolean;
  /** Set once any byte was handed to the connection (the caller resets it per exchange). */
  wrote: boolean;
}

/** Where a client connects: a host and port, or a Unix socket (`path`). */
interface Peer {
  hostname: string;
  port: number;
  path?: string;
}

/** Deno's TcpConn (or UnixConn): the fast path, for everything but long streamed uploads. */
async function denoTransport(peer: Peer): Promise<Transport> {
  let tcp: Deno.Conn;
  if (peer.path) tcp = await Deno.connect({ transport: "unix", path: peer.path });
  else {
    const conn = await Deno.connect({ hostname: peer.hostname, port: peer.port });
    conn.setNoDelay(true);
    tcp = conn;
  }
  const transport: Transport = {
    read: (buf) => tcp.read(buf),
    // One write nearly always takes everything; the loop is only for what it left. A write
    // that fails wrote nothing (one syscall), so `wrote` is exact here.
    write: (data) =>
      tcp.write(data).then((n) => {
        if (n > 0) transport.wrote = true;
        return n < data.length ? writeAllTcp(tcp, data.subarray(n)) : undefined;
      }),
    writeSome: (data) => tcp.write(data),
    close: () => tcp.close(),
    poolable: true,
    wrote: false,
  };
  return transport;
}

async function writeAllTcp(tcp: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await tcp.write(data.subarray(off));
}

/**
 * A node:net socket, for request bodies streamed without a known small length: forwarding
 * a Deno.serve request body through Deno.TcpConn writes slows down quadratically with the
 * size (1 GiB took 26 s here, 100 MiB 0.4 s), through node:net it stays linear (5 s).
 */
async function nodeTransport(peer: Peer): Promise<Transport> {
  const socket = peer.path
    ? net.connect({ path: peer.path })
    : net.connect({ host: peer.hostname, port: peer.port, noDelay: true });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  const queue: Uint8Array[] = [];
  let queued = 0;
  let ended = false;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  socket.on("data", (data: Uint8Array) => {
    queue.push(data);
    queued += data.length;
    if (queued > 4 * READ_SIZE) socket.pause();
    notify();
  });
  socket.on("end", () => {
    ended = true;
    notify();
  });
  socket.on("close", () => {
    ended = true;
    notify();
  });
  socket.on("error", (e) => {
    failure = e;
    notify();
  });
  const transport: Transport = {
    async read(buf) {
      while (queue.length === 0) {
        if (failure) throw failure;
        if (ended) return null;
        await new Promise<void>((resolve) => wake = resolve);
      }
      const head = queue[0];
      const n = Math.min(buf.length, head.length);
      buf.set(head.subarray(0, n));
      if (n === head.length) queue.shift();
      else queue[0] = head.subarray(n);
      queued -= n;
      if (queued <= READ_SIZE) socket.resume();
      return n;
    },
    async write(data) {
      if (failure) throw failure;
      // node:net buffers what it cannot send yet: once handed over, count it as written.
      transport.wrote = true;
      if (socket.write(data)) return;
      await new Promise<void>((resolve) => {
        const done = () => {
          socket.off("drain", done);
          socket.off("close", done);
          resolve();
        };
        socket.on("drain", done);
        socket.on("close", done);
      });
      if (failure) throw failure;
      if (socket.destroyed) throw new UpstreamError("app closed the connection");
    },
    writeSome: (data) => transport.write(data).then(() => data.length),
    close: () => socket.destroy(),
    poolable: false,
    wrote: false,
  };
  return transport;
}

/** A connection: its transport, with the wire reader's buffer in front of it. */
interface Conn extends WireReader {
  tcp: Transport;
  /** Request heads are encoded here (see requestBytes). */
  wbuf: Uint8Array;
  reused: boolean;
  closed: boolean;
  /** Some answer (even an interim one) arrived: the request reached the app. */
  answered: boolean;
  /** The caller's request body failed while it was being sent (not the app's fault). */
  bodyBroken?: boolean;
  /** The pool's sweep count when the connection went idle (see release). */
  idleSince: number;
  /** Closes the connection: its abort listener, made once rather than per exchange. */
  onAbort: () => void;
  /** Settles the read a pooled connection keeps pending (made once per connection). */
  onIdleRead: (n: number | null) => void;
  onIdleError: () => void;
}

function close(conn: Conn): void {
  if (conn.closed) return;
  conn.closed = true;
  try {
    conn.tcp.close();
  } catch {
    // Already closed.
  }
}

const ALL_SENT = Promise.resolve(true);

/** An exchange that failed before any answer, and whether any of the request went out. */
interface Failure {
  failure: unknown;
  written: boolean;
}

/** Idle connections are swept this many times per idleTimeout (see release). */
const IDLE_STEPS = 8;

/**
 * The request head, and a body held in memory, as one write: encoded into the
 * connection's own buffer (reused, since a connection carries one request at a time)
 * rather than into new arrays for every request.
 */
function requestBytes(
  conn: Conn,
  req: UpstreamRequest,
  own: string,
  body: Uint8Array | null,
): Uint8Array {
  const bodyLength = body?.length ?? 0;
  const start = `${req.method} ${req.target} HTTP/1.1`;
  const { buf, written } = encodeHead(start, req.headers, own, conn.wbuf, bodyLength);
  // Large uploads get a buffer of their own, not one kept by an idle connection.
  if (buf !== conn.wbuf && buf.length <= SMALL_BODY) conn.wbuf = buf;
  if (body && bodyLength > 0) buf.set(body, written);
  return buf.subarray(0, written + bodyLength);
}

function writeAll(conn: Conn, data: Uint8Array): Promise<void> {
  return conn.tcp.write(data);
}

interface Head {
  status: number;
  statusText: string;
  headers: [string, string][];
  contentLength: number | undefined;
  chunked: boolean;
  keepAlive: boolean;
}

/**
 * The answer's head if all of it is buffered (undefined: read more), scanning only what
 * `scanned` (the end of the last scan) left. Synchronous, so the exchange awaits its reads
 * itself instead of through two async layers per answer.
 */
function bufferedHead(conn: Conn, scanned: number): Head | undefined {
  const at = indexOfHeadEnd(conn.buf, Math.max(conn.start, scanned - 3), conn.end);
  if (at - conn.start > MAX_HEAD || (at < 0 && conn.end - conn.start > MAX_HEAD)) {
    conn.answered = true; // bytes of an answer arrived, however malformed
    throw new UpstreamError("app's answer: head too large");
  }
  if (at < 0) return undefined;
  const text = decodeLatin1(conn.buf.subarray(conn.start, at));
  conn.start = at + 4;
  conn.answered = true;
  return parseHead(text);
}

const DIGITS = /^\d+$/;
const isBlank = (c: number) => c === 32 || c === 9;

/** `HTTP/1.x NNN reason`, checked by hand: cheaper than a regular expression per answer. */
function parseStatusLine(line: string): { http10: boolean; status: number; text: string } {
  const d0 = line.charCodeAt(9) - 48;
  const d1 = line.charCodeAt(10) - 48;
  const d2 = line.charCodeAt(11) - 48;
  const ok = line.startsWith("HTTP/1.") && (line[7] === "0" || line[7] === "1") &&
    line[8] === " " && d0 >= 0 && d0 <= 9 && d1 >= 0 && d1 <= 9 && d2 >= 0 && d2 <= 9 &&
    (line.length === 12 || line[12] === " ");
  if (!ok) throw new UpstreamError(`malformed status line "${line.slice(0, 100)}"`);
  return {
    http10: line[7] === "0",
    status: d0 * 100 + d1 * 10 + d2,
    text: line.length > 13 ? line.slice(13) : "",
  };
}

function parseHead(text: string): Head {
  let lineEnd = text.indexOf("\r\n");
  if (lineEnd < 0) lineEnd = text.length;
  const { http10, status, text: statusText } = parseStatusLine(text.slice(0, lineEnd));
  const headers: [string, string][] = [];
  let contentLength: number | undefined;
  let chunked = false;
  let connection = "";
  while (lineEnd < text.length) {
    const lineStart = lineEnd + 2;
    lineEnd = text.indexOf("\r\n", lineStart);
    if (lineEnd < 0) lineEnd = text.length;
    const colon = text.indexOf(":", lineStart);
    if (colon <= lineStart || colon > lineEnd) {
      const line = text.slice(lineStart, lineEnd);
      throw new UpstreamError(`malformed header line "${line.slice(0, 100)}"`);
    }
    const name = text.slice(lineStart, colon).trim().toLowerCase();
    // Optional whitespace around the value, skipped in place rather than sliced and trimmed.
    let from = colon + 1;
    let to = lineEnd;
    while (from < to && isBlank(text.charCodeAt(from))) from++;
    while (to > from && isBlank(text.charCodeAt(to - 1))) to--;
    const value = text.slice(from, to);
    if (name === "content-length") {
      const n = DIGITS.test(value) ? Number(value) : NaN;
      if (!Number.isSafeInteger(n)) throw new UpstreamError(`bad content-length "${value}"`);
      contentLength = n;
    } else if (name === "transfer-encoding") {
      chunked = value.toLowerCase().split(",").map((s) => s.trim()).includes("chunked");
    } else if (name === "connection") {
      connection = value.toLowerCase();
    }
    headers.push([name, value]);
  }
  const keepAlive = http10 ? connection.includes("keep-alive") : !connection.includes("close");
  return {
    status,
    statusText,
    headers,
    contentLength: chunked ? undefined : contentLength,
    chunked,
    keepAlive,
  };
}

export interface Http1Client {
  request(req: UpstreamRequest): Promise<UpstreamResponse>;
  close(): void;
}

export function createHttp1Client(
  port: number,
  options: {
    maxIdle?: number;
    idleTimeout?: number;
    hostname?: string;
    /** A Unix socket to connect to instead of hostname and port. */
    path?: string;
    deadlines?: Deadlines;
  } = {},
): Http1Client {
  const hostname = options.hostname ?? "127.0.0.1";
  const peer: Peer = { hostname, port, path: options.path };
  const where = options.path ?? `${hostname}:${port}`;
  const maxIdle = options.maxIdle ?? 256;
  const idleTimeout = options.idleTimeout ?? 30_000;
  const deadlines = options.deadlines ?? sharedDeadlines;
  const idle: Conn[] = [];
  let closed = false;

  /** Takes a pooled connection out of the pool and closes it (the app closed it, or it idled). */
  const drop = (conn: Conn) => {
    const i = idle.indexOf(conn);
    if (i >= 0) idle.splice(i, 1);
    close(conn);
  };

  const connect = async (streaming = false): Promise<Conn> => {
    const tcp = streaming ? await nodeTransport(peer) : await denoTransport(peer);
    const conn: Conn = {
      tcp,
      read: (buf) => tcp.read(buf),
      buf: new Uint8Array(16 * 1024),
      wbuf: new Uint8Array(4 * 1024),
      start: 0,
      end: 0,
      reused: false,
      closed: false,
      answered: false,
      idleSince: 0,
      onAbort: () => close(conn),
      // The next exchange awaits a pooled connection's pending read itself; these only drop
      // a connection the app closes (or breaks) while it sits in the pool.
      onIdleRead: (n) => {
        if (n === null && idle.includes(conn)) drop(conn);
      },
      onIdleError: () => {
        if (idle.includes(conn)) drop(conn);
      },
    };
    return conn;
  };

  /**
   * A fresh connection; failing to make one means nothing of the request went out (the
   * caller may send it elsewhere), unless an earlier attempt already `wrote` some of it.
   */
  const open = async (streaming: boolean, written: boolean): Promise<Conn> => {
    try {
      return await connect(streaming);
    } catch (e) {
      throw new NotDeliveredError(
        `cannot connect to ${where}: ${(e as Error).message}`,
        written,
        { cause: e },
      );
    }
  };

  /**
   * Idle connections are closed by one sweep every IDLE_STEPS-th of idleTimeout, not by a
   * deadline each: a deadline set on every release and cancelled on every reuse cost a
   * clock reading and a Set insert and delete per request. A connection idle for
   * IDLE_STEPS + 1 sweeps has been idle at least idleTimeout (and at most one step more).
   */
  let sweeps = 0;
  let sweeping: Deadline | undefined;
  const step = Math.max(1, Math.ceil(idleTimeout / IDLE_STEPS));
  const sweep = () => {
    sweeping = undefined;
    sweeps++;
    // The pool is a stack: the longest idle connections are at its bottom.
    let stale = 0;
    while (stale < idle.length && sweeps - idle[stale].idleSince > IDLE_STEPS) stale++;
    for (const conn of idle.splice(0, stale)) close(conn);
    if (idle.length > 0 && !closed) sweeping = deadlines.after(step, sweep);
  };

  const release = (conn: Conn) => {
    if (
      closed || conn.closed || !conn.tcp.poolable || idle.length >= maxIdle ||
      conn.start !== conn.end
    ) {
      return close(conn);
    }
    conn.reused = true;
    conn.start = conn.end = 0;
    conn.idleSince = sweeps;
    const read = conn.read(conn.buf);
    read.then(conn.onIdleRead, conn.onIdleError);
    conn.pending = read;
    idle.push(conn);
    sweeping ??= deadlines.after(step, sweep);
  };

  /** A pooled connection, or undefined when a new one must be made. */
  const reuse = (): Conn | undefined => idle.pop();

  /** Why an exchange failed before any answer, for request() to decide on a retry. */
  const failed = (conn: Conn, failure: unknown): Failure => {
    close(conn);
    if (conn.bodyBroken) {
      throw new RequestBodyError("the request body broke off before it was all sent", {
        cause: failure,
      });
    }
    return { failure, written: conn.tcp.wrote };
  };

  /** Streams the request body; resolves true when all of it was sent. */
  const sendBody = async (conn: Conn, body: ReadableStream<Uint8Array>, chunked: boolean) => {
    let writing = false;
    try {
      for await (const chunk of body) {
        if (conn.closed) return false;
        if (chunk.length === 0) continue;
        writing = true;
        await writeAll(conn, chunked ? chunkFrame(chunk) : chunk);
        writing = false;
      }
      writing = true;
      if (chunked) await writeAll(conn, LAST_CHUNK);
      return true;
    } catch {
      // The client's body broke off (the app must not see a whole request), or the app closed.
      if (!writing) conn.bodyBroken = true;
      close(conn);
      return false;
    }
  };

  /**
   * One exchange on `conn`: the answer, or why it failed before one. Failures once an answer
   * began, or after the caller gave up, are thrown: those are never sent again. One async
   * function that awaits the reads itself (the head is parsed from the buffer synchronously,
   * a small body taken from it likewise): every async layer between the read and the answer
   * cost a promise and a microtask per request.
   */
  const exchange = async (
    req: UpstreamRequest,
    body: ReadableStream<Uint8Array> | Uint8Array | null,
    conn: Conn,
    streaming: boolean,
    /** An earlier exchange of this request had written some of it. */
    wroteBefore: boolean,
  ): Promise<UpstreamResponse> => {
    const signal = req.signal;
    let noAnswer: UpstreamError | undefined;
    signal.addEventListener("abort", conn.onAbort);
    conn.tcp.wrote = false;
    conn.answered = false;
    let headDone = false;
    try {
      const chunked = body instanceof ReadableStream &&
        !req.headers.some(([name]) => name === "content-length");
      const own = chunked ? "transfer-encoding: chunked\r\n" : "";
      let bodySent: Promise<boolean>;
      const bytes = requestBytes(conn, req, own, body instanceof ReadableStream ? null : body);
      const n = await conn.tcp.writeSome(bytes);
      if (n > 0) conn.tcp.wrote = true;
      if (n < bytes.length) await writeAll(conn, bytes.subarray(n));
      if (body instanceof ReadableStream) bodySent = sendBody(conn, body, chunked);
      else bodySent = ALL_SENT;

      let h: Head;
      let scanned = conn.start;
      for (;;) {
        const head = bufferedHead(conn, scanned);
        if (head) {
          if (head.status < 100 || head.status >= 200) {
            h = head;
            break;
          }
          if (head.status === 101) throw new UpstreamError("protocol upgrades are not supported");
          scanned = conn.start; // 100 Continue, 103 Early Hints: the real answer follows.
          continue;
        }
        scanned = conn.end;
        const n = await readMore(conn);
        if (n === null) {
          if (conn.end === conn.start) {
            // Not an answer, even after an interim one: the request may go elsewhere.
            throw noAnswer = new UpstreamError("app closed the connection without answering");
          }
          conn.answered = true;
          throw new UpstreamError("app's answer: connection closed mid-head");
        }
        conn.end += n;
      }
      headDone = true;
      signal.removeEventListener("abort", conn.onAbort);

      const noBody = req.method === "HEAD" || h.status === 204 || h.status === 304;
      if (noBody || h.contentLength === 0) {
        finishExchange(conn, h.keepAlive, bodySent);
        return { status: h.status, statusText: h.statusText, headers: h.headers, body: null };
      }
      const length = h.contentLength;
      if (length !== undefined && length <= SMALL_BODY) {
        let body: Uint8Array<ArrayBuffer>;
        if (!conn.pending && conn.end - conn.start >= length) {
          // The usual case: the whole body came with its head.
          body = conn.buf.slice(conn.start, conn.start + length);
          conn.start += length;
        } else {
          body = await takeExactly(conn, length).catch((e) => {
            throw e instanceof WireError ? new UpstreamError(`app ${e.message}`) : e;
          });
        }
        finishExchange(conn, h.keepAlive, bodySent);
        return { status: h.status, statusText: h.statusText, headers: h.headers, body };
      }
      // Without a length or chunks the body ends at close: the connection is not reused.
      const reusable = h.keepAlive && (h.chunked || length !== undefined);
      const stream = bodyStream(conn, { chunked: h.chunked, length }, {
        end: () => finishExchange(conn, reusable, bodySent),
        abort: conn.onAbort,
      });
      return { status: h.status, statusText: h.statusText, headers: h.headers, body: stream };
    } catch (e) {
      close(conn);
      // A head that cannot be encoded is the caller's mistake: no connection is to blame.
      if (e !== noAnswer && (signal.aborted || conn.answered || e instanceof HeadError)) throw e;
      const outcome = failed(conn, e);
      outcome.written ||= wroteBefore;
      return retryOrFail(req, body, conn.reused, streaming, outcome);
    } finally {
      if (!headDone) signal.removeEventListener("abort", conn.onAbort);
    }
  };

  /** After an answer: the connection is reusable only once the whole request went out too. */
  const finishExchange = (conn: Conn, reusable: boolean, bodySent: Promise<boolean>) => {
    if (!reusable) close(conn);
    else if (bodySent === ALL_SENT) release(conn);
    else bodySent.then((sent) => sent ? release(conn) : close(conn));
  };

  /** Any request: streamed bodies, bodies read whole first, or a new connection. */
  const requestAny = async (req: UpstreamRequest): Promise<UpstreamResponse> => {
    if (closed) throw new UpstreamError("client closed");
    let body: ReadableStream<Uint8Array> | Uint8Array | null = req.body;
    const length = req.headers.find(([name]) => name === "content-length")?.[1];
    const stream = body instanceof ReadableStream ? body : undefined;
    const inMemory = stream !== undefined && length !== undefined &&
      Number(length) <= SMALL_UPLOAD;
    const streaming = stream !== undefined && !inMemory;
    let conn: Conn | undefined;
    if (streaming) conn = await open(true, false);
    else if (inMemory) {
      // Connect before the body is read: when the app refuses, the caller's stream is
      // still untouched and can be sent elsewhere.
      if (idle.length === 0) conn = await open(false, false);
      try {
        body = new Uint8Array(await new Response(stream).arrayBuffer());
      } catch (e) {
        if (conn) close(conn);
        throw new RequestBodyError(`the request body broke off: ${(e as Error).message}`, {
          cause: e,
        });
      }
    }
    conn ??= reuse() ?? await open(false, false);
    return exchange(req, body, conn, streaming, false);
  };

  /**
   * After an exchange failed before any answer: Go's rule, once more on a fresh connection
   * after a pooled one failed (the app had closed it, or died), if the request may be sent
   * again at all; then a NotDeliveredError when the caller may send it elsewhere.
   */
  const retryOrFail = async (
    req: UpstreamRequest,
    body: ReadableStream<Uint8Array> | Uint8Array | null,
    wasReused: boolean,
    streaming: boolean,
    outcome: Failure,
  ): Promise<UpstreamResponse> => {
    const { failure, written } = outcome;
    const again = maySendAgain(req.method, req.headers, written);
    if (wasReused && !streaming && again) {
      return exchange(req, body, await open(false, written), false, written);
    }
    if (!again) throw failure;
    throw new NotDeliveredError(
      `app failed before answering (${(failure as Error)?.message ?? failure})`,
      written,
      { cause: failure },
    );
  };

  return {
    request(req) {
      // The common case (a body in memory or none, a pooled connection) goes straight to
      // the exchange: no async layer of its own.
      const body = req.body;
      if (!closed && !(body instanceof ReadableStream)) {
        const conn = reuse();
        if (conn) return exchange(req, body, conn, false, false);
      }
      return requestAny(req);
    },
    close() {
      closed = true;
      sweeping?.cancel();
      sweeping = undefined;
      for (const conn of idle.splice(0)) close(conn);
    },
  };
}
