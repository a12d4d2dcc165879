/**
 * What the fizzlet knows about one request while a mode serves it: its id, where it came
 * from, and one abort signal whose reason says why it was cut short (timeout, client gone,
 * shutdown), so each mode can answer 504, give up quietly, or clean up.
 */

import { ClientGoneError, ShuttingDownError, TimeoutError } from "../common/cut_short.ts";
import type { Logger } from "../common/log.ts";

// One instance each: abort reasons are compared and never carry per-request data.
export const TIMEOUT = new TimeoutError("timeout", "request timed out");
export const CLIENT_GONE = new ClientGoneError();
export const SHUTTING_DOWN = new ShuttingDownError("fizzlet is shutting down");

export interface RequestContext {
  requestId: string;
  /** Address of the peer (the dispatcher, or a client in tests). */
  remoteAddress: string;
  /** Aborted with TIMEOUT, CLIENT_GONE or SHUTTING_DOWN. */
  signal: AbortSignal;
  /** Time allowed for this request in ms, from its arrival (command mode: its body's). */
  timeout: number;
  log: Logger;
}

/** Command mode's request handler (fizzlet/command.ts); proxy mode takes plain requests. */
export type ModeHandler = (req: Request, ctx: RequestContext) => Promise<Response>;

/**
 * A mode that must have the whole request body before the request takes a slot (command
 * mode): answers at once (400, 408, ...) or returns the handler to run within the slot.
 * `release` frees what receiving took (the request's folder) once the request is over,
 * however it ended.
 */
export type Receiver = (req: Request, ctx: RequestContext) => Promise<Response | Received>;

export interface Received {
  handle: ModeHandler;
  release(): void;
}
