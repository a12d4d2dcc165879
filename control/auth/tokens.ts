/**
 * Bearer tokens: verifies JWTs signed with `jwt_secret` (HMAC only) and, when configured,
 * JWTs from an OIDC issuer (public keys from its JWKS URL, asymmetric algorithms only), and
 * signs the tokens `POST /auth/signin` hands out.
 *
 * Which verifier a token goes to is decided by its (unverified) `iss` claim, and each
 * verifier has its own key and its own fixed algorithm list: the token's `alg` header
 * never selects a key, so an HS256 token "signed" with the issuer's public key is refused
 * by the issuer's verifier, and an RS256 token cannot be checked against `jwt_secret`.
 */

import { type Clock } from "../../common/clock.ts";
import * as jose from "jose";
import { createHash } from "node:crypto";
import { type AuthConfig, HMAC_ALGORITHMS, type OidcConfig, SIGNIN_ISSUER } from "./config.ts";
import { nameProblem } from "./credentials.ts";

/** What a verified token says about its bearer. */
export interface TokenIdentity {
  via: "token" | "oidc";
  name: string;
  /** Group names the token claims, in the token's order (checked against config later). */
  groups: string[];
  /** When the token expires (ms since epoch), if it does. */
  expiresAt?: number;
}

export type TokenOutcome =
  | { ok: true; identity: TokenIdentity }
  /** 401 for a token that is refused, 503 when the issuer's keys cannot be fetched. */
  | { ok: false; status: 401 | 503; reason: string };

export interface TokenVerifier {
  verify(token: string): Promise<TokenOutcome>;
  /** Fetches the issuer's keys once; an error message when that fails (start-up keeps going). */
  warmUp(): Promise<string | undefined>;
}

export interface TokenDeps {
  clock: Clock;
  fetch?: typeof fetch;
}

export function createTokenVerifier(config: AuthConfig, deps: TokenDeps): TokenVerifier {
  const useHmac = config.type === "token" && !!config.token.jwtSecret;
  const oidc = config.type === "token" || config.type === "oidc" ? config.oidc : undefined;
  const hmac = useHmac ? hmacVerifier(config, deps) : undefined;
  const issuer = oidc ? oidcVerifier(oidc, config.clockTolerance, deps) : undefined;

  // Clients send the same token with many requests; signature checks cost 0.1-1 ms (RSA
  // most), so a verified token is remembered until it expires, for at most 5 minutes.
  const verified = new Map<string, { identity: TokenIdentity; until: number }>();
  const remember = (key: string, identity: TokenIdentity) => {
    const expiry = identity.expiresAt ?? Infinity;
    const until = Math.min(expiry + config.clockTolerance, deps.clock.now() + VERIFIED_TTL);
    if (verified.size >= 1024) verified.delete(verified.keys().next().value!);
    verified.set(key, { identity, until });
  };

  async function check(token: string): Promise<TokenOutcome> {
    let iss: unknown;
    try {
      iss = jose.decodeJwt(token).iss;
    } catch (e) {
      return refused(`malformed token: ${(e as Error).message}`);
    }
    const fromIssuer = !!issuer && iss === oidc?.issuer;
    try {
      if (issuer && fromIssuer) return await issuer.verify(token);
      if (hmac) return await hmac(token);
      return refused("token is not from the configured issuer");
    } catch (e) {
      return fromJoseError(e, fromIssuer);
    }
  }

  return {
    async verify(token) {
      const key = digest(token);
      const hit = verified.get(key);
      if (hit && hit.until > deps.clock.now()) return { ok: true, identity: hit.identity };
      if (hit) verified.delete(key);
      const outcome = await check(token);
      if (outcome.ok) remember(key, outcome.identity);
      return outcome;
    },
    async warmUp() {
      return issuer ? await issuer.warmUp() : undefined;
    },
  };
}

/** Longest a verified token is remembered (ms). */
const VERIFIED_TTL = 300_000;

function refused(reason: string): TokenOutcome {
  return { ok: false, status: 401, reason };
}

function hmacVerifier(config: AuthConfig, deps: TokenDeps) {
  const secret = new TextEncoder().encode(config.token.jwtSecret);
  // One imported key per HMAC algorithm (importing on every request doubles the cost).
  // jose checks `alg` against HMAC_ALGORITHMS before it asks for the key.
  const keys = new Map<string, Promise<CryptoKey>>();
  const keyFor = (header: jose.JWSHeaderParameters): Promise<CryptoKey> => {
    const alg = header.alg ?? "";
    if (!HMAC_ALGORITHMS.includes(alg)) throw new jose.errors.JOSEAlgNotAllowed("not HMAC");
    let key = keys.get(alg);
    if (!key) {
      const hash = { name: `SHA-${alg.slice(2)}` };
      key = crypto.subtle.importKey("raw", secret, { name: "HMAC", hash }, false, ["verify"]);
      keys.set(alg, key);
    }
    return key;
  };
  const allowList = new Set(config.token.tokens.map(digest));
  const maxSigninLifetime = config.token.expiry / 1000 + 1;

  return async (token: string): Promise<TokenOutcome> => {
    const listed = allowList.size > 0 && allowList.has(digest(token));
    const { payload } = await jose.jwtVerify(token, keyFor, {
      algorithms: HMAC_ALGORITHMS,
      clockTolerance: config.clockTolerance / 1000,
      currentDate: new Date(deps.clock.now()),
    });
    if (payload.exp === undefined && !listed) {
      return refused(
        "token has no expiry (exp claim); only tokens listed in f2s.auth.token.tokens may omit it",
      );
    }
    // Sign-in tokens are short-lived and cannot be listed in advance; the allow-list pins
    // every other token (e.g. long-lived ones made by hand) so they can be revoked.
    const fromSignin = payload.iss === SIGNIN_ISSUER && typeof payload.iat === "number" &&
      typeof payload.exp === "number" && payload.exp - payload.iat <= maxSigninLifetime;
    if (allowList.size > 0 && !listed && !fromSignin) {
      return refused("token is not in the allow-list (f2s.auth.token.tokens)");
    }
    return identityFrom(payload, "token", "sub", "group");
  };
}

function oidcVerifier(oidc: OidcConfig, clockTolerance: number, deps: TokenDeps) {
  const options: jose.RemoteJWKSetOptions = {
    timeoutDuration: 5000,
    // A token with an unknown kid triggers a refetch at most this often.
    cooldownDuration: 30_000,
    cacheMaxAge: 600_000,
  };
  if (deps.fetch) options[jose.customFetch] = deps.fetch;
  const keys = jose.createRemoteJWKSet(new URL(oidc.jwksUrl), options);
  return {
    async verify(token: string): Promise<TokenOutcome> {
      const { payload } = await jose.jwtVerify(token, keys, {
        issuer: oidc.issuer,
        audience: oidc.audience.length > 0 ? oidc.audience : undefined,
        algorithms: oidc.algorithms,
        clockTolerance: clockTolerance / 1000,
        currentDate: new Date(deps.clock.now()),
        requiredClaims: ["exp"],
      });
      return identityFrom(payload, "oidc", oidc.usernameClaim, oidc.groupClaim);
    },
    async warmUp(): Promise<string | undefined> {
      try {
        await keys.reload();
        return undefined;
      } catch (e) {
        return (e as Error).message;
      }
    },
  };
}

function identityFrom(
  payload: jose.JWTPayload,
  via: "token" | "oidc",
  nameClaim: string,
  groupClaim: string,
): TokenOutcome {
  const name = claimAt(payload, nameClaim);
  if (typeof name !== "string" || name === "" || name.length > 256) {
    return refused(`token has no usable "${nameClaim}" claim (a non-empty string)`);
  }
  const problem = nameProblem(name);
  if (problem) return refused(`token's "${nameClaim}" claim ${problem}: it cannot name a caller`);
  const raw = claimAt(payload, groupClaim);
  const groups = typeof raw === "string"
    ? [raw]
    : Array.isArray(raw)
    ? raw.filter((g): g is string => typeof g === "string")
    : [];
  if (groups.length === 0 || groups.some((g) => g === "")) {
    return refused(`token has no "${groupClaim}" claim naming its group`);
  }
  const expiresAt = typeof payload.exp === "number" ? payload.exp * 1000 : undefined;
  return { ok: true, identity: { via, name, groups, expiresAt } };
}

/** The value at a dotted claim path ("realm_access.roles"), own properties only. */
function claimAt(payload: jose.JWTPayload, path: string): unknown {
  let at: unknown = payload;
  for (const key of path.split(".")) {
    if (typeof at !== "object" || at === null || !Object.hasOwn(at, key)) return undefined;
    at = (at as Record<string, unknown>)[key];
  }
  return at;
}

function digest(token: string): string {
  return createHash("sha256").update(token).digest("base64");
}

/** Turns jose's errors into a reason a client can act on, without quoting the token. */
function fromJoseError(e: unknown, fromIssuer: boolean): TokenOutcome {
  const E = jose.errors;
  if (e instanceof E.JWTExpired) return refused("token expired (exp is in the past)");
  if (e instanceof E.JWTClaimValidationFailed) {
    if (e.claim === "nbf") return refused("token is not valid yet (nbf is in the future)");
    if (e.reason === "missing") return refused(`token has no "${e.claim}" claim`);
    if (e.claim === "iss") return refused("token issuer does not match");
    if (e.claim === "aud") return refused("token audience does not match");
    return refused(`token claim "${e.claim}" is invalid`);
  }
  if (e instanceof E.JOSEAlgNotAllowed) return refused("token algorithm is not accepted here");
  if (e instanceof E.JWSSignatureVerificationFailed) {
    return refused("token signature does not verify");
  }
  if (e instanceof E.JWKSNoMatchingKey) {
    return refused("no key of the issuer matches the token (kid/alg)");
  }
  if (e instanceof E.JWKSMultipleMatchingKeys) {
    return refused("several keys of the issuer match the token; it needs a kid");
  }
  if (e instanceof E.JWSInvalid || e instanceof E.JWTInvalid || e instanceof E.JOSENotSupported) {
    return refused(`malformed token: ${e.message}`);
  }
  // What is left from the issuer's path is fetching its keys: a timeout, a non-200 answer,
  // a body that is no key set, or fetch() itself failing (a TypeError).
  if (fromIssuer && (e instanceof E.JOSEError || e instanceof TypeError)) {
    return { ok: false, status: 503, reason: "cannot get the issuer's signing keys" };
  }
  return refused("invalid token");
}

/** Signs a sign-in token for a basic user: `sub`, `group`, `iss: f2s`, `iat`, `exp`. */
export async function signSigninToken(
  secret: string,
  user: { username: string; group: string },
  expiry: number,
  now: number,
): Promise<{ token: string; expiresAt: number }> {
  const iat = Math.floor(now / 1000);
  const exp = iat + Math.max(1, Math.floor(expiry / 1000));
  const token = await new jose.SignJWT({ group: user.group })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(user.username)
    .setIssuer(SIGNIN_ISSUER)
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .setJti(crypto.randomUUID())
    .sign(new TextEncoder().encode(secret));
  return { token, expiresAt: exp * 1000 };
}
