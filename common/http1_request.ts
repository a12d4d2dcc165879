/**
 * What common/http1_server.ts accepts as a request head, and what it refuses (RFC 9112,
 * at least as strict as nginx and Node's llhttp; the list is in docs/configuration.md#the-http-server).
 * A head is checked as its bytes arrive: a bare LF or a malformed request line is refused
 * at once, not after a timeout, and bytes are decoded one character per byte so that what
 * is forwarded is exactly what was received.
 */

import {
  decodeLatin1,
  type Framing,
  indexOfHeadEnd,
  MAX_HEAD,
  TOKEN,
  type WireReader,
} from "./http1_wire.ts";

/** A request that is refused with `status` (the connection closes after the answer). */
export class RequestError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export interface RequestHead {
  method: string;
  target: string;
  headers: [string, string][];
  http10: boolean;
  framing: Framing | null;
  keepAlive: boolean;
  expectContinue: boolean;
}

/** Longest request line, as nginx's default `large_client_header_buffers` (then 414). */
const MAX_REQUEST_LINE = 8 * 1024;
/** Control characters other than tab are not allowed in a header value. */
// deno-lint-ignore no-control-regex
const BAD_VALUE = /[\0-\x08\x0a-\x1f\x7f]/;
const BAD_TARGET = /[\0-\x20\x7f]/;
const DIGITS = /^\d{1,15}$/;
/**
 * RFC 9110 section 7.2: uri-host [ ":" port ], uri-host an IP literal, an IPv4 address
 * or a reg-name (unreserved, percent-encoded or sub-delims). No "/", "?", "#", "@" or
 * blanks: a Host never carries a path into anything built from it.
 */
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|(?:[\w\-.~!$&'()*+,;=]|%[0-9A-Fa-f]{2})+)(?::\d{1,5})?$/;
/** absolute-form (RFC 9112 section 3.2.2): accepted, as a server must. */
const ABSOLUTE = /^https?:\/\/[^/?#]+(?:[/?]|$)/i;

const LF = 10;
const CR = 13;

/** How far a request head has been checked while its bytes arrive (see scanRequestHead). */
export interface HeadScan {
  /** Bytes past the reader's start already checked for bare LFs and the head's end. */
  seen: number;
  /** The request line was whole and has been checked. */
  lineChecked: boolean;
}

export function newHeadScan(): HeadScan {
  return { seen: 0, lineChecked: false };
}

/**
 * The next request head as text (without its blank line) if it is all buffered, else
 * undefined: read more into the buffer and call again with the same `scan`. Synchronous, so
 * a server loop awaits only its reads (no async layer per request). Empty lines before the
 * request line are skipped (RFC 9112 section 2.2). Throws a RequestError for a head that can
 * already be refused (bare LF, bad request line, too large). `scan.seen` is relative to
 * `r.start`, so it stays right when readMore moves the buffered bytes.
 */
export function scanRequestHead(r: WireReader, scan: HeadScan): string | undefined {
  while (r.end - r.start >= 2 && r.buf[r.start] === CR && r.buf[r.start + 1] === LF) {
    r.start += 2;
    scan.seen = scan.seen > 2 ? scan.seen - 2 : 0;
  }
  const scanned = r.start + scan.seen;
  const at = indexOfHeadEnd(r.buf, Math.max(r.start, scanned - 3), r.end);
  const end = at >= 0 ? at + 2 : r.end;
  // Every LF must end a CRLF: parsers that also take a bare LF would frame differently.
  const live = r.buf.subarray(0, end);
  for (let i = live.indexOf(LF, scanned); i >= 0; i = live.indexOf(LF, i + 1)) {
    if (i === r.start || live[i - 1] !== CR) {
      throw new RequestError(400, "bare LF in request head");
    }
  }
  if (at >= 0) {
    if (at - r.start > MAX_HEAD) throw new RequestError(431, "request head too large");
    const text = decodeLatin1(r.buf.subarray(r.start, at));
    r.start = at + 4;
    scan.seen = 0;
    scan.lineChecked = false;
    return text;
  }
  if (!scan.lineChecked) {
    // A request line known to be bad (HTTP/0.9, say) is refused without waiting for more.
    const eol = live.indexOf(CR, r.start);
    if (eol >= 0 && eol + 1 < r.end) {
      parseRequestLine(decodeLatin1(r.buf.subarray(r.start, eol)));
      scan.lineChecked = true;
    } else if (r.end - r.start > MAX_REQUEST_LINE) {
      throw new RequestError(414, "request line too long");
    }
  }
  if (r.end - r.start > MAX_HEAD) throw new RequestError(431, "request head too large");
  scan.seen = r.end - r.start;
  return undefined;
}

interface RequestLine {
  method: string;
  target: string;
  http10: boolean;
}

export function parseRequestLine(line: string): RequestLine {
  if (line.length > MAX_REQUEST_LINE) throw new RequestError(414, "request line too long");
  const sp1 = line.indexOf(" ");
  const sp2 = line.indexOf(" ", sp1 + 1);
  if (sp1 <= 0 || sp2 < 0 || line.indexOf(" ", sp2 + 1) >= 0) {
    throw new RequestError(400, "malformed request line");
  }
  const method = line.slice(0, sp1);
  const target = line.slice(sp1 + 1, sp2);
  const version = line.slice(sp2 + 1);
  if (!TOKEN.test(method)) throw new RequestError(400, "malformed method");
  if (version !== "HTTP/1.1" && version !== "HTTP/1.0") {
    if (/^HTTP\/\d\.\d$/.test(version)) {
      throw new RequestError(505, "only HTTP/1.x is served here");
    }
    throw new RequestError(400, "malformed request line");
  }
  if (target.length === 0 || BAD_TARGET.test(target)) {
    throw new RequestError(400, "malformed request target");
  }
  // origin-form, absolute-form, or "*" for OPTIONS; authority-form (CONNECT) is not served.
  if (
    target[0] !== "/" && !ABSOLUTE.test(target) && !(target === "*" && method === "OPTIONS")
  ) {
    throw new RequestError(400, "malformed request target");
  }
  return { method, target, http10: version === "HTTP/1.0" };
}

export function parseRequestHead(text: string): RequestHead {
  let lineEnd = text.indexOf("\r\n");
  if (lineEnd < 0) lineEnd = text.length;
  const { method, target, http10 } = parseRequestLine(text.slice(0, lineEnd));
  const headers: [string, string][] = [];
  let length: string | undefined;
  let coding: string | undefined;
  let connection = "";
  let host: string | undefined;
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
        // One, and only digits: a second one (even equal) is how smuggling starts.
        if (!DIGITS.test(value) || length !== undefined) {
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
        host = value;
        hosts++;
        break;
      case "expect":
        if (value.toLowerCase() === "100-continue") expectContinue = true;
        break;
    }
    headers.push([name, value]);
  }
  if (hosts > 1 || (hosts === 0 && !http10)) throw new RequestError(400, "one Host header needed");
  if (host !== undefined && !(host === "" && http10) && !HOST.test(host)) {
    throw new RequestError(400, "bad Host header");
  }
  let framing: Framing | null = null;
  if (coding !== undefined) {
    if (length !== undefined || http10) {
      throw new RequestError(400, "transfer-encoding with content-length or HTTP/1.0");
    }
    if (coding.toLowerCase() !== "chunked") {
      throw new RequestError(501, `transfer-encoding "${coding}" is not supported`);
    }
    framing = { chunked: true, length: undefined };
  } else if (length !== undefined && Number(length) > 0) {
    framing = { chunked: false, length: Number(length) };
  }
  const keepAlive = http10 ? /\bkeep-alive\b/.test(connection) : !/\bclose\b/.test(connection);
  return { method, target, headers, http10, framing, keepAlive, expectContinue };
}

const isBlank = (c: number) => c === 32 || c === 9;
