/**
 * Reverse-proxy mode: every request goes to the app on 127.0.0.1:<app port> over pooled
 * keep-alive connections, and both bodies stream through untouched (a 1 GiB upload or
 * download never sits in memory). Hop-by-hop headers are dropped, X-Forwarded-* and the
 * request id are added. The app unreachable is a 502, no response headers within the
 * timeout a 504, both with a JSON error body.
 *
 * The upstream request asks for `accept-encoding: identity`: Deno's HTTP client would
 * otherwise decompress a gzip answer yet keep its Content-Encoding header. Compression
 * belongs at the edge, not on the loopback hop.
 */

import { errorResponse, forwardableHeaders, REQUEST_ID_HEADER } from "../common/protocol.ts";
import { ClientGone, type ModeHandler, ShuttingDown, Timeout } from "./request.ts";

export interface Proxy {
  handle: ModeHandler;
  close(): void;
}

/** Start of the path in an absolute URL ("http://host:port/path?q" → index of "/path"). */
function pathStart(url: string): number {
  const i = url.indexOf("/", url.indexOf("//") + 2);
  return i < 0 ? url.length : i;
}

export function createProxy(appPort: number): Proxy {
  const base = `http://127.0.0.1:${appPort}`;
  // allowHost: the app sees the Host the client used, as behind any transparent proxy.
  const client = Deno.createHttpClient({ allowHost: true, poolIdleTimeout: 60_000 });

  const handle: ModeHandler = async (req, ctx) => {
    const url = req.url;
    const start = pathStart(url);
    const target = start < url.length ? base + url.slice(start) : base + "/";
    const headers = forwardableHeaders(req.headers);
    headers.set(REQUEST_ID_HEADER, ctx.requestId);
    const prior = headers.get("x-forwarded-for");
    headers.set("x-forwarded-for", prior ? `${prior}, ${ctx.remoteAddress}` : ctx.remoteAddress);
    if (!headers.has("x-forwarded-proto")) headers.set("x-forwarded-proto", "http");
    if (!headers.has("x-forwarded-host")) {
      const host = req.headers.get("host");
      if (host) headers.set("x-forwarded-host", host);
    }
    headers.set("accept-encoding", "identity");

    let upstream: Response;
    try {
      upstream = await fetch(target, {
        method: req.method,
        headers,
        body: req.body,
        redirect: "manual",
        signal: ctx.signal,
        client,
      });
    } catch (e) {
      const reason = ctx.signal.reason;
      if (reason instanceof Timeout) {
        ctx.log.warn("app did not answer in time", {
          requestId: ctx.requestId,
          timeoutMs: ctx.timeout,
        });
        return errorResponse(504, "app did not answer in time", { timeoutMs: ctx.timeout });
      }
      if (reason instanceof ClientGone) {
        return errorResponse(499, "client disconnected");
      }
      if (reason instanceof ShuttingDown) {
        return errorResponse(503, "fizzlet is shutting down", undefined, { "retry-after": "1" });
      }
      const message = (e as Error).message;
      ctx.log.warn("app unreachable", { requestId: ctx.requestId, appPort, error: message });
      return errorResponse(502, "app unreachable", { appPort, message });
    }

    const out = forwardableHeaders(upstream.headers);
    out.set(REQUEST_ID_HEADER, ctx.requestId);
    return new Response(upstream.body, {
      status: upstream.status,
      statusText: upstream.statusText,
      headers: out,
    });
  };

  return { handle, close: () => client.close() };
}
