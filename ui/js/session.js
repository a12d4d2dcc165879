/**
 * Who is using the UI: the server's auth mode (`/auth/type`), signing in and out (basic
 * credentials, or a token from `/auth/signin`, kept in sessionStorage for this tab only),
 * the user from `/users/me`, and what they may do.
 */

import { api, ApiError, setAuthorization, setUnauthorizedHandler } from "./api.js";
import { allows, allowsSome, setKnownPrivileges } from "./privileges.js";

const STORAGE_KEY = "f2s.session";

/** `{type, signin, oidc}` from the server; `me` once signed in (or in mode none). */
export const session = { type: "none", signin: false, oidc: undefined, me: undefined };

const listeners = new Set();

/** Calls `fn` whenever the user signs in or out; returns the unsubscribe function. */
export function onSessionChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function changed(reason) {
  for (const fn of listeners) fn(reason);
}

/** Learns the auth mode and restores this tab's sign-in, if any and still valid. */
export async function startSession() {
  try {
    const info = await api("/auth/type");
    Object.assign(session, { type: info.type, signin: !!info.signin, oidc: info.oidc });
    setKnownPrivileges(info);
  } catch (e) {
    // A control plane without auth endpoints runs in mode none.
    if (!(e instanceof ApiError) || e.status !== 404) throw e;
    session.type = "none";
  }
  setUnauthorizedHandler(() => {
    if (!session.me) return;
    forget();
    changed("expired");
  });
  if (session.type === "none") {
    session.me = await whoAmI();
    return;
  }
  const stored = readStored();
  if (!stored) return;
  setAuthorization(stored.authorization);
  try {
    session.me = await api("/users/me");
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) forget();
    else throw e;
  }
}

async function whoAmI() {
  try {
    return await api("/users/me");
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      return { name: "anonymous", group: "", via: "none", privileges: ["*"] };
    }
    throw e;
  }
}

/** Signs in with a username and password; rejects with an ApiError in plain words. */
export async function signIn(username, password) {
  let authorization;
  if (session.type === "basic") {
    authorization = `Basic ${base64Utf8(`${username}:${password}`)}`;
  } else if (session.signin) {
    setAuthorization(undefined);
    const answer = await api("/auth/signin", { method: "POST", body: { username, password } });
    authorization = `Bearer ${answer.token}`;
  } else {
    throw new ApiError(0, undefined, "This server takes access tokens only: paste a token.");
  }
  await adopt(authorization);
}

/** Signs in with an access token (token and oidc modes). */
export async function useToken(token) {
  await adopt(`Bearer ${token.trim()}`);
}

async function adopt(authorization) {
  setAuthorization(authorization);
  let me;
  try {
    me = await api("/users/me");
  } catch (e) {
    setAuthorization(undefined);
    throw e;
  }
  session.me = me;
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify({ authorization }));
  changed("signin");
}

export function signOut() {
  forget();
  changed("signout");
}

function forget() {
  session.me = undefined;
  setAuthorization(undefined);
  sessionStorage.removeItem(STORAGE_KEY);
}

function readStored() {
  try {
    const v = JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? "null");
    return v && typeof v.authorization === "string" ? v : undefined;
  } catch {
    return undefined;
  }
}

export function needsSignIn() {
  return session.type !== "none" && !session.me;
}

/** Whether the user may use `privilege` (for `functionName` when given). */
export function can(privilege, functionName) {
  if (session.type === "none") return true;
  return allows(session.me?.privileges, privilege, functionName);
}

/** Whether the user holds `privilege` for at least some functions. */
export function canSome(privilege) {
  if (session.type === "none") return true;
  return allowsSome(session.me?.privileges, privilege);
}

function base64Utf8(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}
