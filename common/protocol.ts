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

/** Hop-by-hop headers plus `expect`, which a proxy answers or drops rather than forwards. */
export const NOT_FORWARDED = new Set<string>([...HOP_BY_HOP_HEADERS, "expect"]);

/** Names listed in a Connection header (they are hop-by-hop too), lower-cased. */
export function connectionNamed(value: string | null | undefined): Set<string> | undefined {
  if (!value) return undefined;
  return new Set(value.split(",").map((n) => n.trim().toLowerCase()));
}

/**
 * Response headers received as raw pairs (common/http1.ts), without hop-by-hop ones, with
 * the request id set: what a proxy hop hands back to its caller. Pairs, not a Headers
 * object: Response takes them in one conversion, where a Headers built by append costs
 * about a sixth of a proxied request's time.
 */
export function forwardedResponseHeaders(
  raw: [string, string][],
  requestId: string,
): [string, string][] {
  let named: Set<string> | undefined;
  for (const [name, value] of raw) {
    if (name === "connection") named = connectionNamed(value);
  }
  const out: [string, string][] = [];
  for (const pair of raw) {
    const name = pair[0];
    if (!NOT_FORWARDED.has(name) && !named?.has(name) && name !== REQUEST_ID_HEADER) out.push(pair);
  }
  out.push([REQUEST_ID_HEADER, requestId]);
  return out;
}
