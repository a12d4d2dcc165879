/**
 * The `f2s.auth` section of config.yaml, in the seed's shape plus an `oidc` section:
 *
 * ```yaml
 * f2s:
 *   auth:
 *     global_config: { type: token, clock_tolerance: 30s }  # none | basic | token | oidc
 *     basic: [{ username: roman, password: "$2b$10$...", group: admins }]
 *     token: { jwt_secret: ..., expiry: 1h, tokens: [{ token: eyJ... }] }
 *     oidc: { issuer: https://idp.example, jwks_url: https://idp.example/jwks, audience: f2s,
 *             group_claim: groups, username_claim: sub }
 *     authorization: [{ group: admins, privileges: [functions:list, functions:invoke:orders-*] }]
 * ```
 *
 * `parseAuthConfig` checks each field where it stands; `validateAuthConfig` checks what
 * depends on several fields (and on environment overrides, so it runs after them).
 * Error messages never quote a password, secret or token.
 */

import { type Obj, Reader } from "../../common/config_util.ts";
import { parseTrusted } from "./client_address.ts";
import { parseGrant } from "./privileges.ts";
import { nameProblem } from "./credentials.ts";

export type AuthType = "none" | "basic" | "token" | "oidc";

export const AUTH_TYPES: readonly AuthType[] = ["none", "basic", "token", "oidc"];

export interface BasicUser {
  username: string;
  /** Plain text, a bcrypt hash ($2a$/$2b$/$2y$) or an argon2 hash ($argon2id$...). */
  password: string;
  group: string;
}

export interface OidcConfig {
  /** Must equal the tokens' `iss` claim exactly. */
  issuer: string;
  jwksUrl: string;
  /** Accepted `aud` values; empty = the audience is not checked. */
  audience: string[];
  /** Claim holding the group name(s): a string or a list; dots reach into objects. */
  groupClaim: string;
  /** Claim naming the caller. */
  usernameClaim: string;
  /** Asymmetric JWS algorithms accepted from the issuer. */
  algorithms: string[];
}

export interface AuthConfig {
  type: AuthType;
  /**
   * Proxies (addresses or IPv4 CIDRs) whose X-Forwarded-For is believed when throttling
   * sign-ins per client address; empty = the TCP peer is the client.
   */
  trustedProxies: string[];
  /** Clock skew allowed when checking `exp` and `nbf` (ms). */
  clockTolerance: number;
  basic: BasicUser[];
  token: { jwtSecret?: string; tokens: string[]; expiry: number };
  oidc?: OidcConfig;
  authorization: { group: string; privileges: string[] }[];
}

/** HMAC algorithms: the only ones accepted for tokens signed with `jwt_secret`. */
export const HMAC_ALGORITHMS = ["HS256", "HS384", "HS512"];

/** Public-key algorithms an OIDC issuer may use; HMAC and `none` are never among them. */
export const ASYMMETRIC_ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
  "Ed25519",
];

/** The `iss` of tokens made by `POST /auth/signin`, so an OIDC issuer may not use it. */
export const SIGNIN_ISSUER = "f2s";

const BCRYPT_RE = /^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/;
const ARGON2_RE =
  /^\$argon2(id|i|d)\$v=19\$m=(\d{1,8}),t=(\d{1,4}),p=(\d{1,3})\$[A-Za-z0-9+/]{11,}\$[A-Za-z0-9+/]{11,}$/;
const JWS_RE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** How a configured password is stored. */
export function passwordKind(password: string): "bcrypt" | "argon2" | "plain" | "invalid" {
  if (password.startsWith("$2")) return BCRYPT_RE.test(password) ? "bcrypt" : "invalid";
  if (password.startsWith("$argon2")) return ARGON2_RE.test(password) ? "argon2" : "invalid";
  return "plain";
}

export function parseAuthConfig(raw: unknown, path: string, r: Reader): AuthConfig {
  const o: Obj = r.obj(raw, path);
  r.known(o, path, ["global_config", "basic", "token", "oidc", "authorization"]);
  const global = r.obj(o.global_config, `${path}.global_config`);
  r.known(global, `${path}.global_config`, ["type", "clock_tolerance", "trusted_proxies"]);
  const trustedProxies = r.list(global.trusted_proxies, `${path}.global_config.trusted_proxies`)
    .map((v, i) => {
      const p = `${path}.global_config.trusted_proxies[${i}]`;
      const text = r.str(v, p, "");
      if (!parseTrusted(text)) r.error(p, `"${text.slice(0, 64)}" is not an address or CIDR`);
      return text;
    });
  const type = r.str(global.type, `${path}.global_config.type`, "none");
  if (!AUTH_TYPES.includes(type as AuthType)) {
    r.error(
      `${path}.global_config.type`,
      `"${type}" is not an auth type (${AUTH_TYPES.join(", ")})`,
    );
  }
  const clockTolerance = r.duration(
    global.clock_tolerance,
    `${path}.global_config.clock_tolerance`,
    30_000,
  );
  if (clockTolerance > 300_000) {
    r.error(`${path}.global_config.clock_tolerance`, "must be at most 5m");
  }

  const seenUsers = new Set<string>();
  const basic = r.list(o.basic, `${path}.basic`).map((u, i) => {
    const p = `${path}.basic[${i}]`;
    const uo = r.obj(u, p);
    r.known(uo, p, ["username", "password", "group"]);
    const user = {
      username: r.str(uo.username, `${p}.username`, ""),
      password: r.str(uo.password, `${p}.password`, ""),
      group: r.str(uo.group, `${p}.group`, ""),
    };
    if (user.username === "") r.error(`${p}.username`, "is required");
    else if (nameProblem(user.username)) {
      r.error(`${p}.username`, nameProblem(user.username)!);
    } else if (user.username.includes(":")) {
      r.error(`${p}.username`, 'must not contain ":" (HTTP basic auth cannot carry it)');
    } else if (seenUsers.has(user.username)) {
      r.error(`${p}.username`, `"${user.username}" is listed twice`);
    }
    seenUsers.add(user.username);
    if (user.password === "") r.error(`${p}.password`, "is required");
    else if (passwordKind(user.password) === "invalid") {
      r.error(
        `${p}.password`,
        "looks like a bcrypt or argon2 hash but is malformed " +
          "(expected $2b$NN$ + 53 characters, or $argon2id$v=19$m=..,t=..,p=..$salt$hash)",
      );
    }
    if (user.group === "") r.error(`${p}.group`, "is required");
    return user;
  });

  const token = r.obj(o.token, `${path}.token`);
  r.known(token, `${path}.token`, ["jwt_secret", "tokens", "expiry"]);
  const tokens = r.list(token.tokens, `${path}.token.tokens`).map((t, i) => {
    const p = `${path}.token.tokens[${i}]`;
    const to = r.obj(t, p);
    r.known(to, p, ["token"]);
    // A malformed entry only warns (see authWarnings): it can never match, and the seed's
    // sample config may carry a placeholder here.
    return r.str(to.token, `${p}.token`, "");
  });
  const jwtSecret = r.str(token.jwt_secret, `${path}.token.jwt_secret`);
  const expiry = r.duration(token.expiry, `${path}.token.expiry`, 3_600_000);
  if (expiry < 1000 || expiry > 30 * 86_400_000) {
    r.error(`${path}.token.expiry`, "must be between 1s and 30 days");
  }

  const oidc = o.oidc === undefined || o.oidc === null
    ? undefined
    : parseOidc(o.oidc, `${path}.oidc`, r);

  const seenGroups = new Set<string>();
  const authorization = r.list(o.authorization, `${path}.authorization`).map((g, i) => {
    const p = `${path}.authorization[${i}]`;
    const go = r.obj(g, p);
    r.known(go, p, ["group", "privileges"]);
    const group = r.str(go.group, `${p}.group`, "");
    if (group === "") r.error(`${p}.group`, "is required");
    else if (nameProblem(group)) r.error(`${p}.group`, nameProblem(group)!);
    else if (seenGroups.has(group)) {
      r.error(`${p}.group`, `"${group}" is listed twice; merge its privileges into one entry`);
    }
    seenGroups.add(group);
    const privileges = r.list(go.privileges, `${p}.privileges`).map((x, j) => {
      const value = r.str(x, `${p}.privileges[${j}]`, "");
      const grant = parseGrant(value);
      if (typeof grant === "string") r.error(`${p}.privileges[${j}]`, grant);
      return value;
    });
    return { group, privileges };
  });

  return {
    type: type as AuthType,
    trustedProxies,
    clockTolerance,
    basic,
    token: { jwtSecret, tokens, expiry },
    oidc,
    authorization,
  };
}

function parseOidc(raw: unknown, path: string, r: Reader): OidcConfig {
  const o = r.obj(raw, path);
  r.known(o, path, [
    "issuer",
    "jwks_url",
    "audience",
    "group_claim",
    "username_claim",
    "algorithms",
  ]);
  const issuer = r.str(o.issuer, `${path}.issuer`, "");
  if (issuer === "") r.error(`${path}.issuer`, "is required");
  else if (issuer === SIGNIN_ISSUER) {
    r.error(`${path}.issuer`, `"${SIGNIN_ISSUER}" is reserved for tokens made by /auth/signin`);
  }
  const jwksUrl = r.str(o.jwks_url, `${path}.jwks_url`, "");
  if (jwksUrl === "") r.error(`${path}.jwks_url`, "is required");
  else if (!URL.canParse(jwksUrl) || !/^https?:$/.test(new URL(jwksUrl).protocol)) {
    r.error(`${path}.jwks_url`, `"${jwksUrl}" is not an http(s) URL`);
  }
  const audience = typeof o.audience === "string"
    ? [o.audience]
    : r.list(o.audience, `${path}.audience`).map((a, i) => r.str(a, `${path}.audience[${i}]`, ""));
  const claim = (key: "group_claim" | "username_claim", dflt: string) => {
    const v = r.str(o[key], `${path}.${key}`, dflt);
    if (!/^[^.\s]+(\.[^.\s]+)*$/.test(v)) {
      r.error(`${path}.${key}`, "must be a claim name, with dots to reach into objects");
    }
    return v;
  };
  const algorithms = o.algorithms === undefined
    ? ASYMMETRIC_ALGORITHMS.filter((a) => a !== "Ed25519")
    : r.list(o.algorithms, `${path}.algorithms`).map((a, i) => {
      const v = r.str(a, `${path}.algorithms[${i}]`, "");
      if (!ASYMMETRIC_ALGORITHMS.includes(v)) {
        r.error(
          `${path}.algorithms[${i}]`,
          `"${v}" is not accepted from an issuer (one of: ${ASYMMETRIC_ALGORITHMS.join(", ")})`,
        );
      }
      return v;
    });
  if (o.algorithms !== undefined && algorithms.length === 0) {
    r.error(`${path}.algorithms`, "must name at least one algorithm");
  }
  return {
    issuer,
    jwksUrl,
    audience,
    groupClaim: claim("group_claim", "groups"),
    usernameClaim: claim("username_claim", "sub"),
    algorithms,
  };
}

/**
 * Checks that need the whole section after environment overrides (F2S_AUTH_TYPE,
 * F2S_JWT_SECRET): what the chosen type requires.
 */
export function validateAuthConfig(c: AuthConfig, path: string, r: Reader): void {
  if (!AUTH_TYPES.includes(c.type)) return; // already reported where the type was read
  if (c.type === "basic" && c.basic.length === 0) {
    r.error(`${path}.basic`, "must list at least one user when global_config.type is basic");
  }
  if (c.type === "token" && !c.token.jwtSecret) {
    r.error(
      `${path}.token.jwt_secret`,
      "is required when global_config.type is token (or set F2S_JWT_SECRET)",
    );
  }
  if (c.type === "oidc" && !c.oidc) {
    r.error(`${path}.oidc`, "is required when global_config.type is oidc");
  }
}

/** Things that load but are probably mistakes; logged at start-up (names only). */
export function authWarnings(c: AuthConfig): string[] {
  if (c.type === "none") return [];
  const out: string[] = [];
  const groups = new Set(c.authorization.map((a) => a.group));
  if (groups.size === 0) {
    out.push("f2s.auth.authorization lists no group: every request will be refused");
  }
  const usesBasic = c.type === "basic" || c.type === "token";
  if (usesBasic) {
    const plain = c.basic.filter((u) => passwordKind(u.password) === "plain");
    if (plain.length > 0) {
      out.push(
        `basic users with plain-text passwords (store bcrypt or argon2 hashes instead): ${
          plain.map((u) => u.username).join(", ")
        }`,
      );
    }
    for (const u of c.basic) {
      if (!groups.has(u.group)) {
        out.push(
          `basic user ${u.username}: group "${u.group}" is not in f2s.auth.authorization ` +
            "(the user cannot sign in)",
        );
      }
    }
  }
  if (c.type === "token") {
    c.token.tokens.forEach((t, i) => {
      if (!JWS_RE.test(t)) {
        out.push(
          `f2s.auth.token.tokens[${i}].token is not a signed JWT ` +
            "(three base64url parts joined by dots); it can never match",
        );
      }
    });
  }
  if (c.type === "token" && c.token.jwtSecret !== undefined) {
    if (new TextEncoder().encode(c.token.jwtSecret).length < 32) {
      out.push("f2s.auth.token.jwt_secret is shorter than 32 bytes; use a long random secret");
    }
  }
  if (c.oidc && (c.type === "token" || c.type === "oidc")) {
    const url = URL.canParse(c.oidc.jwksUrl) ? new URL(c.oidc.jwksUrl) : undefined;
    if (url?.protocol === "http:" && !isLoopback(url.hostname)) {
      out.push("f2s.auth.oidc.jwks_url uses plain http: the issuer's keys can be spoofed");
    }
  }
  if (c.oidc && c.type !== "token" && c.type !== "oidc") {
    out.push(`f2s.auth.oidc is ignored with global_config.type ${c.type}`);
  }
  return out;
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host.startsWith("127.") || host === "[::1]";
}
