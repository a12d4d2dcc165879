/**
 * Names both halves of F2S agree on: the fizzlet's ports and paths, the headers that
 * travel with a request, and the JSON error body every component answers with.
 */

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

/** A JSON error response: `{error, details}` with the given status. */
export function errorResponse(
  status: number,
  error: string,
  details?: unknown,
  headers?: HeadersInit,
): Response {
  const body: ErrorBody = { error };
  if (details !== undefined) body.details = details;
  const h = new Headers(headers);
  h.set("content-type", "application/json");
  return new Response(JSON.stringify(body), { status, headers: h });
}

/** A JSON response with status 200 unless given. */
export function jsonResponse(value: unknown, status = 200, headers?: HeadersInit): Response {
  const h = new Headers(headers);
  h.set("content-type", "application/json");
  return new Response(JSON.stringify(value), { status, headers: h });
}

/** Keeps the caller's request id when it looks sane, or makes a new one. */
export function requestIdFrom(headers: Headers): string {
  const given = headers.get(REQUEST_ID_HEADER);
  if (given && given.length <= 200 && /^[\w.:@+=-]+$/.test(given)) return given;
  return crypto.randomUUID();
}

/** Copies headers without the hop-by-hop ones, including those named in `Connection`. */
export function forwardableHeaders(source: Headers): Headers {
  const out = new Headers(source);
  const named = source.get("connection");
  if (named) {
    for (const name of named.split(",")) out.delete(name.trim());
  }
  for (const name of HOP_BY_HOP_HEADERS) out.delete(name);
  return out;
}
