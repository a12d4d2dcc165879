/**
 * What the fizzlet knows about one request while a mode serves it: its id, where it came
 * from, and one abort signal whose reason says why it was cut short (timeout, client gone,
 * shutdown), so each mode can answer 504, give up quietly, or clean up.
 */

import type { Logger } from "../common/log.ts";

export class Timeout extends Error {}
export class ClientGone extends Error {}
export class ShuttingDown extends Error {}

export const TIMEOUT = new Timeout("request timed out");
export const CLIENT_GONE = new ClientGone("client disconnected");
export const SHUTTING_DOWN = new ShuttingDown("fizzlet is shutting down");

export interface RequestContext {
  requestId: string;
  /** Address of the peer (the dispatcher, or a client in tests). */
  remoteAddress: string;
  /** Aborted with TIMEOUT, CLIENT_GONE or SHUTTING_DOWN. */
  signal: AbortSignal;
  /** Time allowed for this request in ms (its deadline is arrival + timeout). */
  timeout: number;
  log: Logger;
}

/** Command mode's request handler (fizzlet/command.ts); proxy mode takes plain requests. */
export type ModeHandler = (req: Request, ctx: RequestContext) => Promise<Response>;
