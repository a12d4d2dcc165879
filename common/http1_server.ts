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
 * HTTP/1.0; a request with both Content-Length and Transfer-Encoding, a bad length, an
 * unknown coding, folded or malformed headers or a missing Host is refused with 400 and the
 * connection closed (no request smuggling through F2S). No upgrades, no HTTP/2, no TLS (a
 * Kubernetes ingress terminates TLS in front of F2S).
 */

import { errorAnswer, type PlainAnswer } from "./protocol.ts";
import { type Deadline, type Deadlines, deadlines as sharedDeadlines } from "./deadlines.ts";
import {
  bodyStream,
  chunkFrame,
  encodeHead,
  type Framing,
  indexOfHeadEnd,
  LAST_CHUNK,
  MAX_HEAD,
  readHeadText,
  takeExactly,
  WireError,
  type WireReader,
} from "./http1_wire.ts";

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
  /** The answer when the handler throws (default: a bare 500). */
  onError?: (error: unknown) => ServerResponse;
  /** Idle keep-alive connections are closed after this long (ms). */
  idleTimeout?: number;
  /** A request head must arrive whole within this long once begun (ms). */
  headTimeout?: number;
  deadlines?: Deadlines;
}

export interface Http1Server {
  readonly addr: Deno.NetAddr;
  /** Stops accepting, closes idle connections, lets answers in progress finish. */
  shutdown(): Promise<void>;
  /** Resolves once the server has stopped and every connection is closed. */
  readonly finished: Promise<void>;
}

/** Request bodies up to this size with a known length are read whole before the handler. */
const SMALL_BODY = 64 * 1024;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Control characters other than tab are not allowed in a header value or the target. */
// deno-lint-ignore no-control-regex
const BAD_VALUE = /[\0-\x08\x0a-\x1f\x7f]/;
const BAD_TARGET = /[\0-\x20\x7f]/;
const DIGITS = /^\d{1,15}$/;

class RequestError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

interface Conn extends WireReader {
  tcp: Deno.TcpConn;
  remoteAddress: string;
  wbuf: Uint8Array;
  closed: boolean;
  /** Between a request's head and the end of its answer. */
  busy: boolean;
  onGone: (() => void)[];
}

interface RequestHead {
  method: string;
  target: string;
  headers: [string, string][];
  http10: boolean;
  framing: Framing | null;
  keepAlive: boolean;
  expectContinue: boolean;
}

export function serveHttp1(options: Http1ServerOptions, handler: ServerHandler): Http1Server {
  const deadlines = options.deadlines ?? sharedDeadlines;
  const idleTimeout = options.idleTimeout ?? 75_000;
  const headTimeout = options.headTimeout ?? 30_000;
  const onError = options.onError ?? (() => errorAnswer(500, "internal error"));
  const listener = Deno.listen({ hostname: options.hostname, port: options.port });
  const conns = new Set<Conn>();
  let stopping = false;
  let allClosed: (() => void) | undefined;

  function close(c: Conn) {
    if (c.closed) return;
    c.closed = true;
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
    read.then((n) => {
      if (n === null && c.busy) clientGone(c);
    }, () => {
      if (c.busy) clientGone(c);
    });
  }

  async function serveConn(c: Conn) {
    try {
      while (!c.closed && !stopping) {
        const head = await nextHead(c);
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
      close(c);
    }
  }

  /** The next request head; null when the client closes or stays idle too long. */
  async function nextHead(c: Conn): Promise<RequestHead | RequestError | null> {
    // Tolerate the blank lines some clients send after a body (RFC 9112 section 2.2).
    while (c.end - c.start >= 2 && c.buf[c.start] === 13 && c.buf[c.start + 1] === 10) {
      c.start += 2;
    }
    let timer: Deadline | undefined;
    if (c.pending || indexOfHeadEnd(c.buf, c.start, c.end) < 0) {
      const idle = c.start === c.end;
      timer = deadlines.after(idle ? idleTimeout : headTimeout, () => close(c));
    }
    try {
      const text = await readHeadText(c);
      if (text === null) return null;
      return parseRequestHead(text);
    } catch (e) {
      if (e instanceof RequestError) return e;
      if (e instanceof WireError) {
        // Too large, or the client closed mid-head (then there is no one to answer).
        return c.end - c.start > MAX_HEAD ? new RequestError(431, "request head too large") : null;
      }
      throw e;
    } finally {
      timer?.cancel();
    }
  }

  /** Handles one request; false when the connection must close afterwards. */
  async function answer(c: Conn, head: RequestHead): Promise<boolean> {
    c.busy = true;
    let bodyDone = head.framing === null;
    let bodyBroken = false;
    let body: ServerRequest["body"] = null;
    const sendContinue = async () => {
      if (head.expectContinue) await writeBytes(c, CONTINUE);
    };
    if (head.framing && !head.framing.chunked && head.framing.length! <= SMALL_BODY) {
      await sendContinue();
      const length = head.framing.length!;
      // A client sending its small body slowly gets as long as for a head.
      const timer = c.end - c.start < length
        ? deadlines.after(headTimeout, () => close(c))
        : undefined;
      try {
        body = await takeExactly(c, length);
      } finally {
        timer?.cancel();
      }
      bodyDone = true;
    } else if (head.framing) {
      body = bodyStream(c, head.framing, {
        start: sendContinue,
        end: () => {
          bodyDone = true;
          readAhead(c);
        },
        abort: () => {
          bodyBroken = true;
        },
      });
    }
    if (bodyDone) readAhead(c);
    const request: ServerRequest = {
      method: head.method,
      target: head.target,
      headers: head.headers,
      body,
      remoteAddress: c.remoteAddress,
      watchClient: (onGone) => {
        c.onGone.push(onGone);
        return () => {
          const i = c.onGone.indexOf(onGone);
          if (i >= 0) c.onGone.splice(i, 1);
        };
      },
    };
    let response: ServerResponse;
    try {
      const r = handler(request);
      response = r instanceof Promise ? await r : r;
    } catch (e) {
      response = onError(e);
    }
    // A body the handler left unread (or broke) leaves the connection at an unknown point.
    const keepAlive = head.keepAlive && !stopping && !bodyBroken &&
      (bodyDone || head.framing === null);
    if (!bodyDone && body instanceof ReadableStream) body.cancel().catch(() => {});
    const kept = await writeAnswer(c, head.method, head.http10, keepAlive, response);
    c.busy = false;
    c.onGone.length = 0;
    return kept && keepAlive && !c.closed;
  }

  async function writeBytes(c: Conn, data: Uint8Array) {
    let off = 0;
    while (off < data.length) off += await c.tcp.write(off === 0 ? data : data.subarray(off));
  }

  /** Writes the answer; false when the connection broke or must close. */
  async function writeAnswer(
    c: Conn,
    method: string,
    http10: boolean,
    keepAlive: boolean,
    res: ServerResponse,
  ): Promise<boolean> {
    const status = res.status;
    let head = `HTTP/1.1 ${status} ${REASONS[status] ?? ""}\r\n`;
    let declared: string | undefined;
    let hasDate = false;
    for (const [name, value] of res.headers) {
      switch (name) {
        case "content-length":
          declared = value;
          continue;
        case "transfer-encoding":
        case "connection":
        case "keep-alive":
          continue;
        case "date":
          hasDate = true;
      }
      head += `${name}: ${value}\r\n`;
    }
    if (!hasDate) head += `date: ${httpDate()}\r\n`;
    const bodyAllowed = status >= 200 && status !== 204 && status !== 304;
    const sendBody = bodyAllowed && method !== "HEAD";
    let body = res.body;
    let mode: "none" | "bytes" | "length" | "chunked" | "close" = "none";
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
    head += "\r\n";

    const bytes = mode === "bytes" ? body as Uint8Array : undefined;
    const { buf, written } = encodeHead(head, c.wbuf, bytes?.length ?? 0);
    if (buf.length <= SMALL_BODY) c.wbuf = buf;
    try {
      if (bytes && written + bytes.length <= buf.length) {
        buf.set(bytes, written);
        await writeBytes(c, buf.subarray(0, written + bytes.length));
      } else {
        await writeBytes(c, buf.subarray(0, written));
        if (bytes) await writeBytes(c, bytes);
      }
      if (body instanceof ReadableStream) {
        const complete = await writeStream(c, body, mode, mode === "length" ? Number(declared) : 0);
        if (!complete) return false;
      }
    } catch {
      if (body instanceof ReadableStream) body.cancel().catch(() => {});
      close(c);
      return false;
    }
    return keepAlive;
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

  const accepting = (async () => {
    for await (const tcp of listener) {
      if (stopping) {
        tcp.close();
        continue;
      }
      try {
        tcp.setNoDelay(true);
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
        remoteAddress: (tcp.remoteAddr as Deno.NetAddr).hostname,
        closed: false,
        busy: false,
        onGone: [],
      };
      conns.add(c);
      serveConn(c);
    }
  })().catch(() => {});

  let finishedResolve!: () => void;
  const finished = new Promise<void>((resolve) => finishedResolve = resolve);
  let shutdownPromise: Promise<void> | undefined;

  return {
    addr: listener.addr as Deno.NetAddr,
    finished,
    shutdown() {
      shutdownPromise ??= (async () => {
        stopping = true;
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

function parseRequestHead(text: string): RequestHead {
  let lineEnd = text.indexOf("\r\n");
  if (lineEnd < 0) lineEnd = text.length;
  const line = text.slice(0, lineEnd);
  const sp1 = line.indexOf(" ");
  const sp2 = line.indexOf(" ", sp1 + 1);
  if (sp1 <= 0 || sp2 < 0 || line.indexOf(" ", sp2 + 1) >= 0) {
    throw new RequestError(400, "malformed request line");
  }
  const method = line.slice(0, sp1);
  const target = line.slice(sp1 + 1, sp2);
  const version = line.slice(sp2 + 1);
  if (!TOKEN.test(method)) throw new RequestError(400, "malformed method");
  if (target.length === 0 || BAD_TARGET.test(target)) {
    throw new RequestError(400, "malformed request target");
  }
  if (version !== "HTTP/1.1" && version !== "HTTP/1.0") {
    if (/^HTTP\/\d/.test(version)) throw new RequestError(505, "only HTTP/1.x is served here");
    throw new RequestError(400, "malformed request line");
  }
  const http10 = version === "HTTP/1.0";
  const headers: [string, string][] = [];
  let length: string | undefined;
  let coding: string | undefined;
  let connection = "";
  let hosts = 0;
  let expectContinue = false;
  while (lineEnd < text.length) {
    const lineStart = lineEnd + 2;
    lineEnd = text.indexOf("\r\n", lineStart);
    if (lineEnd < 0) lineEnd = text.length;
    const colon = text.indexOf(":", lineStart);
    if (colon <= lineStart || colon > lineEnd) throw new RequestError(400, "malformed header line");
    const name = text.slice(lineStart, colon).toLowerCase();
    // Also refuses folded lines and space before the colon (RFC 9112 section 5).
    if (!TOKEN.test(name)) throw new RequestError(400, "malformed header name");
    let from = colon + 1;
    let to = lineEnd;
    while (from < to && isBlank(text.charCodeAt(from))) from++;
    while (to > from && isBlank(text.charCodeAt(to - 1))) to--;
    const value = text.slice(from, to);
    if (BAD_VALUE.test(value)) throw new RequestError(400, `bad characters in header ${name}`);
    switch (name) {
      case "content-length":
        if (!DIGITS.test(value) || (length !== undefined && length !== value)) {
          throw new RequestError(400, "bad content-length");
        }
        length = value;
        break;
      case "transfer-encoding":
        coding = coding === undefined ? value : `${coding}, ${value}`;
        break;
      case "connection":
        connection += connection ? `, ${value.toLowerCase()}` : value.toLowerCase();
        break;
      case "host":
        hosts++;
        break;
      case "expect":
        if (value.toLowerCase() === "100-continue") expectContinue = true;
        break;
    }
    headers.push([name, value]);
  }
  if (hosts > 1 || (hosts === 0 && !http10)) throw new RequestError(400, "one Host header needed");
  let framing: Framing | null = null;
  if (coding !== undefined) {
    if (length !== undefined || http10) {
      throw new RequestError(400, "transfer-encoding with content-length or HTTP/1.0");
    }
    if (coding.toLowerCase().trim() !== "chunked") {
      throw new RequestError(501, `transfer-encoding "${coding}" is not supported`);
    }
    framing = { chunked: true, length: undefined };
  } else if (length !== undefined && length !== "0") {
    framing = { chunked: false, length: Number(length) };
  }
  const keepAlive = http10 ? /\bkeep-alive\b/.test(connection) : !/\bclose\b/.test(connection);
  return { method, target, headers, http10, framing, keepAlive, expectContinue };
}

const isBlank = (c: number) => c === 32 || c === 9;

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
