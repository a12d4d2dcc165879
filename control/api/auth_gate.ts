/**
 * What the API needs from authentication: a gate per route and the auth endpoints. The
 * real implementation is control/auth/auth.ts; `openGate` is mode "none" (everything allowed).
 */

export type Privilege =
  | "functions:list"
  | "functions:invoke"
  | "functions:create"
  | "functions:delete"
  | "functions:update"
  | "settings:view"
  | "settings:update";

export interface Caller {
  name: string;
  group: string;
  /** Privileges as configured, including function-scoped patterns. */
  privileges: string[];
}

export interface AuthGate {
  type: string;
  /** The caller, or the 401 response to send; at once when no check is needed. */
  authenticate(req: Request): Caller | Response | Promise<Caller | Response>;
  /** Whether the caller holds the privilege (for one function when it is scoped). */
  can(caller: Caller, privilege: Privilege, functionName?: string): boolean;
  /** The caller, or the 401/403 response to send. */
  require(req: Request, privilege: Privilege, functionName?: string): Promise<Caller | Response>;
  /** Handles the auth endpoints (/auth/…, /users/me); undefined for other paths. */
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
