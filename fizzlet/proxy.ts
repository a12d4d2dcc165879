/**
 * Reverse-proxy mode: every request goes to the app on 127.0.0.1:<app port> over pooled
 * keep-alive connections (common/http1.ts), and both bodies stream through with
 * backpressure (a 1 GiB upload or download never sits in memory). Requests arrive as plain
 * data from common/http1_server.ts and go on as plain data: the method and target as
 * received (an absolute-form target becomes its path and query; Host never contributes to
 * the path), the header pairs minus hop-by-hop ones, and the body exactly as the server
 * framed it, with its Content-Length when it had one (for every method, GET included), so
 * a length never travels without its body. X-Forwarded-* and the request id are added;
 * Host stays the caller's (the server validated it). The app unreachable is a 502, no
 * response headers within the timeout a 504, both with a JSON error body.
 */

import { errorAnswer, forwardedResponseHeaders } from "../common/protocol.ts";
import { FROM_DISPATCHER, upstreamHeaders } from "../common/forward_headers.ts";
import { createHttp1Client } from "../common/http1.ts";
import { NOT_DELIVERED_HEADER, NotDeliveredError } from "../common/delivery.ts";
import type { ServerRequest, ServerResponse } from "../common/http1_server.ts";
import { HeadError } from "../common/http1_wire.ts";
import { ClientGoneError, ShuttingDownError, TimeoutError } from "../common/cut_short.ts";
import type { RequestContext } from "./request.ts";

export interface Proxy {
  handle(req: ServerRequest, ctx: RequestContext): Promise<ServerResponse>;
  close(): void;
}

const NULL_BODY_STATUS = new Set([204, 205, 304]);

/**
 * The origin-form of a request target: the target itself, or for an absolute-form one
 * (`http://host/path?q`) what follows its authority, byte for byte.
 */
export function originForm(target: string): string {
  if (target[0] === "/" || target === "*") return target;
  const authority = target.indexOf("//") + 2;
  let i = authority;
  while (i < target.length && target[i] !== "/" && target[i] !== "?") i++;
  if (i === target.length) return "/";
  return target[i] === "?" ? `/${target.slice(i)}` : target.slice(i);
}

function failure(ctx: RequestContext, appPort: number, e: unknown): ServerResponse {
  const reason = ctx.signal.reason;
  if (reason instanceof TimeoutError) {
    ctx.log.warn("app did not answer in time", {
      requestId: ctx.requestId,
      timeoutMs: ctx.timeout,
    });
    return errorAnswer(504, "app did not answer in time", { timeoutMs: ctx.timeout });
  }
  if (reason instanceof ClientGoneError) return errorAnswer(499, "client disconnected");
  if (reason instanceof ShuttingDownError) {
    return errorAnswer(503, "fizzlet is shutting down", undefined, [["retry-after", "1"]]);
  }
  const message = (e as Error).message;
  if (e instanceof HeadError) {
    ctx.log.warn("request refused: a header cannot be forwarded", {
      requestId: ctx.requestId,
      error: message,
    });
    return errorAnswer(400, "request header cannot be forwarded", message);
  }
  ctx.log.warn("app unreachable", { requestId: ctx.requestId, appPort, error: message });
  // Delivery rule (common/delivery.ts): tell the dispatcher when it may send this elsewhere.
  const notDelivered: [string, string][] = e instanceof NotDeliveredError
    ? [[NOT_DELIVERED_HEADER, "1"]]
    : [];
  return errorAnswer(502, "app unreachable", { appPort, message }, notDelivered);
}

export function createProxy(appPort: number): Proxy {
  const client = createHttp1Client(appPort);

  const handle = async (req: ServerRequest, ctx: RequestContext): Promise<ServerResponse> => {
    try {
      const res = await client.request({
        method: req.method,
        target: originForm(req.target),
        headers: upstreamHeaders(req.headers, req.body, FROM_DISPATCHER, {
          requestId: ctx.requestId,
          fallbackHost: `127.0.0.1:${appPort}`,
          clientAddress: ctx.remoteAddress,
        }),
        body: req.body,
        signal: ctx.signal,
      });
      if (res.status < 200 || res.status > 599) {
        if (res.body instanceof ReadableStream) await res.body.cancel();
        return errorAnswer(502, "app answered with an unsupported status", res.status);
      }
      let body = res.body;
      if (body !== null && NULL_BODY_STATUS.has(res.status)) {
        if (body instanceof ReadableStream) await body.cancel();
        body = null;
      }
      return {
        status: res.status,
        headers: forwardedResponseHeaders(res.headers, ctx.requestId, body instanceof Uint8Array),
        body,
      };
    } catch (e) {
      return failure(ctx, appPort, e);
    }
  };

  return { handle, close: () => client.close() };
}
