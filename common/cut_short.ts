/**
 * Why a request was cut short: the reasons its abort signal carries, one vocabulary for the
 * dispatcher and the fizzlet, so each side answers the same failure the same way (a time
 * limit 504, the client gone 499, shutdown 503) by asking `reason instanceof …`.
 */

/** A time limit passed; `limit` names which (request_timeout, http_timeout, max_duration, …). */
export class TimeoutError extends Error {
  constructor(readonly limit: string, message = `${limit} passed`) {
    super(message);
  }
}

/** The client went away before the answer was complete. */
export class ClientGoneError extends Error {
  constructor(message = "client disconnected") {
    super(message);
  }
}

/** The process is stopping and will not finish the request. */
export class ShuttingDownError extends Error {}
