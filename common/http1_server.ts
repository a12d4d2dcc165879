/**
 * A small HTTP/1.1 server: the control plane's one port (API, UI, metrics, invocations).
 * Requests arrive as plain data (method, target, header pairs, body) and answers leave the
 * same way; common/web_bridge.ts turns a Request/Response handler into one of these.
 *
 * Why not Deno.serve: each request there becomes a Request whose headers are copied out of
 * Rust on first use, and each answer a Response whose headers are validated and copied
 * back. For a proxied invocation that is about a sixth of the dispatcher's CPU per request
 * (bench/dispatcher.ts). Here the header pairs parsed from the client go to the function
 * as they are, and the function's answer goes back out without a Response in between.
 *
 * What it does: keep-alive (HTTP/1.1 by default, HTTP/1.0 when asked), pipelined requests
 * answered in order, bodies by Content-Length or chunked (`Expect: 100-continue`
 * answered when the body is first read), answers by length, chunked, or until close for
 * HTTP/1.0. What it refuses is in common/http1_request.ts (no request smuggling through
 * F2S); a chunked body's first chunk line, and whatever of it is already buffered, is
 * checked before the handler starts. The accept loop survives accept errors (descriptors
 * exhausted: backs off 5 ms doubling to 1 s, as Go's net/http does), and beyond
 * `maxConnections` open connections a new one gets 503 and is closed. No upgrades, no
 * HTTP/2, no TLS (a Kubernetes ingress terminates TLS in front of F2S).
 *
 * The hot path (a keep-alive request whose head comes in one read, a small answer) has as
 * few awaits and allocations as it can: serveConn awaits the read itself and scans the head
 * synchronously (scanRequestHead), a connection keeps one wait deadline whose due time it
 * moves (not a deadline and a cancel per request), a small buffered body is taken without
 * an await, and answer() writes head and body in one write it awaits itself. Measured with
 * alternating wrk rounds against the previous server (-c32, 3 runs of 10 rounds, CPU per
 * request): the dispatcher bench 35.0 → 33.7 µs, the fizzlet in proxy mode 34.8 → 33.5 µs.
 */

import { errorAnswer, type PlainAnswer } from "./protocol.ts";
import { type Deadline, type Deadlines, deadlines as sharedDeadlines } from "./deadlines.ts";
import type { Logger } from "./log.ts";
import {
  bodyStream,
  type ChunkedStart,
  chunkFrame,
  ConnectionClosed,
  decodeChunks,
  encodeHead,
  fill,
  HeadError,
  LAST_CHUNK,
  newChunkState,
  readMore,
  takeExactly,
  WireError,
  type WireReader,
} from "./http1_wire.ts";
import {
  newHeadScan,
  parseRequestHead,
  RequestError,
  type RequestHead,
  scanRequestHead,
} from "./http1_request.ts";
import { defaultMaxConnections } from "./open_files.ts";
import { concat } from "./bytes.ts";

/** A request as received. */
export interface ServerRequest {
  method: string;
  /** The request target as sent: path and query (or an absolute URL, or "*"). */
  target: string;
  /** Header pairs in the order received, names lower-cased, values trimmed. */
  headers: [string, string][];
  /** Small bodies arrive whole, larger ones as a stream read as it is consumed. */
  body: Uint8Array<ArrayBuffer> | ReadableStream<Uint8Array> | null;
  remoteAddress: string;
  /**
   * Calls `onGone` if the client goes away before the answer has been sent; returns a
   * function that stops watching.
   */
  watchClient(onGone: () => void): () => void;
}

/**
 * An answer: status, header pairs (names lower-case) and body. Framing headers (length,
 * coding, connection) are the server's to write.
 */
export type ServerResponse = PlainAnswer;

export type ServerHandler = (req: ServerRequest) => ServerResponse | Promise<ServerResponse>;

export interface Http1ServerOptions {
  hostname: string;
  /** 0 picks a free port (see `addr`). */
  port: number;
  /**
   * Listen on this Unix socket instead of hostname and port (the fizzlet under `f2s dev`:
   * on one machine it costs about half of a TCP round trip's CPU). Its peers are local:
   * their remoteAddress is 127.0.0.1.
   */
  path?: string;
  /** The answer when the handler throws (default: a bare 500). */
  onError?: (error: unknown) => ServerResponse;
  /** Idle keep-alive connections are closed after this long (ms). */
  idleTimeout?: number;
  /** A request head must arrive whole within this long once begun (ms). */
  headTimeout?: number;
  /**
   * A small body (read whole before the handler runs) must arrive within this long after its
   * head, else 408 and the connection closes (ms; default: the head timeout).
   */
  bodyTimeout?: number;
  /**
   * Open connections beyond this are answered 503 and closed (default: half the open-files
   * limit, at most 10000; see common/open_files.ts).
   */
  maxConnections?: number;
  /** Where accept errors and refused connections are reported. */
  log?: Logger;
  deadlines?: Deadlines;
}

export interface Http1Server {
  /** The TCP address bound (for a Unix socket: port 0). */
  readonly addr: Deno.NetAddr;
  /** Stops accepting, closes idle connections, lets answers in progress finish. */
  shutdown(): Promise<void>;
  /** Resolves once the server has stopped and every connection is closed. */
  readonly finished: Promise<void>;
}

/** Request bodies up to this size with a known length are read whole before the handler. */
const SMALL_BODY = 64 * 1024;
const DIGITS = /^\d{1,15}$/;
/** Response header names the server writes itself (framing and connection). */
/** Accept errors this far apart belong to different bursts (each logged once). */
const BURST_QUIET = 1000;
const OWN_HEADERS = new Set(["content-length", "transfer-encoding", "connection", "keep-alive"]);

interface Conn extends WireReader {
  tcp: Deno.Conn;
  remoteAddress: string;
  wbuf: Uint8Array;
  closed: boolean;
  /** Between a request's head and the end of its answer. */
  busy: boolean;
  onGone: (() => void)[];
  /** The answer went out before the request's body was read: close by lingering. */
  linger?: boolean;
  /** When the head being waited for is due (monotonic ms); Infinity while not waiting. */
  headDue: number;
  /** The connection's one wait deadline (see waitForHead) and when it fires. */
  waitTimer?: Deadline;
  timerDue: number;
  /** Per-connection callbacks, made once rather than for every request. */
  onWaitTimer: () => void;
  aheadRead: (n: number | null) => void;
  aheadFailed: () => void;
  watchClient: ServerRequest["watchClient"];
}

/** An answer ready to write: `whole` alone, or `head` then `bytes` or `stream`. */
interface Prepared {
  whole?: Uint8Array;
  head?: Uint8Array;
  bytes?: Uint8Array;
  stream?: ReadableStream<Uint8Array>;
  mode: "none" | "bytes" | "length" | "chunked" | "close";
  /** The handler's content-length, for a stream written by length. */
  declared?: string;
  keepAlive: boolean;
}

/**
 * A request body's reception: the handler's body stream reports to it while the handler
 * reads. Bodyless requests share NO_BODY (never written to).
 */
interface Receiving {
  done: boolean;
  broken: boolean;
  error: unknown;
}

const NO_BODY: Readonly<Receiving> = Object.freeze({ done: true, broken: false, error: undefined });

/** How long a connection closed with its request body unread keeps draining (ms). */
const LINGER_MS = 5_000;

export function serveHttp1(options: Http1ServerOptions, handler: ServerHandler): Http1Server {
  const deadlines = options.deadlines ?? sharedDeadlines;
  const idleTimeout = options.idleTimeout ?? 75_000;
  const headTimeout = options.headTimeout ?? 30_000;
  const bodyTimeout = options.bodyTimeout ?? headTimeout;
  const onError = options.onError ?? (() => errorAnswer(500, "internal error"));
  const maxConnections = options.maxConnections ?? defaultMaxConnections();
  const log = options.log;
  const listener: Deno.Listener = options.path
    ? Deno.listen({ transport: "unix", path: options.path })
    : Deno.listen({ hostname: options.hostname, port: options.port });
  const conns = new Set<Conn>();
  let stopping = false;
  let allClosed: (() => void) | undefined;

  function close(c: Conn) {
    if (c.closed) return;
    c.closed = true;
    c.waitTimer?.cancel();
    try {
      c.tcp.close();
    } catch {
      // Already closed.
    }
    conns.delete(c);
    if (stopping && conns.size === 0) allClosed?.();
  }

  function clientGone(c: Conn) {
    const callbacks = c.onGone.splice(0);
    for (const cb of callbacks) cb();
  }

  /**
   * Once a request's body has been read, a read is started for whatever comes next: it
   * notices the client closing while the answer is being prepared, and otherwise holds the
   * next request's first bytes.
   */
  function readAhead(c: Conn) {
    if (c.closed || c.pending) return;
    if (c.start === c.end) c.start = c.end = 0;
    const read = c.end < c.buf.length ? c.read(c.buf.subarray(c.end)) : Promise.resolve(0);
    c.pending = read;
    read.then(c.aheadRead, c.aheadFailed);
  }

  /**
   * Waiting for a head: the idle timeout when nothing of it has arrived, else the head
   * timeout, from now. A connection keeps one deadline and moves its due time: a new
   * deadline and its cancel for every keep-alive request cost more than the request's head
   * parsing (two clock reads and a bucket's Set each).
   */
  function waitForHead(c: Conn, idle: boolean) {
    const ms = idle ? idleTimeout : headTimeout;
    const due = deadlines.now() + ms;
    c.headDue = due;
    if (c.waitTimer && c.timerDue <= due) return;
    c.waitTimer?.cancel();
    c.timerDue = due;
    c.waitTimer = deadlines.after(ms, c.onWaitTimer);
  }

  /** The wait deadline fired: close if a head is still awaited past its due time. */
  function waitTimerFired(c: Conn) {
    c.waitTimer = undefined;
    if (c.closed || c.headDue === Infinity) return;
    const left = c.headDue - deadlines.now();
    if (left <= 0) close(c);
    else {
      c.timerDue = c.headDue;
      c.waitTimer = deadlines.after(left, c.onWaitTimer);
    }
  }

  async function serveConn(c: Conn) {
    const scan = newHeadScan();
    try {
      while (!c.closed && !stopping) {
        // The next head: parsed at once when it is buffered, else read here (no async
        // layer per request between the read and this loop).
        let head: RequestHead | RequestError | null;
        try {
          const idle = c.start === c.end;
          let text = scanRequestHead(c, scan);
          if (text === undefined) {
            waitForHead(c, idle);
            do {
              const n = await readMore(c);
              if (n === null) {
                // The client closed: between requests, or mid-head with no one to answer.
                if (c.end !== c.start) throw new ConnectionClosed("connection closed mid-head");
                break;
              }
              c.end += n;
              text = scanRequestHead(c, scan);
            } while (text === undefined);
            c.headDue = Infinity;
          }
          head = text === undefined ? null : parseRequestHead(text);
        } catch (e) {
          c.headDue = Infinity;
          if (e instanceof RequestError) head = e;
          else if (e instanceof WireError) head = null;
          else throw e;
        }
        if (head === null) break;
        if (head instanceof RequestError) {
          await writeAnswer(c, "GET", false, false, errorAnswer(head.status, head.message));
          break;
        }
        if (!(await answer(c, head))) break;
      }
    } catch {
      // A broken connection: nothing more to say on it.
    } finally {
      if (c.linger && !c.closed && !stopping) await lingerClose(c);
      close(c);
    }
  }

  /**
   * Closes a connection whose request body was left unread the way nginx's lingering_close
   * does: stop writing, then read and drop what the client still sends for a while. Closing
   * with unread data makes the kernel send a reset, which can destroy the answer at the
   * client before it has read it (a function that answers early, mid-upload).
   */
  async function lingerClose(c: Conn) {
    try {
      c.tcp.closeWrite();
    } catch {
      return;
    }
    const timer = deadlines.after(LINGER_MS, () => close(c));
    const scratch = new Uint8Array(64 * 1024);
    try {
      const pending = c.pending;
      c.pending = undefined;
      if (pending && (await pending) === null) return;
      while (!c.closed && (await c.tcp.read(scratch)) !== null);
    } catch {
      // Reset by the client, or closed when the time was up.
    } finally {
      timer.cancel();
    }
  }

  /**
   * Decodes the start of a chunked body before the handler runs: waits for the first chunk
   * line (within the head timeout) and takes whatever else is already buffered, up to
   * SMALL_BODY. A malformed chunk there is a 400 before any handler starts.
   */
  async function chunkedStart(c: Conn): Promise<ChunkedStart> {
    const state = newChunkState();
    const prefix: Uint8Array[] = [];
    let got = 0;
    const timer = deadlines.after(headTimeout, () => close(c));
    try {
      for (;;) {
        got += decodeChunks(c, state, prefix, SMALL_BODY - got);
        if (state.done || state.sizes > 0) return { state, prefix };
        if (!(await fill(c))) throw new WireError("connection closed mid-body");
      }
    } finally {
      timer.cancel();
    }
  }

  /**
   * The body as the handler gets it; false when the request was refused (its answer is
   * written). Synchronous for a small body already buffered with its head (the usual POST):
   * no await, not even for a read started ahead of it, whose bytes come after these.
   */
  function receiveBody(
    c: Conn,
    head: RequestHead,
    rx: Receiving,
  ): ServerRequest["body"] | false | Promise<ServerRequest["body"] | false> {
    const length = head.framing!.length;
    if (
      length !== undefined && length <= SMALL_BODY && !head.expectContinue &&
      c.end - c.start >= length
    ) {
      rx.done = true;
      return takeBuffered(c, length);
    }
    return receiveBodySlowly(c, head, rx);
  }

  async function receiveBodySlowly(
    c: Conn,
    head: RequestHead,
    rx: Receiving,
  ): Promise<ServerRequest["body"] | false> {
    const framing = head.framing!;
    const sendContinue = async () => {
      if (head.expectContinue) await writeBytes(c, CONTINUE);
    };
    const hooks = {
      end: () => {
        rx.done = true;
        readAhead(c);
      },
      abort: (e?: unknown) => {
        rx.broken = true;
        rx.error = e;
      },
    };
    if (framing.chunked) {
      await sendContinue();
      let start: ChunkedStart;
      try {
        start = await chunkedStart(c);
      } catch (e) {
        if (!(e instanceof WireError) || e instanceof ConnectionClosed || c.closed) throw e;
        const refusal = errorAnswer(400, `malformed chunked body: ${e.message}`);
        await writeAnswer(c, head.method, head.http10, false, refusal);
        return false;
      }
      if (!start.state.done) return bodyStream(c, framing, hooks, start);
      rx.done = true;
      return concat(start.prefix);
    }
    const length = framing.length!;
    if (length > SMALL_BODY) return bodyStream(c, framing, { start: sendContinue, ...hooks });
    await sendContinue();
    rx.done = true;
    if (c.end - c.start >= length) return takeBuffered(c, length);
    // A slow sender gets bodyTimeout, then a 408: no handler ever waits on its body.
    let late!: () => void;
    const lateness = new Promise<"late">((resolve) => late = () => resolve("late"));
    const timer = deadlines.after(bodyTimeout, late);
    const taking = takeExactly(c, length);
    taking.catch(() => {}); // settles when the connection closes after a 408
    try {
      const got = await Promise.race([taking, lateness]);
      if (got !== "late") return got;
      log?.warn("request body not received in time", {
        timeoutMs: bodyTimeout,
        remoteAddress: c.remoteAddress,
      });
      const refusal = errorAnswer(408, "request body not received in time", {
        timeoutMs: bodyTimeout,
      });
      await writeAnswer(c, head.method, head.http10, false, refusal);
      return false;
    } finally {
      timer.cancel();
    }
  }

  /** Handles one request; false when the connection must close afterwards. */
  async function answer(c: Conn, head: RequestHead): Promise<boolean> {
    c.busy = true;
    let rx: Readonly<Receiving> = NO_BODY;
    let body: ServerRequest["body"] = null;
    if (head.framing !== null) {
      rx = { done: false, broken: false, error: undefined };
      const received = receiveBody(c, head, rx);
      const got = received instanceof Promise ? await received : received;
      if (got === false) return false;
      body = got;
    }
    if (rx.done) readAhead(c);
    const request: ServerRequest = {
      method: head.method,
      target: head.target,
      headers: head.headers,
      body,
      remoteAddress: c.remoteAddress,
      watchClient: c.watchClient,
    };
    let response: ServerResponse;
    try {
      const r = handler(request);
      response = r instanceof Promise ? await r : r;
    } catch (e) {
      response = onError(e);
    }
    if (rx.error instanceof WireError) {
      // The body broke: whatever the handler made of part of it is not the answer.
      if (response.body instanceof ReadableStream) response.body.cancel().catch(() => {});
      if (rx.error instanceof ConnectionClosed) {
        c.busy = false;
        return false; // the client left mid-body: no one to answer
      }
      response = errorAnswer(400, `malformed request body: ${rx.error.message}`);
    }
    // A body the handler left unread (or broke) leaves the connection at an unknown point.
    const keepAlive = head.keepAlive && !stopping && !rx.broken && rx.done;
    if (!rx.done && body instanceof ReadableStream) {
      c.linger = true;
      body.cancel().catch(() => {});
    }
    // The usual answer (head and a small body, one write) is written here rather than in
    // sendAnswer: one async layer less per request.
    const prepared = prepareAnswer(c, head.method, head.http10, keepAlive, response);
    let kept = prepared.keepAlive;
    if (prepared.whole) {
      try {
        const n = await c.tcp.write(prepared.whole);
        if (n < prepared.whole.length) await writeRest(c, prepared.whole, n);
      } catch {
        close(c);
        kept = false;
      }
    } else kept = await sendAnswer(c, prepared);
    c.busy = false;
    c.onGone.length = 0;
    return kept && keepAlive && !c.closed;
  }

  async function writeBytes(c: Conn, data: Uint8Array) {
    const n = await c.tcp.write(data);
    if (n < data.length) await writeRest(c, data, n);
  }

  /** The rest of a partial write. */
  async function writeRest(c: Conn, data: Uint8Array, off: number) {
    while (off < data.length) off += await c.tcp.write(data.subarray(off));
  }

  /** Writes the answer; false when the connection broke or must close. */
  function writeAnswer(
    c: Conn,
    method: string,
    http10: boolean,
    keepAlive: boolean,
    res: ServerResponse,
  ): Promise<boolean> {
    return sendAnswer(c, prepareAnswer(c, method, http10, keepAlive, res));
  }

  /**
   * The answer's head encoded (with a small body after it when it fits: `whole`), its
   * framing chosen. Synchronous, so that the usual answer is written by answer() itself.
   */
  function prepareAnswer(
    c: Conn,
    method: string,
    http10: boolean,
    keepAlive: boolean,
    res: ServerResponse,
  ): Prepared {
    const status = res.status;
    let declared: string | undefined;
    let hasDate = false;
    for (const [name, value] of res.headers) {
      if (name === "content-length") declared = value;
      else if (name === "date") hasDate = true;
    }
    let head = hasDate ? "" : `date: ${httpDate()}\r\n`;
    const bodyAllowed = status >= 200 && status !== 204 && status !== 304;
    const sendBody = bodyAllowed && method !== "HEAD";
    let body = res.body;
    let mode: Prepared["mode"] = "none";
    if (body instanceof Uint8Array) {
      if (bodyAllowed) head += `content-length: ${body.length}\r\n`;
      if (sendBody && body.length > 0) mode = "bytes";
    } else if (body instanceof ReadableStream) {
      const length = declared !== undefined && DIGITS.test(declared) ? declared : undefined;
      if (!sendBody) {
        body.cancel().catch(() => {});
        body = null;
        if (bodyAllowed && length !== undefined) head += `content-length: ${length}\r\n`;
      } else if (length !== undefined) {
        head += `content-length: ${length}\r\n`;
        mode = "length";
      } else if (!http10) {
        head += "transfer-encoding: chunked\r\n";
        mode = "chunked";
      } else {
        mode = "close";
        keepAlive = false;
      }
    } else if (bodyAllowed) {
      head += `content-length: ${
        method === "HEAD" && declared && DIGITS.test(declared) ? declared : 0
      }\r\n`;
    }
    if (!keepAlive) head += "connection: close\r\n";
    else if (http10) head += "connection: keep-alive\r\n";

    const bytes = mode === "bytes" ? body as Uint8Array : undefined;
    let encoded;
    try {
      const start = `HTTP/1.1 ${status} ${REASONS[status] ?? ""}`;
      encoded = encodeHead(start, res.headers, head, c.wbuf, bytes?.length ?? 0, OWN_HEADERS);
    } catch (e) {
      if (!(e instanceof HeadError)) throw e;
      // A handler's header that would break the head: the answer cannot go out as it is.
      log?.error("answer refused: a header cannot be written", { error: e, status });
      if (body instanceof ReadableStream) body.cancel().catch(() => {});
      return prepareAnswer(c, method, http10, false, errorAnswer(500, "internal error"));
    }
    const { buf, written } = encoded;
    if (buf.length <= SMALL_BODY) c.wbuf = buf;
    const stream = body instanceof ReadableStream ? body : undefined;
    if (!stream && (!bytes || written + bytes.length <= buf.length)) {
      if (bytes) buf.set(bytes, written);
      return { whole: buf.subarray(0, written + (bytes?.length ?? 0)), keepAlive, mode };
    }
    return { head: buf.subarray(0, written), bytes, stream, keepAlive, mode, declared };
  }

  /** Writes a prepared answer; false when the connection broke or must close. */
  async function sendAnswer(c: Conn, p: Prepared): Promise<boolean> {
    try {
      if (p.whole) await writeBytes(c, p.whole);
      else {
        await writeBytes(c, p.head!);
        if (p.bytes) await writeBytes(c, p.bytes);
      }
      if (p.stream) {
        const length = p.mode === "length" ? Number(p.declared) : 0;
        if (!(await writeStream(c, p.stream, p.mode, length))) return false;
      }
    } catch {
      p.stream?.cancel().catch(() => {});
      close(c);
      return false;
    }
    return p.keepAlive;
  }

  /** Streams a body out; false when it broke off or did not match its declared length. */
  async function writeStream(
    c: Conn,
    body: ReadableStream<Uint8Array>,
    mode: string,
    length: number,
  ): Promise<boolean> {
    const reader = body.getReader();
    let sent = 0;
    const gone = () => reader.cancel().catch(() => {});
    c.onGone.push(gone);
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (value.length === 0) continue;
        if (mode === "chunked") {
          await writeBytes(c, chunkFrame(value));
        } else {
          if (mode === "length" && sent + value.length > length) {
            await writeBytes(c, value.subarray(0, length - sent));
            sent = length;
            await reader.cancel();
            return false;
          }
          await writeBytes(c, value);
        }
        sent += value.length;
      }
      if (mode === "chunked") await writeBytes(c, LAST_CHUNK);
      return mode !== "length" || sent === length;
    } catch {
      reader.cancel().catch(() => {});
      return false;
    }
  }

  /** Resolves the back-off wait early when the server starts closing. */
  let wakeAccept: (() => void) | undefined;

  /** Beyond the connection cap: a canned 503, then the descriptor is freed at once. */
  function refuse(tcp: Deno.Conn) {
    tcp.write(OVERLOADED).catch(() => 0).finally(() => {
      try {
        tcp.close();
      } catch {
        // Already closed.
      }
    });
  }

  const accepting = (async () => {
    let backoff = 0;
    let failures = 0;
    let lastFailure = 0;
    let refused = 0;
    while (!stopping) {
      let tcp: Deno.Conn;
      try {
        tcp = await listener.accept();
      } catch (e) {
        if (stopping || e instanceof Deno.errors.BadResource) break;
        // Out of descriptors (EMFILE), or a connection reset before it was accepted: wait
        // and go on, as Go's net/http does. Logged once per burst, not once per failure.
        if (failures++ === 0) log?.error("accept failed; backing off", { error: e });
        lastFailure = Date.now();
        backoff = backoff === 0 ? 5 : Math.min(backoff * 2, 1000);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, backoff);
          wakeAccept = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wakeAccept = undefined;
        continue;
      }
      backoff = 0;
      // The burst is over once accepting has gone a second without failing.
      if (failures > 0 && Date.now() - lastFailure > BURST_QUIET) {
        log?.info("accepting again", { failedAccepts: failures });
        failures = 0;
      }
      if (stopping) {
        tcp.close();
        break;
      }
      if (conns.size >= maxConnections) {
        if (refused++ === 0) {
          log?.warn("connection cap reached; refusing with 503", { maxConnections });
        }
        refuse(tcp);
        continue;
      }
      if (refused > 0) {
        log?.info("below the connection cap again", { refusedConnections: refused });
        refused = 0;
      }
      try {
        if (!options.path) (tcp as Deno.TcpConn).setNoDelay(true);
      } catch {
        // The client already left.
      }
      const c: Conn = {
        tcp,
        read: (buf) => tcp.read(buf),
        buf: new Uint8Array(8 * 1024),
        start: 0,
        end: 0,
        wbuf: new Uint8Array(4 * 1024),
        remoteAddress: options.path ? "127.0.0.1" : (tcp.remoteAddr as Deno.NetAddr).hostname,
        closed: false,
        busy: false,
        onGone: [],
        headDue: Infinity,
        timerDue: Infinity,
        onWaitTimer: () => waitTimerFired(c),
        // A read started ahead ended while an answer is being prepared: the client left.
        aheadRead: (n) => {
          if (n === null && c.busy) clientGone(c);
        },
        aheadFailed: () => {
          if (c.busy) clientGone(c);
        },
        watchClient: (onGone) => {
          c.onGone.push(onGone);
          return () => {
            const i = c.onGone.indexOf(onGone);
            if (i >= 0) c.onGone.splice(i, 1);
          };
        },
      };
      conns.add(c);
      serveConn(c);
    }
  })();

  let finishedResolve!: () => void;
  const finished = new Promise<void>((resolve) => finishedResolve = resolve);
  let shutdownPromise: Promise<void> | undefined;

  return {
    addr: listener.addr.transport === "unix"
      ? { transport: "tcp", hostname: "127.0.0.1", port: 0 }
      : listener.addr as Deno.NetAddr,
    finished,
    shutdown() {
      shutdownPromise ??= (async () => {
        stopping = true;
        wakeAccept?.();
        try {
          listener.close();
        } catch {
          // Already closed.
        }
        await accepting;
        const drained = new Promise<void>((resolve) => {
          allClosed = resolve;
          if (conns.size === 0) resolve();
        });
        // Idle connections close now; busy ones close after their answer.
        for (const c of [...conns]) if (!c.busy) close(c);
        await drained;
        finishedResolve();
      })();
      return shutdownPromise;
    },
  };
}

/** Targets whose path and query a URL parser would return unchanged. */
const PLAIN_TARGET = /^\/[\w\-~!$&'()*+,;=:@\/]*(?:\?[\w\-.~!$&'()*+,;=:@\/?%]+)?$/;

/**
 * The path and query ("" or "?…") of a request target, normalized as `new URL` does.
 * Plain targets (no dots, no escapes in the path) are split directly: parsing a URL is a
 * call into Rust that cost 3 % of the dispatcher's CPU per request.
 */
export function targetParts(target: string): { pathname: string; search: string } {
  if (PLAIN_TARGET.test(target)) {
    const q = target.indexOf("?");
    return q < 0
      ? { pathname: target, search: "" }
      : { pathname: target.slice(0, q), search: target.slice(q) };
  }
  const url = new URL(target, "http://localhost");
  return { pathname: url.pathname, search: url.search };
}

const encoder = new TextEncoder();
const CONTINUE = encoder.encode("HTTP/1.1 100 Continue\r\n\r\n");
const OVERLOADED_BODY = '{"error":"too many open connections"}';
const OVERLOADED = encoder.encode(
  "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n" +
    `connection: close\r\ncontent-length: ${OVERLOADED_BODY.length}\r\n\r\n${OVERLOADED_BODY}`,
);

/**
 * `length` bytes already buffered, taken even while a read started ahead is pending: that
 * read adds the bytes after these.
 */
function takeBuffered(c: WireReader, length: number): Uint8Array<ArrayBuffer> {
  const body = c.buf.slice(c.start, c.start + length);
  c.start += length;
  return body;
}

let dateSecond = 0;
let dateText = "";
/** The Date header's value, formatted once a second rather than for every answer. */
function httpDate(): string {
  const second = Math.floor(Date.now() / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(second * 1000).toUTCString();
  }
  return dateText;
}

const REASONS: Record<number, string> = {
  100: "Continue",
  101: "Switching Protocols",
  200: "OK",
  201: "Created",
  202: "Accepted",
  203: "Non-Authoritative Information",
  204: "No Content",
  205: "Reset Content",
  206: "Partial Content",
  207: "Multi-Status",
  300: "Multiple Choices",
  301: "Moved Permanently",
  302: "Found",
  303: "See Other",
  304: "Not Modified",
  307: "Temporary Redirect",
  308: "Permanent Redirect",
  400: "Bad Request",
  401: "Unauthorized",
  402: "Payment Required",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  406: "Not Acceptable",
  407: "Proxy Authentication Required",
  408: "Request Timeout",
  409: "Conflict",
  410: "Gone",
  411: "Length Required",
  412: "Precondition Failed",
  413: "Content Too Large",
  414: "URI Too Long",
  415: "Unsupported Media Type",
  416: "Range Not Satisfiable",
  417: "Expectation Failed",
  418: "I'm a teapot",
  421: "Misdirected Request",
  422: "Unprocessable Content",
  425: "Too Early",
  426: "Upgrade Required",
  428: "Precondition Required",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  451: "Unavailable For Legal Reasons",
  499: "Client Closed Request",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
};
