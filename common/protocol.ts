/**
 * Names both halves of F2S agree on: the fizzlet's ports and paths, the headers that
 * travel with a request, and the JSON error body every component answers with.
 */

import { NOT_DELIVERED_HEADER } from "./delivery.ts";

/** Port the fizzlet listens on inside every function instance. */
export const FIZZLET_PORT = 9092;
/** Port an app in reverse-proxy mode is expected to listen on. */
export const APP_PORT = 8080;

/** The fizzlet's own paths; everything else goes to the function. */
export const FIZZLET_PATHS = {
  health: "/f2s/health",
  ready: "/f2s/ready",
  metrics: "/f2s/metrics",
} as const;

export const REQUEST_ID_HEADER = "x-request-id";

/** Headers that describe one hop and must not be forwarded (RFC 9110 section 7.6.1). */
export const HOP_BY_HOP_HEADERS = [
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
] as const;

/** The body of every error answer F2S produces itself. */
export interface ErrorBody {
  error: string;
  details?: unknown;
  requestId?: string;
}

/**
 * A Response with the given header pairs. They are appended to the new Response's own
 * headers rather than passed in its init: Deno converts a `headers` init through WebIDL at
 * about 0.7 µs a header (5.5 µs for a typical proxied answer), appending costs a fifth of
 * that, and on the dispatcher's hot path the difference is a tenth of a request's CPU.
 */
export function responseWith(
  body: BodyInit | null,
  status: number,
  headers: Iterable<[string, string]>,
): Response {
  // No statusText: Deno.serve sends the standard reason phrase whatever it says, and
  // validating one costs as much as building the Response.
  const response = new Response(body, { status });
  const h = response.headers;
  for (const [name, value] of headers) h.append(name, value);
  return response;
}

/** A JSON error response: `{error, details}` with the given status. */
export function errorResponse(
  status: number,
  error: string,
  details?: unknown,
  headers?: HeadersInit,
): Response {
  const body: ErrorBody = { error };
  if (details !== undefined) body.details = details;
  return jsonResponse(body, status, headers);
}

/** A JSON response with status 200 unless given. */
export function jsonResponse(value: unknown, status = 200, headers?: HeadersInit): Response {
  const response = new Response(JSON.stringify(value), { status });
  const h = response.headers;
  if (headers) new Headers(headers).forEach((v, k) => h.set(k, v));
  h.set("content-type", "application/json");
  return response;
}

/** Read access to request headers: a `Headers`, or raw pairs behind `headerGetter`. */
export interface HeaderGetter {
  get(name: string): string | null;
}

/** The first value of a header among raw pairs (names lower-case), or undefined. */
export function headerValue(pairs: [string, string][], name: string): string | undefined {
  for (let i = 0; i < pairs.length; i++) if (pairs[i][0] === name) return pairs[i][1];
  return undefined;
}

/** A HeaderGetter over raw pairs with lower-case names (common/http1_server.ts). */
export function headerGetter(pairs: [string, string][]): HeaderGetter {
  return { get: (name) => headerValue(pairs, name) ?? null };
}

/** An answer as plain data (see common/http1_server.ts): status, header pairs, body. */
export interface PlainAnswer {
  status: number;
  headers: [string, string][];
  body: Uint8Array | ReadableStream<Uint8Array> | null;
}

/** `errorResponse` as plain data, for routes that answer without a Response. */
export function errorAnswer(
  status: number,
  error: string,
  details?: unknown,
  headers: [string, string][] = [],
): PlainAnswer {
  const body: ErrorBody = { error };
  if (details !== undefined) body.details = details;
  return {
    status,
    headers: [["content-type", "application/json"], ...headers],
    body: jsonEncoder.encode(JSON.stringify(body)),
  };
}

const jsonEncoder = new TextEncoder();

/** Keeps the caller's request id when it looks sane, or makes a new one. */
export function requestIdFrom(headers: HeaderGetter): string {
  const given = headers.get(REQUEST_ID_HEADER);
  if (given && given.length <= 200 && /^[\w.:@+=-]+$/.test(given)) return given;
  return crypto.randomUUID();
}

/** Hop-by-hop headers plus `expect`, which a proxy answers or drops rather than forwards. */
export const NOT_FORWARDED = new Set<string>([...HOP_BY_HOP_HEADERS, "expect"]);

const RESPONSE_NOT_FORWARDED = new Set<string>([
  ...NOT_FORWARDED,
  REQUEST_ID_HEADER,
  // Only the fizzlet's own error answers may carry it (common/delivery.ts), never an app's.
  NOT_DELIVERED_HEADER,
  "date",
  "server",
]);

/**
 * Adds the names one Connection field lists (they are hop-by-hop too), lower-cased, to
 * `into`: a message may carry several Connection fields, and every one counts.
 */
export function connectionNamed(
  value: string,
  into?: Set<string>,
): Set<string> | undefined {
  const lower = value.toLowerCase();
  // The usual values name only hop-by-hop headers that are dropped anyway.
  if (lower === "keep-alive" || lower === "close") return into;
  into ??= new Set();
  for (const name of lower.split(",")) into.add(name.trim());
  return into;
}

/**
 * Response headers received as raw pairs (common/http1.ts), without hop-by-hop ones, with
 * the request id set: what a proxy hop hands back to its caller (see `responseWith`).
 * `Date` and `Server` are left to the answering server (as nginx does by default; Deno sets
 * a `Date` and no `Server`),
 * and so is `Content-Length` when the body is in memory (`bodyInMemory`): Deno derives it
 * from the bytes, and every header costs time on the hot path.
 */
export function forwardedResponseHeaders(
  raw: [string, string][],
  requestId: string,
  bodyInMemory = false,
): [string, string][] {
  let named: Set<string> | undefined;
  for (let i = 0; i < raw.length; i++) {
    if (raw[i][0] === "connection") named = connectionNamed(raw[i][1], named);
  }
  const out: [string, string][] = [];
  for (let i = 0; i < raw.length; i++) {
    const pair = raw[i];
    const name = pair[0];
    if (RESPONSE_NOT_FORWARDED.has(name) || named?.has(name)) continue;
    if (bodyInMemory && name === "content-length") continue;
    out.push(pair);
  }
  out.push([REQUEST_ID_HEADER, requestId]);
  return out;
}
