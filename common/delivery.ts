/**
 * The one rule for when a request may be sent again, shared by both hops that forward
 * requests (dispatcher → fizzlet, fizzlet → app), so a function never runs a request twice
 * because of F2S. It is the rule of Go's http.Transport: a request may be sent again only
 * when no byte of it was written to the failed connection, or when repeating it is harmless
 * by its method (RFC 9110 §9.2.2) or because the caller sent an `Idempotency-Key`.
 *
 * "Not delivered" (NotDeliveredError, and the fizzlet's NOT_DELIVERED_HEADER) means exactly
 * "this rule lets it be sent again": a refused connect, a write that failed before any byte
 * went out, or an idempotent request whose connection broke before any answer. A reused
 * connection that breaks after a non-idempotent request was written is NOT "not delivered":
 * the function may be running it, so the caller gets 502 instead of a second execution.
 */

/** RFC 9110 §9.2.2: methods whose repetition has the effect of one request. */
export const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set([
  "GET",
  "HEAD",
  "OPTIONS",
  "TRACE",
  "PUT",
  "DELETE",
]);

/** The header a caller sends to say that its request may safely run more than once. */
export const IDEMPOTENCY_KEY = "idempotency-key";

/**
 * Set (to "1") only by the fizzlet on its own error answer when the app did not get the
 * request (or got an idempotent one that broke off unanswered): the dispatcher may then
 * send it to another instance. The fizzlet drops it from every answer of the app, so a
 * function cannot ask for its own request to be run again elsewhere.
 */
export const NOT_DELIVERED_HEADER = "x-f2s-not-delivered";

/** Header pairs with lower-case names, as both hops carry them. */
export type HeaderPairs = readonly (readonly [string, string])[];

/** True when running the request twice has the effect of running it once. */
export function isIdempotent(method: string, headers: HeaderPairs): boolean {
  if (IDEMPOTENT_METHODS.has(method)) return true;
  for (const [name] of headers) if (name === IDEMPOTENCY_KEY) return true;
  return false;
}

/**
 * The rule: a request whose exchange failed before an answer may be sent again (on a new
 * connection or to another upstream) when nothing of it was written, or it is idempotent.
 */
export function maySendAgain(method: string, headers: HeaderPairs, written: boolean): boolean {
  return !written || isIdempotent(method, headers);
}

/**
 * The request failed before any answer, and `maySendAgain` holds for it (or the fizzlet
 * vouches that its app never got it): the caller may send it to another upstream.
 * `written` says whether some of it may have been written to this upstream; a streamed
 * body is then spent and cannot be sent again.
 */
export class NotDeliveredError extends Error {
  constructor(message: string, readonly written: boolean, options?: ErrorOptions) {
    super(message, options);
    this.name = "NotDeliveredError";
  }
}
