/**
 * Calls the control plane's REST API with the signed-in user's credentials and turns its
 * `{error, details}` answers into errors worded for people ("You are not allowed to …").
 */

import { notAllowedMessage } from "./privileges.js";

let authorization;
let onUnauthorized = () => {};

/** The Authorization header value to send (undefined: none). */
export function setAuthorization(value) {
  authorization = value;
}

export function authorizationHeader() {
  return authorization;
}

/** Called when an authenticated call gets 401 (expired token, changed password). */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

/** An API call that failed: `status` (0: no answer), `body` as sent, `message` in plain words. */
export class ApiError extends Error {
  constructor(status, body, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.body = body;
  }

  /** Validation problems `[{path, message}]` when the API sent them. */
  get fieldErrors() {
    const d = this.body?.details;
    return Array.isArray(d) ? d.filter((e) => e && typeof e.path === "string") : [];
  }
}

/**
 * `fetch` with the user's credentials. Browsers are told not to use their own credential
 * store (`credentials: "omit"`): a 401 then never pops the browser's password dialog.
 */
export function send(path, init = {}) {
  const headers = new Headers(init.headers);
  if (authorization && !headers.has("authorization")) headers.set("authorization", authorization);
  return fetch(path, { ...init, headers, credentials: "omit", cache: "no-store" });
}

/**
 * Calls the API; resolves with parsed JSON (or text when `accept` is not JSON, or null for
 * 204) and rejects with an ApiError in plain words.
 */
export async function api(path, options = {}) {
  const { method = "GET", body, accept = "application/json", signal } = options;
  const headers = { accept };
  let payload;
  if (body !== undefined) {
    headers["content-type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let res;
  try {
    res = await send(path, { method, headers, body: payload, signal });
  } catch (e) {
    if (e?.name === "AbortError") throw e;
    throw new ApiError(
      0,
      undefined,
      `Cannot reach the F2S control plane (${
        e?.message ?? e
      }). Check that it is running, then try again.`,
    );
  }
  const text = await res.text();
  if (res.ok) {
    if (res.status === 204 || text === "") return null;
    return accept.includes("json") ? JSON.parse(text) : text;
  }
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = { error: text.slice(0, 300) || res.statusText };
  }
  const error = new ApiError(res.status, parsed, plainMessage(res.status, parsed));
  if (res.status === 401 && authorization) onUnauthorized(error);
  throw error;
}

/** What went wrong, for people, from an API answer's status and `{error, details}`. */
export function plainMessage(status, body) {
  const said = sentence(body?.error ?? "");
  const details = body?.details;
  switch (status) {
    case 400:
      if (Array.isArray(details) && details.length > 0) {
        const list = details.map((d) => (d.path ? `${d.path}: ${d.message}` : d.message));
        return `Some fields need fixing: ${list.join("; ")}.`;
      }
      return `The request was refused: ${said}`;
    case 401:
      return `You need to sign in (${lower(said)})`;
    case 403:
      if (details && typeof details.privilege === "string") {
        return notAllowedMessage(details.privilege, details.function);
      }
      return `You are not allowed to do this: ${said}`;
    case 404:
      return said || "Not found.";
    case 409:
      return `${said} Choose another name or endpoint.`;
    case 413:
      return `That is too large for the control plane: ${said}`;
    case 503:
      // A function that cannot start says why; waiting would not help.
      if (details && typeof details.reason === "string") return said;
      return `The control plane is busy: ${said} Try again in a moment.`;
    case 429:
      return `The control plane is busy: ${said} Try again in a moment.`;
    default:
      if (status >= 500) return `The control plane hit a problem (status ${status}): ${said}`;
      return `The request failed with status ${status}: ${said}`;
  }
}

function sentence(text) {
  const t = String(text).trim();
  if (!t) return "";
  const first = t[0].toUpperCase() + t.slice(1);
  return /[.!?]$/.test(first) ? first : `${first}.`;
}

function lower(text) {
  return text ? text[0].toLowerCase() + text.slice(1).replace(/\.$/, "") : "";
}
