/**
 * The request headers a proxy hop sends on, for both hops of F2S: the dispatcher, whose
 * caller is any client (nothing it says about forwarding or identity is believed), and the
 * fizzlet, whose caller is the dispatcher (its X-Forwarded-* and identity headers stand).
 * One function with the policy as an argument, so the two hops cannot drift apart on what
 * is hop-by-hop (RFC 9110 section 7.6.1: the fixed list, `expect`, and every header a
 * Connection field names) or on how forwarding information is added.
 */

import { connectionNamed, NOT_FORWARDED, REQUEST_ID_HEADER } from "./protocol.ts";

export interface HeaderPolicy {
  /**
   * Keep the X-Forwarded-Host and X-Forwarded-Proto the previous hop sent (it is F2S's
   * dispatcher); otherwise they are replaced by what this hop saw.
   */
  trustForwarded: boolean;
  /**
   * Drop X-F2S-Caller, X-F2S-Group and the platform's own headers (`PLATFORM_HEADERS`) from
   * the previous hop: identity and delivery facts come only from F2S.
   */
  stripIdentity: boolean;
}

/** The dispatcher's hop: requests straight from clients. */
export const FROM_CLIENT: HeaderPolicy = { trustForwarded: false, stripIdentity: true };
/** The fizzlet's hop: requests from the dispatcher. */
export const FROM_DISPATCHER: HeaderPolicy = { trustForwarded: true, stripIdentity: false };

export interface HopInfo {
  requestId: string;
  /** Host to send when the request came without one (HTTP/1.0). */
  fallbackHost: string;
  /** The previous hop's address, appended to X-Forwarded-For. */
  clientAddress?: string;
  /** "http" or "https": X-Forwarded-Proto when none is kept (default "http"). */
  protocol?: string;
  /**
   * The authenticated caller: sent as X-F2S-Caller and X-F2S-Group, and the caller's own
   * Authorization is not forwarded (the function must not be able to collect it).
   */
  caller?: { name: string; group: string };
  /**
   * Headers F2S itself sets (their names in `PLATFORM_HEADERS`): the schedule tick and the
   * attempt of an async call. Sent after the request's own headers.
   */
  platform?: [string, string][];
}

/** Set by F2S on async calls (docs/async.md); a client's own are dropped at the first hop. */
export const SCHEDULE_HEADER = "x-f2s-schedule-tick";
export const ATTEMPT_HEADER = "x-f2s-attempt";
export const PLATFORM_HEADERS: ReadonlySet<string> = new Set([SCHEDULE_HEADER, ATTEMPT_HEADER]);

/**
 * The headers to send on: the received pairs minus hop-by-hop ones, the request id and
 * whatever the policy does not keep, plus Content-Length for a body held in memory that
 * came without one (a chunked body read whole), Host when there was none, the request id,
 * X-Forwarded-For/-Proto/-Host, identity and the platform's headers.
 */
export function upstreamHeaders(
  headers: [string, string][],
  body: Uint8Array | ReadableStream<Uint8Array> | null,
  policy: HeaderPolicy,
  hop: HopInfo,
): [string, string][] {
  let named: Set<string> | undefined;
  for (let i = 0; i < headers.length; i++) {
    if (headers[i][0] === "connection") named = connectionNamed(headers[i][1], named);
  }
  const out: [string, string][] = [];
  let forwardedFor: string | undefined;
  let host: string | undefined;
  let hasLength = false;
  let keptProto = false;
  let keptHost = false;
  for (let i = 0; i < headers.length; i++) {
    const pair = headers[i];
    const name = pair[0];
    if (NOT_FORWARDED.has(name) || named?.has(name)) continue;
    switch (name) {
      case "x-forwarded-for":
        forwardedFor = forwardedFor === undefined ? pair[1] : `${forwardedFor}, ${pair[1]}`;
        continue;
      case REQUEST_ID_HEADER:
        continue;
      case "x-forwarded-proto":
        if (!policy.trustForwarded) continue;
        keptProto = true;
        break;
      case "x-forwarded-host":
        if (!policy.trustForwarded) continue;
        keptHost = true;
        break;
      case "x-f2s-caller":
      case "x-f2s-group":
        if (policy.stripIdentity || hop.caller) continue;
        break;
      case SCHEDULE_HEADER:
      case ATTEMPT_HEADER:
        if (policy.stripIdentity) continue;
        break;
      case "authorization":
        if (hop.caller) continue;
        break;
      case "host":
        host = pair[1];
        break;
      case "content-length":
        // The server read exactly this many bytes into the body (one valid header only).
        hasLength = true;
        break;
    }
    out.push(pair);
  }
  if (body instanceof Uint8Array && !hasLength) out.push(["content-length", String(body.length)]);
  if (host === undefined) out.push(["host", hop.fallbackHost]);
  out.push([REQUEST_ID_HEADER, hop.requestId]);
  if (hop.clientAddress) {
    out.push([
      "x-forwarded-for",
      forwardedFor ? `${forwardedFor}, ${hop.clientAddress}` : hop.clientAddress,
    ]);
  } else if (forwardedFor) out.push(["x-forwarded-for", forwardedFor]);
  if (!keptProto) out.push(["x-forwarded-proto", hop.protocol ?? "http"]);
  if (!keptHost && host !== undefined) out.push(["x-forwarded-host", host]);
  if (hop.caller) {
    out.push(
      ["x-f2s-caller", encodeIdentity(hop.caller.name)],
      ["x-f2s-group", encodeIdentity(hop.caller.group)],
    );
  }
  if (hop.platform) out.push(...hop.platform);
  return out;
}

/** Names that travel as they are: visible ASCII except "%" (nearly every real name). */
const PLAIN_IDENTITY = /^[\x21-\x24\x26-\x7e]*$/;
const utf8 = new TextEncoder();

/**
 * A caller or group name as an identity header value: its UTF-8 bytes, percent-encoded
 * (RFC 3986, upper-case hex) for every byte outside visible ASCII and for "%" itself, so
 * "Tomáš Černý" arrives as "Tom%C3%A1%C5%A1%20%C4%8Cern%C3%BD" and no name, whatever it
 * holds, can end the header or add one. Apps decode it with decodeURIComponent (or
 * urllib.parse.unquote); plain ASCII names arrive unchanged. See docs/auth.md.
 */
export function encodeIdentity(name: string): string {
  if (PLAIN_IDENTITY.test(name)) return name;
  let out = "";
  for (const byte of utf8.encode(name)) {
    out += byte >= 0x21 && byte <= 0x7e && byte !== 0x25
      ? String.fromCharCode(byte)
      : "%" + byte.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}
