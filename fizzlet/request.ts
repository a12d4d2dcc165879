/**
 * What the fizzlet knows about one request while a mode serves it: its id, where it came
 * from, and one abort signal whose reason says why it was cut short (timeout, client gone,
 * shutdown), so each mode can answer 504, give up quietly, or clean up.
 */

import { ClientGoneError, ShuttingDownError, TimeoutError } from "../common/cut_short.ts";
import type { Logger } from "../common/log.ts";
import type { PlainAnswer } from "../common/protocol.ts";

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

/**
 * What command mode reads of a request. A web Request has all of it; server.ts passes a
 * lighter view of its plain request (a Request and its body stream cost ~10% of a
 * command-mode request's time), with a small body as the bytes already received.
 */
export interface ScriptRequest {
  readonly method: string;
  /** Absolute; its path and query are the request target's. */
  readonly url: string;
  readonly headers: { get(name: string): string | null };
  readonly body: ReadableStream<Uint8Array> | Uint8Array | null;
}

/**
 * Command mode's request handler (fizzlet/command.ts); proxy mode takes plain requests. It
 * may answer with a plain answer (no Response to build and read back) or a Response.
 */
export type ModeHandler = (
  req: ScriptRequest,
  ctx: RequestContext,
) => Promise<Response | PlainAnswer>;

/**
 * A mode that must have the whole request body before the request takes a slot (command
 * mode): answers at once (400, 408, ...) or returns the handler to run within the slot.
 * `release` frees what receiving took (the request's folder) once the request is over,
 * however it ended.
 */
export type Receiver = (
  req: ScriptRequest,
  ctx: RequestContext,
) => Promise<Response | Received>;

export interface Received {
  handle: ModeHandler;
  release(): void;
}
