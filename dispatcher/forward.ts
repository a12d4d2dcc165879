/**
 * Forwards one request to one instance's fizzlet and streams the answer back. Knows the
 * difference between "never reached the instance" (safe to retry elsewhere) and
 * "reached it and failed" (never retried: the function may have run).
 */

import { forwardableHeaders, REQUEST_ID_HEADER } from "../common/protocol.ts";

/** The instance refused the connection: nothing was sent, another instance may be tried. */
export class NotReachedError extends Error {}

/** A request body that can be handed to fetch again as long as no byte was read from it. */
export interface ReplayableBody {
  /** A stream for one attempt, or null for no body. */
  next(): ReadableStream<Uint8Array> | Uint8Array<ArrayBuffer> | null;
  /** True once more was read than can be replayed: a failed attempt can then not be repeated. */
  readonly touched: boolean;
}

/**
 * Small bodies with a known length are read once into memory (cheap, and always
 * replayable). Other bodies stream; the first `replayLimit` bytes handed to an attempt are
 * remembered, because fetch starts reading a body before it knows whether the connection
 * succeeded, so a refused attempt can still be repeated elsewhere with the same bytes.
 */
export async function replayableBody(
  req: Request,
  bufferLimit = 256 * 1024,
  replayLimit = 1024 * 1024,
): Promise<ReplayableBody> {
  if (req.body === null) return { next: () => null, touched: false };
  const length = Number(req.headers.get("content-length") ?? NaN);
  if (Number.isFinite(length) && length <= bufferLimit) {
    const bytes = new Uint8Array(await req.arrayBuffer());
    return { next: () => bytes, touched: false };
  }
  const reader = req.body.getReader();
  let replay: Uint8Array[] = [];
  let replayBytes = 0;
  let replayable = true;
  return {
    get touched() {
      return !replayable;
    },
    next() {
      const earlier = [...replay];
      return new ReadableStream<Uint8Array>({
        async pull(controller) {
          const again = earlier.shift();
          if (again) return controller.enqueue(again.slice());
          const { done, value } = await reader.read();
          if (done) return controller.close();
          if (replayable && replayBytes + value.byteLength <= replayLimit) {
            replay.push(value.slice());
            replayBytes += value.byteLength;
          } else {
            replayable = false;
            replay = [];
          }
          controller.enqueue(value);
        },
        cancel(reason) {
          return reader.cancel(reason);
        },
      }, { highWaterMark: 0 });
    },
  };
}

export interface ForwardOptions {
  requestId: string;
  /** The exchange's controller: request timeout and client disconnect abort it. */
  exchange: AbortController;
  /** Time allowed until the response headers arrive. */
  httpTimeout: number;
  clientAddress?: string;
  originalHost?: string;
  protocol?: string;
  /** Replaces the caller's credentials with its identity (see DispatchOptions.caller). */
  caller?: { name: string; group: string };
}

/** The http_timeout or request_timeout passed (message says which). */
export class UpstreamTimeoutError extends Error {}

/** The client went away before the answer was complete. */
export class ClientGoneError extends Error {}

/** Sends `req` (with `body`) to `url` and returns the instance's response, streaming. */
export async function forward(
  url: string,
  req: Request,
  body: ReplayableBody,
  options: ForwardOptions,
): Promise<Response> {
  const headers = forwardableHeaders(req.headers);
  headers.set(REQUEST_ID_HEADER, options.requestId);
  if (options.clientAddress) {
    const prior = req.headers.get("x-forwarded-for");
    headers.set(
      "x-forwarded-for",
      prior ? `${prior}, ${options.clientAddress}` : options.clientAddress,
    );
  }
  if (options.originalHost) headers.set("x-forwarded-host", options.originalHost);
  if (options.protocol) headers.set("x-forwarded-proto", options.protocol);
  // Identity headers come only from F2S, never from the client.
  headers.delete("x-f2s-caller");
  headers.delete("x-f2s-group");
  if (options.caller) {
    headers.delete("authorization");
    headers.set("x-f2s-caller", options.caller.name);
    headers.set("x-f2s-group", options.caller.group);
  }

  const signal = options.exchange.signal;
  const timer = setTimeout(
    () => options.exchange.abort(new UpstreamTimeoutError("http_timeout")),
    options.httpTimeout,
  );
  try {
    return await fetch(url, {
      method: req.method,
      headers,
      body: body.next(),
      signal,
      redirect: "manual",
    });
  } catch (e) {
    if (signal.aborted) throw signal.reason ?? e;
    if (!body.touched && isConnectRefused(e)) throw new NotReachedError(String(e));
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

function isConnectRefused(e: unknown): boolean {
  const text = `${e} ${(e as { cause?: unknown })?.cause ?? ""}`;
  return /connection refused|os error 111|ECONNREFUSED|tcp connect error/i.test(text);
}
