/**
 * Reverse-proxy mode: every request goes to the app on 127.0.0.1:<app port> over pooled
 * keep-alive connections (common/http1.ts), and both bodies stream through with
 * backpressure (a 1 GiB upload or download never sits in memory). Hop-by-hop headers are
 * dropped both ways; X-Forwarded-* and the request id are added; Host stays the caller's.
 * The app unreachable is a 502, no response headers within the timeout a 504, both with a
 * JSON error body.
 */

import {
  connectionNamed,
  errorResponse,
  forwardedResponseHeaders,
  NOT_FORWARDED,
  REQUEST_ID_HEADER,
  responseWith,
} from "../common/protocol.ts";
import { createHttp1Client } from "../common/http1.ts";
import { NOT_DELIVERED_HEADER, NotDeliveredError } from "../common/delivery.ts";
import {
  ClientGone,
  type ModeHandler,
  type RequestContext,
  ShuttingDown,
  Timeout,
} from "./request.ts";

export interface Proxy {
  handle: ModeHandler;
  close(): void;
}

const NULL_BODY_STATUS = new Set([204, 205, 304]);

/** Start of the path in an absolute URL ("http://host:port/path?q" → index of "/path"). */
function pathStart(url: string): number {
  const i = url.indexOf("/", url.indexOf("//") + 2);
  return i < 0 ? url.length : i;
}

/** Request headers for the app: the client's, minus hop-by-hop ones, plus forwarding info. */
function upstreamHeaders(req: Request, ctx: RequestContext, appPort: number): [string, string][] {
  const named = connectionNamed(req.headers.get("connection"));
  const out: [string, string][] = [];
  let forwardedFor: string | undefined;
  let proto = false;
  let forwardedHost = false;
  let host: string | undefined;
  for (const [name, value] of req.headers) {
    if (NOT_FORWARDED.has(name) || named?.has(name)) continue;
    switch (name) {
      case "x-forwarded-for":
        forwardedFor = value;
        continue;
      case REQUEST_ID_HEADER:
        continue;
      case "x-forwarded-proto":
        proto = true;
        break;
      case "x-forwarded-host":
        forwardedHost = true;
        break;
      case "host":
        host = value;
        break;
    }
    out.push([name, value]);
  }
  if (host === undefined) out.push(["host", `127.0.0.1:${appPort}`]);
  out.push([REQUEST_ID_HEADER, ctx.requestId]);
  out.push([
    "x-forwarded-for",
    forwardedFor ? `${forwardedFor}, ${ctx.remoteAddress}` : ctx.remoteAddress,
  ]);
  if (!proto) out.push(["x-forwarded-proto", "http"]);
  if (!forwardedHost && host !== undefined) out.push(["x-forwarded-host", host]);
  return out;
}

function failure(ctx: RequestContext, appPort: number, e: unknown): Response {
  const reason = ctx.signal.reason;
  if (reason instanceof Timeout) {
    ctx.log.warn("app did not answer in time", {
      requestId: ctx.requestId,
      timeoutMs: ctx.timeout,
    });
    return errorResponse(504, "app did not answer in time", { timeoutMs: ctx.timeout });
  }
  if (reason instanceof ClientGone) return errorResponse(499, "client disconnected");
  if (reason instanceof ShuttingDown) {
    return errorResponse(503, "fizzlet is shutting down", undefined, { "retry-after": "1" });
  }
  const message = (e as Error).message;
  ctx.log.warn("app unreachable", { requestId: ctx.requestId, appPort, error: message });
  // Delivery rule (common/delivery.ts): tell the dispatcher when it may send this elsewhere.
  const notDelivered: [string, string][] = e instanceof NotDeliveredError
    ? [[NOT_DELIVERED_HEADER, "1"]]
    : [];
  return errorResponse(502, "app unreachable", { appPort, message }, notDelivered);
}

export function createProxy(appPort: number): Proxy {
  const client = createHttp1Client(appPort);

  const handle: ModeHandler = async (req, ctx) => {
    const url = req.url;
    const start = pathStart(url);
    try {
      const res = await client.request({
        method: req.method,
        target: start < url.length ? url.slice(start) : "/",
        headers: upstreamHeaders(req, ctx, appPort),
        body: req.body,
        signal: ctx.signal,
      });
      if (res.status < 200 || res.status > 599) {
        if (res.body instanceof ReadableStream) await res.body.cancel();
        return errorResponse(502, "app answered with an unsupported status", res.status);
      }
      let body = res.body;
      if (body !== null && NULL_BODY_STATUS.has(res.status)) {
        if (body instanceof ReadableStream) await body.cancel();
        body = null;
      }
      return responseWith(
        body,
        res.status,
        forwardedResponseHeaders(res.headers, ctx.requestId, body instanceof Uint8Array),
      );
    } catch (e) {
      return failure(ctx, appPort, e);
    }
  };

  return { handle, close: () => client.close() };
}
