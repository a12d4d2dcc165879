/**
 * Reads the `Authorization` header into credentials, strictly and with size limits, so
 * that nothing malformed reaches password hashing or token verification. Reasons given
 * for refusing a header describe its shape and never repeat its content.
 */

import type { HeaderGetter } from "../../common/protocol.ts";

/** Longest Authorization header looked at; real basic and bearer headers are far shorter. */
export const MAX_AUTHORIZATION_BYTES = 8192;
/** Longest password or username accepted (bcrypt reads 72 bytes; argon2 any). */
export const MAX_CREDENTIAL_CHARS = 1024;

/**
 * C0 controls, DEL and C1 controls: no caller name may hold them. A name travels to the
 * function in a header (percent-encoded, dispatcher/forward.ts), into logs and answers;
 * a control character in it is an attack or a broken identity provider, never a person.
 */
function hasControlCharacter(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) return true;
  }
  return false;
}

/** Why `name` cannot be a caller's or group's name, or undefined when it can. */
export function nameProblem(name: string): string | undefined {
  return hasControlCharacter(name)
    ? "contains control characters (U+0000-U+001F, U+007F-U+009F)"
    : undefined;
}

export type Credentials =
  | { kind: "none" }
  | { kind: "basic"; username: string; password: string }
  | { kind: "bearer"; token: string }
  | { kind: "invalid"; reason: string };

const JWS_RE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const B64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const utf8 = new TextDecoder("utf-8", { fatal: true });

export function readCredentials(headers: HeaderGetter): Credentials {
  const value = headers.get("authorization");
  if (value === null) return { kind: "none" };
  if (value.length > MAX_AUTHORIZATION_BYTES) {
    return {
      kind: "invalid",
      reason: `Authorization header is too large (over ${MAX_AUTHORIZATION_BYTES} bytes)`,
    };
  }
  const m = /^([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*) +(\S+) *$/.exec(value);
  if (!m) {
    return {
      kind: "invalid",
      reason: 'malformed Authorization header (expected "Basic <base64>" or "Bearer <token>")',
    };
  }
  const scheme = m[1].toLowerCase();
  if (scheme === "basic") return readBasic(m[2]);
  if (scheme === "bearer") {
    if (!JWS_RE.test(m[2])) {
      return {
        kind: "invalid",
        reason: "malformed bearer token (expected a JWT: three base64url parts joined by dots)",
      };
    }
    return { kind: "bearer", token: m[2] };
  }
  return {
    kind: "invalid",
    reason: `unsupported authorization scheme "${m[1].slice(0, 20)}" (use Basic or Bearer)`,
  };
}

function readBasic(encoded: string): Credentials {
  if (!B64_RE.test(encoded)) {
    return { kind: "invalid", reason: "malformed basic credentials (not base64)" };
  }
  let text: string;
  try {
    text = utf8.decode(Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0)));
  } catch {
    return { kind: "invalid", reason: "malformed basic credentials (not UTF-8)" };
  }
  return basicFromParts(text);
}

function basicFromParts(text: string): Credentials {
  const colon = text.indexOf(":");
  if (colon < 0) {
    return { kind: "invalid", reason: 'malformed basic credentials (no ":" after the username)' };
  }
  return checkedBasic(text.slice(0, colon), text.slice(colon + 1));
}

/** Basic credentials from a sign-in form, with the same limits as the header. */
export function checkedBasic(
  username: unknown,
  password: unknown,
): Extract<Credentials, { kind: "basic" | "invalid" }> {
  if (typeof username !== "string" || typeof password !== "string") {
    return { kind: "invalid", reason: "username and password must be strings" };
  }
  if (username.length > MAX_CREDENTIAL_CHARS || password.length > MAX_CREDENTIAL_CHARS) {
    return {
      kind: "invalid",
      reason: `username or password is too long (over ${MAX_CREDENTIAL_CHARS} characters)`,
    };
  }
  const problem = nameProblem(username);
  if (problem) return { kind: "invalid", reason: `username ${problem}` };
  return { kind: "basic", username, password };
}
