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

import { TimeoutError } from "../common/cut_short.ts";
import { type Deadlines, deadlines as sharedDeadlines } from "../common/deadlines.ts";
import { NOT_DELIVERED_HEADER, NotDeliveredError } from "../common/delivery.ts";
import { createHttp1Client, type Http1Client } from "../common/http1.ts";
import type { ServerRequest } from "../common/http1_server.ts";
import { readUpTo } from "../common/read_limited.ts";
import { FROM_CLIENT, upstreamHeaders } from "../common/forward_headers.ts";
import { FIZZLET_PATHS, forwardedResponseHeaders, headerValue } from "../common/protocol.ts";

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
  /** Headers F2S sets itself (see DispatchOptions.platformHeaders). */
  platformHeaders?: [string, string][];
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
        () => options.exchange.abort(new TimeoutError("http_timeout")),
      );
      try {
        const res = await clientFor(base).request({
          method: req.method,
          target,
          headers: upstreamHeaders(req.headers, body, FROM_CLIENT, {
            requestId: options.requestId,
            fallbackHost: base.replace(/^https?:\/\//, ""),
            clientAddress: options.clientAddress,
            protocol: options.protocol,
            caller: options.caller,
            platform: options.platformHeaders,
          }),
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
