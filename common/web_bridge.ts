/**
 * Between the web's Request/Response and common/http1_server.ts's plain requests and
 * answers: the API, UI and metrics routes are written against Request and Response and
 * run on the plain server through `webHandler`; code that holds a Request (Kafka triggers,
 * tests) reaches plain handlers through `fromRequest` and `toResponse`.
 */

import type { ServerHandler, ServerRequest, ServerResponse } from "./http1_server.ts";
import { errorAnswer, headerValue, responseWith } from "./protocol.ts";

export type WebHandler = (
  req: Request,
  info: Deno.ServeHandlerInfo,
) => Response | Promise<Response>;

/** The URL a request was made for (its target resolved against its Host). */
export function requestUrl(req: ServerRequest): URL {
  return new URL(req.target, `http://${headerValue(req.headers, "host") ?? "localhost"}`);
}

// The TCP peer of each Request made here: a Request has no field for it, and auth needs it
// (sign-in throttling) below layers that only pass the Request on.
const peers = new WeakMap<Request, string>();

/** The address of the client a Request made by `webHandler` came from. */
export function peerOf(req: Request): string | undefined {
  return peers.get(req);
}

/** Runs a Request/Response handler on the plain server. */
export function webHandler(handler: WebHandler): ServerHandler {
  return async (sreq) => {
    let url: URL;
    try {
      url = requestUrl(sreq);
    } catch {
      return errorAnswer(400, "bad request target or Host header");
    }
    const aborted = new AbortController();
    sreq.watchClient(() => aborted.abort());
    const req = webRequest(sreq, url, aborted.signal);
    peers.set(req, sreq.remoteAddress);
    const info = {
      remoteAddr: { transport: "tcp", hostname: sreq.remoteAddress, port: 0 },
      completed: Promise.resolve(),
    } as Deno.ServeHandlerInfo<Deno.NetAddr>;
    return fromResponse(await handler(req, info));
  };
}

/** A plain request as a Request for `url` (GET and HEAD lose their body: Request has none). */
export function webRequest(sreq: ServerRequest, url: URL, signal: AbortSignal): Request {
  const method = sreq.method;
  // The body arrives decoded: its transfer coding is not the handler's business.
  const headers = sreq.headers.filter(([name]) => name !== "transfer-encoding");
  return new Request(url, {
    method,
    headers,
    body: method === "GET" || method === "HEAD" ? null : sreq.body,
    signal,
  });
}

/** A Response as a plain answer. */
export async function fromResponse(res: Response): Promise<ServerResponse> {
  return { status: res.status, headers: [...res.headers], body: await settledBody(res) };
}

/**
 * The answer's body: its bytes when it was in memory all along (so the answer carries a
 * Content-Length, as from Deno.serve), else a stream. A body that is all there comes in
 * one read, and its end is known by the very next; a body still being produced is not
 * waited for beyond that.
 */
async function settledBody(res: Response): Promise<Uint8Array | ReadableStream<Uint8Array> | null> {
  if (res.body === null) return null;
  const reader = res.body.getReader();
  const first = await reader.read();
  if (first.done) return new Uint8Array(0);
  const next = reader.read();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const settled = await Promise.race([
    next,
    new Promise<null>((r) => timer = setTimeout(() => r(null), 0)),
  ]);
  clearTimeout(timer);
  if (settled?.done) return first.value;
  let pending: Promise<ReadableStreamReadResult<Uint8Array>> | undefined = next;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(first.value);
    },
    async pull(controller) {
      const { done, value } = await (pending ?? reader.read());
      pending = undefined;
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/** A Request as a plain request (for code that holds one: Kafka triggers, tests). */
export function fromRequest(req: Request, remoteAddress = "127.0.0.1"): ServerRequest {
  const url = new URL(req.url);
  const headers: [string, string][] = [...req.headers];
  if (headerValue(headers, "host") === undefined) headers.push(["host", url.host]);
  return {
    method: req.method,
    target: url.pathname + url.search,
    headers,
    body: req.body,
    remoteAddress,
    watchClient(onGone) {
      req.signal.addEventListener("abort", onGone, { once: true });
      return () => req.signal.removeEventListener("abort", onGone);
    },
  };
}

/** A plain answer as a Response. */
export function toResponse(res: ServerResponse): Response {
  const body = res.body instanceof Uint8Array ? res.body as Uint8Array<ArrayBuffer> : res.body;
  return responseWith(body, res.status, res.headers);
}

/**
 * A plain handler as a fetch function, as Hono's `app.request()` is: tests call the API in
 * this process through the very handler the HTTP/1.1 server runs, with no socket between.
 */
export function asFetch(
  handler: ServerHandler,
  remoteAddress = "127.0.0.1",
): (input: Request | string | URL, init?: RequestInit) => Promise<Response> {
  return async (input, init) => {
    // A bare path is relative to a made-up host, as app.request("/functions") allows.
    const target = input instanceof Request ? input : new URL(String(input), "http://f2s.test");
    const req = new Request(target, init);
    return toResponse(await handler(fromRequest(req, remoteAddress)));
  };
}
