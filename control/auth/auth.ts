/**
 * Authentication and authorization for the API server: `createAuth(config)` gives an
 * `Auth` that turns a request into a principal (or a ready 401), decides whether the
 * principal holds a privilege (or answers 403 naming the missing one), and serves
 * `/auth/signin`, `/auth/type` and `/users/me`. Bad input of any kind becomes a 401
 * response, never an exception; secrets never reach logs or answers.
 *
 * Modes (`f2s.auth.global_config.type`): `none` (everything allowed), `basic`, `token`
 * (HMAC JWTs from `jwt_secret`, plus the OIDC issuer's tokens when `oidc` is configured)
 * and `oidc` (the issuer's tokens only). See docs/auth.md.
 */

import { type Clock, realClock } from "../../common/clock.ts";
import { createLogger, type Logger } from "../../common/log.ts";
import type { AuthGate, AuthRequest } from "./gate.ts";
import { peerOf } from "../../common/web_bridge.ts";
import { clientAddressResolver } from "./client_address.ts";
import { createSigninThrottle, type ThrottleOptions } from "./throttle.ts";
import { errorResponse, jsonResponse, requestIdFrom } from "../../common/protocol.ts";
import { readUpTo } from "../../common/read_limited.ts";
import { ConfigError, Reader } from "../../common/config_util.ts";
import { AUTH_TYPES, type AuthConfig, authWarnings, validateAuthConfig } from "./config.ts";
import { checkedBasic, type Credentials, readCredentials } from "./credentials.ts";
import { createPasswordChecker, type PasswordCheck, type PasswordChecker } from "./passwords.ts";
import { grantsAllow, grantsOf, type Privilege, PRIVILEGES, UNSCOPED } from "./privileges.ts";
import { createTokenVerifier, signSigninToken, type TokenVerifier } from "./tokens.ts";

export type { Privilege } from "./privileges.ts";
export { PRIVILEGES } from "./privileges.ts";

export interface Principal {
  name: string;
  /** The group the privileges come from (the first configured one for OIDC group lists). */
  group: string;
  via: "none" | "basic" | "token" | "oidc";
  /** As configured for the principal's group(s), including function-scoped patterns. */
  privileges: string[];
  /** Every configured group the principal belongs to (OIDC tokens may name several). */
  groups?: string[];
  /** When the principal's token expires (ms since epoch). */
  expiresAt?: number;
}

/** The API's gate (control/auth/gate.ts) with the full principal. */
export type Auth = AuthGate<Principal>;

export interface AuthDeps {
  clock?: Clock;
  /** Sign-in throttle settings (tests); the defaults suit production. */
  throttle?: ThrottleOptions;
  fetch?: typeof fetch;
  log?: Logger;
}

/** Largest sign-in body read (a JSON {username, password}). */
const MAX_SIGNIN_BODY = 8192;
const REALM = 'realm="f2s"';

/**
 * Builds the Auth for `config`; throws ConfigError when the configuration cannot work
 * (unknown type, token mode without a secret, ...), so start-up refuses it.
 */
export async function createAuth(config: AuthConfig, deps: AuthDeps = {}): Promise<Auth> {
  const clock = deps.clock ?? realClock;
  const now = () => clock.now();
  const log = deps.log ?? createLogger("auth");
  const r = new Reader();
  if (!AUTH_TYPES.includes(config.type)) {
    r.error(
      "f2s.auth.global_config.type",
      `"${config.type}" is not an auth type (${AUTH_TYPES.join(", ")})`,
    );
  }
  validateAuthConfig(config, "f2s.auth", r);
  if (r.errors.length > 0) throw new ConfigError("auth configuration", r.errors);
  for (const warning of authWarnings(config)) log.warn(warning);

  const type = config.type;
  const privilegesOf = new Map(config.authorization.map((a) => [a.group, a.privileges]));
  const signinEnabled = type === "token" && !!config.token.jwtSecret;
  const passwords: PasswordChecker | undefined = type === "basic" || signinEnabled
    ? await createPasswordChecker(config.basic, { clock })
    : undefined;
  const tokens: TokenVerifier | undefined = type === "token" || type === "oidc"
    ? createTokenVerifier(config, { clock, fetch: deps.fetch })
    : undefined;
  const warmUpError = await tokens?.warmUp();
  if (warmUpError) {
    log.warn("cannot fetch the OIDC issuer's keys yet; will retry when a token arrives", {
      jwksUrl: config.oidc?.jwksUrl,
      error: warmUpError,
    });
  }
  const bearerScheme = type === "token" || type === "oidc";
  const throttle = createSigninThrottle({ clock, ...deps.throttle });
  const clientOf = clientAddressResolver(config.trustedProxies ?? []);
  const anonymous: Principal = {
    name: "anonymous",
    group: "",
    via: "none",
    privileges: [...PRIVILEGES],
  };

  function unauthorized(reason: string, opts: { invalidToken?: boolean } = {}): Response {
    let challenge = bearerScheme ? `Bearer ${REALM}` : `Basic ${REALM}, charset="UTF-8"`;
    if (bearerScheme && opts.invalidToken) {
      challenge += `, error="invalid_token", error_description="${reason.replace(/["\\]/g, "'")}"`;
    }
    return errorResponse(401, reason, { type }, { "www-authenticate": challenge });
  }

  /** The principal for a user of `groups`, or why there is none. */
  function principalFor(
    name: string,
    groups: string[],
    via: Principal["via"],
    expiresAt?: number,
  ): Principal | string {
    const known = groups.filter((g) => privilegesOf.has(g));
    if (known.length === 0) {
      const shown = groups.slice(0, 5).map((g) => `"${g.slice(0, 64)}"`).join(", ");
      return `group ${shown}${groups.length > 5 ? ", ..." : ""} is not configured ` +
        "in f2s.auth.authorization";
    }
    const privileges = [...new Set(known.flatMap((g) => privilegesOf.get(g) ?? []))];
    return { name, group: known[0], via, privileges, groups: known, expiresAt };
  }

  /**
   * Checks a password, throttled per client address and user name before any hashing
   * (control/auth/throttle.ts): refused attempts get 429 with Retry-After at once.
   */
  async function checkPassword(
    creds: Extract<Credentials, { kind: "basic" }>,
    req: AuthRequest,
    log: Logger,
  ): Promise<Principal | Response> {
    let result: PasswordCheck;
    const known = passwords!.remembered(creds.username, creds.password);
    const running = passwords!.inProgress(creds.username, creds.password);
    if (known) result = { ok: true, user: known };
    else if (running) result = await running; // shares a check already admitted
    else {
      const client = clientOf(req.peer ?? peerOf(req as Request), req.headers);
      const admission = throttle.admit(client, creds.username);
      if (!admission.ok) {
        log.info("sign-in throttled", { client, reason: admission.reason });
        const seconds = Math.max(1, Math.ceil(admission.retryAfterMs / 1000));
        return errorResponse(
          429,
          `${admission.reason}; retry in ${seconds} s`,
          { type, retryAfterSeconds: seconds },
          { "retry-after": String(seconds) },
        );
      }
      let outcome: PasswordCheck | undefined;
      try {
        outcome = await passwords!.check(creds.username, creds.password);
      } finally {
        // A "busy" answer (no check ran) or a crash counts as neither success nor failure.
        const ran = outcome !== undefined && !(!outcome.ok && outcome.busy);
        admission.done(outcome?.ok === true, !ran);
      }
      result = outcome;
    }
    if (!result.ok) {
      if (result.busy) {
        log.warn("too many password checks waiting; refusing one");
        return errorResponse(503, "too many sign-in attempts in progress; retry shortly", {
          type,
        }, { "retry-after": "1" });
      }
      log.info("authentication refused", { reason: "invalid username or password" });
      return errorResponse(401, "invalid username or password", { type }, {
        "www-authenticate": `Basic ${REALM}, charset="UTF-8"`,
      });
    }
    const p = principalFor(result.user.username, [result.user.group], "basic");
    if (typeof p === "string") {
      // Authenticated, but granted nothing: a matter of authorization (403), not identity.
      log.info("authorization refused", { user: result.user.username, reason: p });
      return errorResponse(403, p, { type, user: result.user.username });
    }
    return p;
  }

  function authenticate(req: AuthRequest): Principal | Response | Promise<Principal | Response> {
    return type === "none" ? anonymous : check(req);
  }

  async function check(req: AuthRequest): Promise<Principal | Response> {
    const reqLog = log.with({ requestId: requestIdFrom(req.headers) });
    try {
      const creds = readCredentials(req.headers);
      if (creds.kind === "none") {
        return unauthorized(
          bearerScheme ? "authentication required: send a bearer token" : "authentication required",
        );
      }
      if (creds.kind === "invalid") {
        reqLog.info("authentication refused", { reason: creds.reason });
        return unauthorized(creds.reason, { invalidToken: true });
      }
      if (type === "basic") {
        if (creds.kind !== "basic") return unauthorized("this server takes basic credentials");
        return await checkPassword(creds, req, reqLog);
      }
      if (creds.kind !== "bearer") {
        return unauthorized(
          signinEnabled
            ? "this server takes bearer tokens; get one from POST /auth/signin"
            : "this server takes bearer tokens",
        );
      }
      const outcome = await tokens!.verify(creds.token);
      if (!outcome.ok) {
        reqLog.info("authentication refused", { reason: outcome.reason });
        if (outcome.status === 503) {
          return errorResponse(503, outcome.reason, { type }, { "retry-after": "30" });
        }
        return unauthorized(outcome.reason, { invalidToken: true });
      }
      const { name, groups, via, expiresAt } = outcome.identity;
      const p = principalFor(name, groups, via, expiresAt);
      if (typeof p === "string") {
        reqLog.info("authorization refused", { user: name, reason: p });
        return errorResponse(403, p, { type, user: name });
      }
      return p;
    } catch (e) {
      // A bug here must not turn bad input into a 500 or let the request through.
      reqLog.error("authentication failed unexpectedly", { error: (e as Error).message });
      return unauthorized("authentication failed");
    }
  }

  function can(principal: Principal, privilege: Privilege, functionName?: string): boolean {
    if (type === "none") return true;
    return grantsAllow(grantsOf(principal.privileges), privilege, functionName);
  }

  async function require(
    req: Request,
    privilege: Privilege,
    functionName?: string,
  ): Promise<Principal | Response> {
    const p = await authenticate(req);
    if (p instanceof Response || can(p, privilege, functionName)) return p;
    const target = functionName === undefined ? "" : ` for function "${functionName}"`;
    log.with({ requestId: requestIdFrom(req.headers) }).info("authorization refused", {
      user: p.name,
      group: p.group,
      privilege,
      function: functionName,
    });
    return errorResponse(403, `missing privilege ${privilege}${target}`, {
      privilege,
      function: functionName,
      user: p.name,
      group: p.group,
    });
  }

  async function signin(req: Request): Promise<Response> {
    if (!signinEnabled) {
      return errorResponse(404, `sign-in is not available with auth type ${type}`, { type });
    }
    const reqLog = log.with({ requestId: requestIdFrom(req.headers) });
    let creds = readCredentials(req.headers);
    if (creds.kind === "none") {
      const body = await readJsonBody(req);
      if (body instanceof Response) return body;
      creds = body === undefined
        ? { kind: "invalid", reason: "send basic credentials or a JSON body {username, password}" }
        : checkedBasic(body.username, body.password);
    }
    if (creds.kind === "bearer") {
      creds = { kind: "invalid", reason: "sign-in takes a username and password, not a token" };
    }
    if (creds.kind === "invalid") {
      return errorResponse(401, creds.reason, { type }, {
        "www-authenticate": `Basic ${REALM}, charset="UTF-8"`,
      });
    }
    const p = await checkPassword(creds, req, reqLog);
    if (p instanceof Response) return p;
    const { token, expiresAt } = await signSigninToken(
      config.token.jwtSecret!,
      { username: p.name, group: p.group },
      config.token.expiry,
      now(),
    );
    reqLog.info("signed in", { user: p.name, group: p.group });
    return jsonResponse(
      {
        token,
        tokenType: "Bearer",
        expiresAt: new Date(expiresAt).toISOString(),
        expiresIn: Math.max(1, Math.floor(config.token.expiry / 1000)),
        user: { name: p.name, group: p.group },
      },
      200,
      { "cache-control": "no-store" },
    );
  }

  function whoami(p: Principal): Response {
    return jsonResponse(
      {
        name: p.name,
        group: p.group,
        groups: p.groups ?? (p.group ? [p.group] : []),
        via: p.via,
        type,
        privileges: [...p.privileges].sort(),
        expiresAt: p.expiresAt === undefined ? undefined : new Date(p.expiresAt).toISOString(),
      },
      200,
      { "cache-control": "no-store" },
    );
  }

  async function handle(req: Request, url: URL): Promise<Response | undefined> {
    switch (url.pathname) {
      case "/auth/type":
        if (req.method !== "GET" && req.method !== "HEAD") return notAllowed("GET, HEAD");
        return jsonResponse({
          type,
          signin: signinEnabled,
          oidc: (type === "token" || type === "oidc") && config.oidc
            ? { issuer: config.oidc.issuer }
            : undefined,
          // The UI decides what to show from these; it keeps no copy of the list.
          privileges: PRIVILEGES,
          unscoped: [...UNSCOPED],
        });
      case "/auth/signin":
        if (req.method !== "POST") return notAllowed("POST");
        return await signin(req);
      case "/users/me": {
        if (req.method !== "GET" && req.method !== "HEAD") return notAllowed("GET, HEAD");
        const p = await authenticate(req);
        return p instanceof Response ? p : whoami(p);
      }
      default:
        return undefined;
    }
  }

  return { type, authenticate, can, require, handle };
}

function notAllowed(allow: string): Response {
  return errorResponse(405, `method not allowed (use ${allow})`, undefined, { allow });
}

/** The sign-in body as an object, undefined when there is none, or an error response. */
async function readJsonBody(
  req: Request,
): Promise<{ username?: unknown; password?: unknown } | undefined | Response> {
  if (!req.body) return undefined;
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > MAX_SIGNIN_BODY) return tooLarge();
  let bytes: Uint8Array | null;
  try {
    bytes = await readUpTo(req.body, MAX_SIGNIN_BODY);
  } catch {
    return errorResponse(400, "cannot read the request body");
  }
  if (!bytes) return tooLarge();
  if (bytes.length === 0) return undefined;
  const text = new TextDecoder().decode(bytes);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return errorResponse(400, "sign-in body must be JSON {username, password}");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return errorResponse(400, "sign-in body must be a JSON object {username, password}");
  }
  return value as { username?: unknown; password?: unknown };
}

function tooLarge(): Response {
  return errorResponse(413, `sign-in body is too large (max ${MAX_SIGNIN_BODY} bytes)`);
}
