/**
 * Forwards one request to one instance's fizzlet over pooled keep-alive HTTP/1.1
 * connections (common/http1.ts) and hands back the answer, streaming. A failure that
 * common/delivery.ts lets the dispatcher send elsewhere (the instance refused the
 * connection, nothing was written, an idempotent request broke off unanswered, or the
 * fizzlet says its app never got it) is a NotDeliveredError; every other failure may have
 * run the function and is never retried.
 *
 * Why not fetch: it leaves Nagle's algorithm on (streamed uploads crawl), decompresses gzip
 * answers while keeping their Content-Encoding, and costs more per request.
 */

import { type Deadlines, deadlines as sharedDeadlines } from "../common/deadlines.ts";
import { NOT_DELIVERED_HEADER, NotDeliveredError } from "../common/delivery.ts";
import { createHttp1Client, type Http1Client } from "../common/http1.ts";
import type { ServerRequest } from "../common/http1_server.ts";
import { readUpTo } from "../common/read_limited.ts";
import {
  connectionNamed,
  FIZZLET_PATHS,
  forwardedResponseHeaders,
  headerValue,
  NOT_FORWARDED,
  REQUEST_ID_HEADER,
} from "../common/protocol.ts";

/** The http_timeout or request_timeout passed (message says which). */
export class UpstreamTimeoutError extends Error {}

/** The client went away before the answer was complete. */
export class ClientGoneError extends Error {}

/** A request body: bytes in memory (small, known length) or the caller's stream. */
export type ForwardBody = Uint8Array<ArrayBuffer> | ReadableStream<Uint8Array> | null;

/** Small bodies with a known length are read at once: cheaper, and sent with the head. */
export async function requestBody(
  req: ServerRequest,
  bufferLimit = 256 * 1024,
): Promise<ForwardBody> {
  const body = req.body;
  if (body === null || body instanceof Uint8Array) return body as ForwardBody;
  const length = Number(headerValue(req.headers, "content-length") ?? NaN);
  if (Number.isFinite(length) && length <= bufferLimit) {
    const whole = await readUpTo(body, length);
    if (whole === null || whole.length !== length) {
      throw new Error(`the body did not match its content-length of ${length}`);
    }
    return whole;
  }
  return body;
}

export interface ForwardOptions {
  requestId: string;
  /** The exchange's controller: timeouts and the client going away abort it. */
  exchange: AbortController;
  /** Time allowed until the response headers arrive. */
  httpTimeout: number;
  clientAddress?: string;
  protocol?: string;
  /** Replaces the caller's credentials with its identity (see DispatchOptions.caller). */
  caller?: { name: string; group: string };
}

export interface ForwardedResponse {
  status: number;
  /** Header pairs as received, minus hop-by-hop ones, with our request id. */
  headers: [string, string][];
  body: Uint8Array<ArrayBuffer> | ReadableStream<Uint8Array> | null;
}

export interface Forwarder {
  /** Sends the request to `base` (an instance's http://host:port) at `target` (path + query). */
  forward(
    base: string,
    target: string,
    req: ServerRequest,
    body: ForwardBody,
    options: ForwardOptions,
  ): Promise<ForwardedResponse>;
  /** Asks the instance's fizzlet whether it is ready (GET /f2s/ready answers 200). */
  ready(base: string, signal: AbortSignal): Promise<boolean>;
  /**
   * Connects to the instance at `base` through this Unix socket instead (a fizzlet of
   * `f2s dev` serves on both: on one machine the socket costs less CPU per request).
   */
  viaSocket(base: string, path: string): void;
  /** Drops the pooled connections to an instance that is gone. */
  forget(base: string): void;
  close(): void;
}

const NULL_BODY_STATUS = new Set([204, 205, 304]);

export function createForwarder(deadlines: Deadlines = sharedDeadlines): Forwarder {
  const clients = new Map<string, Http1Client>();
  const sockets = new Map<string, string>();

  function clientFor(base: string): Http1Client {
    let client = clients.get(base);
    if (!client) {
      const url = new URL(base);
      client = createHttp1Client(Number(url.port || 80), {
        hostname: url.hostname,
        path: sockets.get(base),
        deadlines,
      });
      clients.set(base, client);
    }
    return client;
  }

  return {
    async forward(base, target, req, body, options) {
      const signal = options.exchange.signal;
      const timer = deadlines.after(
        options.httpTimeout,
        () => options.exchange.abort(new UpstreamTimeoutError("http_timeout")),
      );
      try {
        const res = await clientFor(base).request({
          method: req.method,
          target,
          headers: upstreamHeaders(req, base, body, options),
          body,
          signal,
        });
        let resBody = res.body;
        if (headerValue(res.headers, NOT_DELIVERED_HEADER) !== undefined) {
          if (resBody instanceof ReadableStream) await resBody.cancel();
          // Written to the fizzlet (a streamed body is spent), but its app never got it.
          throw new NotDeliveredError(
            `the instance's app did not get the request (fizzlet answered ${res.status})`,
            true,
          );
        }
        if (resBody !== null && NULL_BODY_STATUS.has(res.status)) {
          if (resBody instanceof ReadableStream) await resBody.cancel();
          resBody = null;
        }
        return {
          status: res.status,
          headers: forwardedResponseHeaders(
            res.headers,
            options.requestId,
            resBody instanceof Uint8Array,
          ),
          body: resBody,
        };
      } catch (e) {
        if (signal.aborted) throw signal.reason ?? e;
        throw e;
      } finally {
        timer.cancel();
      }
    },
    async ready(base, signal) {
      try {
        const res = await clientFor(base).request({
          method: "GET",
          target: FIZZLET_PATHS.ready,
          headers: [["host", base.replace(/^https?:\/\//, "")]],
          body: null,
          signal,
        });
        if (res.body instanceof ReadableStream) await res.body.cancel();
        return res.status === 200;
      } catch {
        return false;
      }
    },
    viaSocket(base, path) {
      if (sockets.get(base) === path) return;
      sockets.set(base, path);
      clients.get(base)?.close();
      clients.delete(base);
    },
    forget(base) {
      clients.get(base)?.close();
      clients.delete(base);
      sockets.delete(base);
    },
    close() {
      for (const c of clients.values()) c.close();
      clients.clear();
    },
  };
}

/** The caller's headers minus hop-by-hop ones and forged identity, plus forwarding info. */
function upstreamHeaders(
  req: ServerRequest,
  base: string,
  body: ForwardBody,
  options: ForwardOptions,
): [string, string][] {
  const named = connectionNamed(headerValue(req.headers, "connection"));
  const out: [string, string][] = [];
  let forwardedFor: string | undefined;
  let host: string | undefined;
  let hasLength = false;
  for (const [name, value] of req.headers) {
    if (NOT_FORWARDED.has(name) || named?.has(name)) continue;
    switch (name) {
      case "x-forwarded-for":
        forwardedFor = value;
        continue;
      case REQUEST_ID_HEADER:
      case "x-forwarded-host":
      case "x-forwarded-proto":
      // Identity headers come only from F2S, never from the client.
      case "x-f2s-caller":
      case "x-f2s-group":
        continue;
      case "authorization":
        if (options.caller) continue;
        break;
      case "host":
        host = value;
        break;
      case "content-length":
        hasLength = true;
        break;
    }
    out.push([name, value]);
  }
  if (body instanceof Uint8Array && !hasLength) out.push(["content-length", String(body.length)]);
  if (host === undefined) out.push(["host", base.replace(/^https?:\/\//, "")]);
  else out.push(["x-forwarded-host", host]);
  out.push([REQUEST_ID_HEADER, options.requestId]);
  if (options.clientAddress) {
    out.push([
      "x-forwarded-for",
      forwardedFor ? `${forwardedFor}, ${options.clientAddress}` : options.clientAddress,
    ]);
  } else if (forwardedFor) out.push(["x-forwarded-for", forwardedFor]);
  out.push(["x-forwarded-proto", options.protocol ?? "http"]);
  if (options.caller) {
    out.push(
      ["x-f2s-caller", encodeIdentity(options.caller.name)],
      ["x-f2s-group", encodeIdentity(options.caller.group)],
    );
  }
  return out;
}

/** Names that travel as they are: visible ASCII except "%" (nearly every real name). */
const PLAIN_IDENTITY = /^[\x21-\x24\x26-\x7e]*$/;
const utf8 = new TextEncoder();

/**
 * A caller or group name as an identity header value: its UTF-8 bytes, percent-encoded
 * (RFC 3986, upper-case hex) for every byte outside visible ASCII and for "%" itself, so
 * "Tomáš Černý" arrives as "Tom%C3%A1%C5%A1%20%C4%8Cern%C3%BD" and no name, whatever it
 * holds, can end the header or add one. Apps decode it with decodeURIComponent (or
 * urllib.parse.unquote); plain ASCII names arrive unchanged. See docs/auth.md.
 */
export function encodeIdentity(name: string): string {
  if (PLAIN_IDENTITY.test(name)) return name;
  let out = "";
  for (const byte of utf8.encode(name)) {
    out += byte >= 0x21 && byte <= 0x7e && byte !== 0x25
      ? String.fromCharCode(byte)
      : "%" + byte.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}
