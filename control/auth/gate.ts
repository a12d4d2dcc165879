/**
 * What the API needs from authentication: a gate per route and the auth endpoints. The
 * real implementation is auth.ts; `openGate` is mode "none" (everything allowed).
 */

import type { HeaderGetter } from "../../common/protocol.ts";
import type { Privilege } from "./privileges.ts";

export type { Privilege };

/** What authentication reads of a request: its headers and, if known, the TCP peer. */
export interface AuthRequest {
  headers: HeaderGetter;
  /** The TCP peer (for a Request from common/web_bridge.ts, found by `peerOf`). */
  peer?: string;
}

export interface Caller {
  name: string;
  group: string;
  /** Privileges as configured, including function-scoped patterns. */
  privileges: string[];
}

/** The gate, for callers of type `C` (control/auth/auth.ts: a Principal with more detail). */
export interface AuthGate<C extends Caller = Caller> {
  type: string;
  /**
   * The caller, or a ready 401 Response (JSON {error, details} + WWW-Authenticate); 503 only
   * when the OIDC issuer's keys cannot be fetched or too many password checks wait. At once
   * (no promise) when no check is needed (mode none): invocations are the hot path.
   */
  authenticate(req: AuthRequest): C | Response | Promise<C | Response>;
  /** Whether the caller holds the privilege (for one function when it is scoped). */
  can(caller: C, privilege: Privilege, functionName?: string): boolean;
  /** Authenticate and authorize in one: the caller, or a 401/403 naming what is missing. */
  require(req: Request, privilege: Privilege, functionName?: string): Promise<C | Response>;
  /** Handles the auth endpoints (/auth/signin, /auth/type, /users/me); undefined for others. */
  handle(req: Request, url: URL): Promise<Response | undefined>;
}

const anonymous: Caller = { name: "anonymous", group: "", privileges: [] };

export const openGate: AuthGate = {
  type: "none",
  authenticate: () => anonymous,
  can: () => true,
  require: () => Promise.resolve(anonymous),
  handle: () => Promise.resolve(undefined),
};
