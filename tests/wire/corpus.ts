/**
 * Raw request bytes and what F2S's HTTP/1.1 server must answer to each: the statuses of
 * the answers in order (a 100 Continue counts), an empty list when the connection closes
 * without one. The client half-closes after sending, so "waiting for more" shows up as a
 * close without an answer rather than a hang. Strings are bytes: one character per byte.
 */

export interface Case {
  name: string;
  bytes: string;
  expect: number[];
}

const CRLF = "\r\n";
/** A request head from lines (request line first) and a body. */
const req = (lines: string[], body = "") => lines.join(CRLF) + CRLF + CRLF + body;
const get = (target = "/", extra: string[] = []) =>
  req([`GET ${target} HTTP/1.1`, "Host: h", ...extra]);
const post = (extra: string[], body: string) =>
  req(["POST /p HTTP/1.1", "Host: h", ...extra], body);
const chunked = (body: string, extra: string[] = []) =>
  post(["Transfer-Encoding: chunked", ...extra], body);
const withHost = (host: string) => req(["GET / HTTP/1.1", `Host: ${host}`]);
const withHeader = (line: string) => req(["GET / HTTP/1.1", "Host: h", line]);
const smuggled = get("/admin", ["X-F2S-Caller: admin"]);

const ok: [string, string][] = [
  ["plain GET", get()],
  ["GET with query", get("/a/b?x=1&y=%20")],
  ["GET with fragment-free odd path", get("/a;b=c/%7E/~x")],
  ["POST with Content-Length", post(["Content-Length: 5"], "hello")],
  ["POST chunked", chunked("5\r\nhello\r\n0\r\n\r\n")],
  ["chunked, extension", chunked("5;a=b\r\nhello\r\n0\r\n\r\n")],
  ["chunked, extension without value", chunked("5;ext\r\nhello\r\n0\r\n\r\n")],
  ["chunked, quoted extension", chunked('5;a="b c"\r\nhello\r\n0\r\n\r\n')],
  ["chunked, trailers", chunked("5\r\nhello\r\n0\r\nX-T: 1\r\nX-U: 2\r\n\r\n")],
  ["chunked, uppercase hex size", chunked("A\r\n0123456789\r\n0\r\n\r\n")],
  ["chunked, lowercase hex size", chunked("a\r\n0123456789\r\n0\r\n\r\n")],
  ["chunked, size with leading zeros", chunked("0005\r\nhello\r\n0\r\n\r\n")],
  ["chunked, many one-byte chunks", chunked("1\r\na\r\n".repeat(40) + "0\r\n\r\n")],
  ["chunked, empty body", chunked("0\r\n\r\n")],
  ["Transfer-Encoding: Chunked (case)", post(["Transfer-Encoding: Chunked"], "0\r\n\r\n")],
  ["Transfer-Encoding without space", post(["Transfer-Encoding:chunked"], "0\r\n\r\n")],
  ["HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n"],
  ["HTTP/1.0 with a body", req(["POST / HTTP/1.0", "Content-Length: 3"], "abc")],
  ["HEAD", req(["HEAD / HTTP/1.1", "Host: h"])],
  ["OPTIONS *", req(["OPTIONS * HTTP/1.1", "Host: h"])],
  ["absolute-form target", req(["GET http://h/p?q=1 HTTP/1.1", "Host: h"])],
  ["absolute-form target, other Host", req(["GET http://a/p HTTP/1.1", "Host: b"])],
  ["absolute-form without path", req(["GET http://h HTTP/1.1", "Host: h"])],
  ["Connection: close", get("/", ["Connection: close"])],
  ["one leading CRLF before the request line", CRLF + get()],
  ["obs-text in a header value", withHeader("X-A: caf\xe9 \xff\xfe")],
  ["byte 0x9B in a header value", withHeader("X-A: a\x9bb")],
  ["bytes 0x80-0x9F in a header value", withHeader("X-A: \x80\x85\x8d\x90\x9d\x9f")],
  ["tab inside a header value", withHeader("X-A: a\tb")],
  ["empty header value", withHeader("X-A:")],
  ["header value with surrounding blanks", withHeader("X-A: \t spaced \t ")],
  ["odd but valid header name", withHeader("x!#$%&'*+-.^_`|~9: v")],
  ["repeated header", req(["GET / HTTP/1.1", "Host: h", "X-A: 1", "X-A: 2"])],
  ["Host with port", withHost("h:8080")],
  ["Host IPv4", withHost("10.0.0.1")],
  ["Host IPv6 literal", withHost("[::1]:80")],
  ["Host with sub-delims", withHost("a-b.c_d~e")],
  ["Content-Length with leading zeros", post(["Content-Length: 005"], "hello")],
  ["Content-Length with trailing blank", post(["Content-Length: 5 "], "hello")],
  ["Content-Length: 0", post(["Content-Length: 0"], "")],
  ["GET with a Content-Length body", get("/", ["Content-Length: 5"]) + "hello"],
  [
    "GET whose body is a whole request",
    get("/", [`Content-Length: ${smuggled.length}`]) + smuggled,
  ],
  [
    "GET with a chunked body",
    req(["GET / HTTP/1.1", "Host: h", "Transfer-Encoding: chunked"], "3\r\nabc\r\n0\r\n\r\n"),
  ],
  ["HEAD with a body", req(["HEAD / HTTP/1.1", "Host: h", "Content-Length: 3"], "abc")],
  ["DELETE with a body", req(["DELETE /x HTTP/1.1", "Host: h", "Content-Length: 2"], "{}")],
  ["large header value (40 KiB)", withHeader("X-Big: " + "b".repeat(40 * 1024))],
  ["target with a fragment", get("/a#frag")],
  ["target starting with //", get("//%")],
  ["target with dot segments", get("/a/../f2s/health")],
];

const pipelined: [string, string, number[]][] = [
  ["two pipelined GETs", get("/1") + get("/2"), [200, 200]],
  [
    "three pipelined with bodies",
    post(["Content-Length: 1"], "a") + chunked("1\r\nb\r\n0\r\n\r\n") + get(),
    [200, 200, 200],
  ],
  ["body exactly its length, then a request", post(["Content-Length: 5"], "hello") + get("/next"), [
    200,
    200,
  ]],
  ["chunked, then a request", chunked("5\r\nhello\r\n0\r\n\r\n") + get("/next"), [200, 200]],
  ["GET without length, then body-looking bytes", get() + "hello", [200]],
  [
    "good request, then CL.TE",
    get() + post(["Content-Length: 6", "Transfer-Encoding: chunked"], "0\r\n\r\nG"),
    [200, 400],
  ],
  ["good request, then a bare-LF head", get() + "GET / HTTP/1.1\nHost: h\n\n", [200, 400]],
  ["good request, then HTTP/0.9", get() + "GET /\r\n", [200, 400]],
  ["good request, then a bad chunk size", get() + chunked(" 5\r\nhello\r\n0\r\n\r\n"), [200, 400]],
  ["good request, then an incomplete one", get() + "GET / HTTP/1.1\r\nHost: h\r\n", [200]],
  ["CRLF between pipelined requests", get() + CRLF + get(), [200, 200]],
  ["Expect: 100-continue", post(["Content-Length: 5", "Expect: 100-continue"], "hello"), [
    100,
    200,
  ]],
  ["Expect: 100-continue, chunked", chunked("5\r\nhello\r\n0\r\n\r\n", ["Expect: 100-continue"]), [
    100,
    200,
  ]],
];

const refused: [string, string, number][] = [
  // Content-Length / Transfer-Encoding smuggling
  ["CL.TE", post(["Content-Length: 6", "Transfer-Encoding: chunked"], "0\r\n\r\nG"), 400],
  [
    "TE.CL",
    post(["Transfer-Encoding: chunked", "Content-Length: 3"], "8\r\nSMUGGLED\r\n0\r\n\r\n"),
    400,
  ],
  [
    "two different Content-Lengths",
    post(["Content-Length: 5", "Content-Length: 6"], "hello!"),
    400,
  ],
  ["two equal Content-Lengths", post(["Content-Length: 5", "Content-Length: 5"], "hello"), 400],
  ["Content-Length list", post(["Content-Length: 5, 5"], "hello"), 400],
  ["Content-Length negative", post(["Content-Length: -5"], "hello"), 400],
  ["Content-Length with plus", post(["Content-Length: +5"], "hello"), 400],
  ["Content-Length hex", post(["Content-Length: 0x5"], "hello"), 400],
  ["Content-Length overflowing", post(["Content-Length: 99999999999999999999"], "x"), 400],
  ["Content-Length with inner space", post(["Content-Length: 5 5"], "hello"), 400],
  ["Content-Length empty", post(["Content-Length:"], ""), 400],
  ["Content-Length with \\x0b", post(["Content-Length: \x0b5"], "hello"), 400],
  [
    "Transfer-Encoding chunked, identity",
    post(["Transfer-Encoding: chunked, identity"], "0\r\n\r\n"),
    501,
  ],
  [
    "Transfer-Encoding identity",
    post(["Transfer-Encoding: identity", "Content-Length: 1"], "a"),
    400,
  ],
  ["Transfer-Encoding xchunked", post(["Transfer-Encoding: xchunked"], "0\r\n\r\n"), 501],
  ["Transfer-Encoding gzip, chunked", post(["Transfer-Encoding: gzip, chunked"], "0\r\n\r\n"), 501],
  [
    "Transfer-Encoding twice",
    post(["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"], "0\r\n\r\n"),
    501,
  ],
  [
    "Transfer-Encoding chunked then x",
    post(["Transfer-Encoding: chunked", "Transfer-Encoding: x"], "0\r\n\r\n"),
    501,
  ],
  [
    "Transfer-Encoding in HTTP/1.0",
    req(["POST / HTTP/1.0", "Transfer-Encoding: chunked"], "0\r\n\r\n"),
    400,
  ],
  ["Transfer-Encoding with \\x0b", post(["Transfer-Encoding: \x0bchunked"], "0\r\n\r\n"), 400],
  ["Transfer-Encoding obs-folded", post(["Transfer-Encoding:", " chunked"], "0\r\n\r\n"), 400],
  ["space before the colon (TE)", post(["Transfer-Encoding : chunked"], "0\r\n\r\n"), 400],
  ["tab before the colon (TE)", post(["Transfer-Encoding\t: chunked"], "0\r\n\r\n"), 400],
  ["space before the colon (CL)", post(["Content-Length : 5"], "hello"), 400],
  [
    "first header line folded",
    req(["POST / HTTP/1.1", " Transfer-Encoding: chunked", "Host: h"], "0\r\n\r\n"),
    400,
  ],
  // Header syntax
  ["obs-fold in an ordinary header", req(["GET / HTTP/1.1", "Host: h", "X-A: a", " b"]), 400],
  ["NUL in a header value", withHeader("X-A: a\0b"), 400],
  ["NUL in a header name", withHeader("X-\0A: b"), 400],
  ["space inside a header name", withHeader("X A: b"), 400],
  ["header line without a colon", withHeader("X-A"), 400],
  ["empty header name", withHeader(": b"), 400],
  ["bare CR in a header value", withHeader("X-A: a\rb"), 400],
  ["\\x7f in a header value", withHeader("X-A: a\x7fb"), 400],
  ["\\x01 in a header value", withHeader("X-A: a\x01b"), 400],
  ["non-token header name", withHeader("X(A): b"), 400],
  ["header name with \\x80", withHeader("X-\x80: b"), 400],
  // Line endings
  ["bare-LF head", "GET / HTTP/1.1\nHost: h\n\n", 400],
  ["bare LF ending the head", "GET / HTTP/1.1\r\nHost: h\r\n\n", 400],
  ["bare LF in one header line", "GET / HTTP/1.1\r\nHost: h\nX-A: b\r\n\r\n", 400],
  ["bare LF after the request line", "GET / HTTP/1.1\nHost: h\r\n\r\n", 400],
  ["leading bare LF", "\n" + get(), 400],
  ["HTTP/0.9 request line", "GET /\r\n", 400],
  ["HTTP/0.9 with a blank line", "GET /\r\n\r\n", 400],
  // Request line
  ["HTTP/2.0 version", req(["GET / HTTP/2.0", "Host: h"]), 505],
  ["HTTP/1.2 version", req(["GET / HTTP/1.2", "Host: h"]), 505],
  ["lower-case version", req(["GET / http/1.1", "Host: h"]), 400],
  ["version with trailing space", req(["GET / HTTP/1.1 ", "Host: h"]), 400],
  ["double space after method", req(["GET  / HTTP/1.1", "Host: h"]), 400],
  ["tab as separator", req(["GET\t/ HTTP/1.1", "Host: h"]), 400],
  ["method with @", req(["G@T / HTTP/1.1", "Host: h"]), 400],
  ["empty method", req([" / HTTP/1.1", "Host: h"]), 400],
  ["target not in origin form", req(["GET foo HTTP/1.1", "Host: h"]), 400],
  ["authority-form CONNECT", req(["CONNECT h:443 HTTP/1.1", "Host: h"]), 400],
  ["asterisk target for GET", req(["GET * HTTP/1.1", "Host: h"]), 400],
  ["DEL in the target", req(["GET /a\x7fb HTTP/1.1", "Host: h"]), 400],
  ["NUL in the target", req(["GET /a\0b HTTP/1.1", "Host: h"]), 400],
  ["request line too long", req([`GET /${"a".repeat(9000)} HTTP/1.1`, "Host: h"]), 414],
  [
    "head too large",
    req(["GET / HTTP/1.1", "Host: h", ...Array(40).fill("X-B: " + "b".repeat(2000))]),
    431,
  ],
  // Host
  ["no Host in HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", 400],
  ["two Hosts", req(["GET / HTTP/1.1", "Host: a", "Host: b"]), 400],
  ["two equal Hosts", req(["GET / HTTP/1.1", "Host: a", "Host: a"]), 400],
  ["empty Host", withHost(""), 400],
  ["Host with a path", withHost("x/admin?"), 400],
  ["Host with a query", withHost("x?y"), 400],
  ["Host with a fragment", withHost("x#y"), 400],
  ["Host with userinfo", withHost("u@h"), 400],
  ["Host with a space", withHost("a b"), 400],
  ["Host with a bad port", withHost("h:http"), 400],
  ["Host with \\x80", withHost("h\x80"), 400],
  ["Host with a backslash", withHost("h\\x"), 400],
  // Chunk sizes
  ["chunk size with a leading space", chunked(" 5\r\nhello\r\n0\r\n\r\n"), 400],
  ["chunk size with a leading tab", chunked("\t5\r\nhello\r\n0\r\n\r\n"), 400],
  ["chunk size with \\x0b", chunked("\x0b5\r\nhello\r\n0\r\n\r\n"), 400],
  ["chunk size with \\xa0", chunked("\xa05\r\nhello\r\n0\r\n\r\n"), 400],
  ["chunk size 0x5", chunked("0x5\r\nhello\r\n0\r\n\r\n"), 400],
  ["chunk size +5", chunked("+5\r\nhello\r\n0\r\n\r\n"), 400],
  ["chunk size -5", chunked("-5\r\nhello\r\n0\r\n\r\n"), 400],
  ["chunk size overflowing", chunked("ffffffffffffffffff\r\nhello\r\n0\r\n\r\n"), 400],
  ["chunk size 2^64+5", chunked("10000000000000005\r\nhello\r\n0\r\n\r\n"), 400],
  ["chunk size with an underscore", chunked("1_0\r\n0123456789abcdef\r\n0\r\n\r\n"), 400],
  ["chunk size empty", chunked("\r\nhello\r\n0\r\n\r\n"), 400],
  ["chunk size with a trailing space", chunked("5 \r\nhello\r\n0\r\n\r\n"), 400],
  ["chunk size not hex", chunked("g\r\nhello\r\n0\r\n\r\n"), 400],
  ["chunk size line ending in bare LF", chunked("5\nhello\r\n0\r\n\r\n"), 400],
  ["chunk data longer than its size", chunked("3\r\nhello\r\n0\r\n\r\n"), 400],
  ["chunk data shorter than its size", chunked("5\r\nhel\r\n0\r\n\r\n"), 400],
  ["no CRLF after chunk data", chunked("5\r\nhello0\r\n\r\n"), 400],
  ["bare LF after chunk data", chunked("5\r\nhello\n0\r\n\r\n"), 400],
  ["last chunk ending in bare LF", chunked("5\r\nhello\r\n0\n\r\n"), 400],
  ["bare LF ending the trailers", chunked("5\r\nhello\r\n0\r\n\n"), 400],
  ["trailer line ending in bare LF", chunked("0\r\nX-T: 1\n\r\n"), 400],
  ["malformed trailer line", chunked("0\r\nnot a trailer\r\n\r\n"), 400],
  ["chunk extension with a control byte", chunked("5;a\x01\r\nhello\r\n0\r\n\r\n"), 400],
  ["chunk extension after a space", chunked("5 ;a=b\r\nhello\r\n0\r\n\r\n"), 400],
  ["chunk extension with a bare CR", chunked("5;a\rb\r\nhello\r\n0\r\n\r\n"), 400],
  ["second chunk size bad", chunked("5\r\nhello\r\n+5\r\nworld\r\n0\r\n\r\n"), 400],
];

const closed: [string, string][] = [
  ["nothing sent", ""],
  ["only CRLF", CRLF],
  ["request line cut short", "GET / HT"],
  ["head cut short", "GET / HTTP/1.1\r\nHost: h\r\n"],
  ["body shorter than its length", post(["Content-Length: 10"], "hello")],
  ["chunked without the last chunk", chunked("5\r\nhello\r\n")],
  ["chunked cut in a size line", chunked("5\r\nhello\r\n1")],
  ["chunked cut in the trailers", chunked("5\r\nhello\r\n0\r\nX-T: 1\r\n")],
];

export const CORPUS: Case[] = [
  ...ok.map(([name, bytes]) => ({ name, bytes, expect: [200] })),
  ...pipelined.map(([name, bytes, expect]) => ({ name, bytes, expect })),
  ...refused.map(([name, bytes, status]) => ({ name, bytes, expect: [status] })),
  ...closed.map(([name, bytes]) => ({ name, bytes, expect: [] })),
];

/** The corpus string as bytes, one byte per character. */
export function bytesOf(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}
