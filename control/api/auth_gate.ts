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
}

export interface AuthGate {
  type: string;
  /** The caller, or the 401/403 response to send. */
  require(req: Request, privilege: Privilege, functionName?: string): Promise<Caller | Response>;
  /** Handles the auth endpoints (/auth/…, /users/me); undefined for other paths. */
  handle(req: Request, url: URL): Promise<Response | undefined>;
}

export const openGate: AuthGate = {
  type: "none",
  require: () => Promise.resolve({ name: "anonymous", group: "" }),
  handle: () => Promise.resolve(undefined),
};
