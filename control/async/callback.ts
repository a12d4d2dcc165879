/**
 * Callback URLs: the check at submit (scheme, allow-listed host, addresses it resolves to)
 * and the POST of a finished call's answer. A callback is an outgoing request the caller
 * chooses, so it must not reach the control plane's own network: every address the host
 * resolves to is checked against private, loopback, link-local and other special ranges,
 * at submit and again right before each POST (DNS may change in between), and redirects
 * are not followed.
 */

import { type CallbackConfig, ipBytes, parseCidr } from "./config.ts";
import type { Call } from "./store.ts";

/** Why `text` may not be a callback URL, or undefined when it may (addresses checked too). */
export async function callbackRefusal(
  text: string,
  config: CallbackConfig,
  resolve: (host: string) => Promise<string[]> = resolveHost,
): Promise<string | undefined> {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return "X-Callback-Url is not a URL";
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return "X-Callback-Url must be http or https";
  }
  if (url.username || url.password) return "X-Callback-Url must not carry credentials";
  if (!hostAllowed(url, config.allow)) {
    return `callbacks to ${url.host} are not allowed (f2s.async.callbacks.allow)`;
  }
  let addresses: string[];
  try {
    addresses = await resolve(url.hostname.replace(/^\[|\]$/g, ""));
  } catch (e) {
    return `the callback host ${url.hostname} does not resolve: ${(e as Error).message}`;
  }
  if (addresses.length === 0) return `the callback host ${url.hostname} does not resolve`;
  for (const a of addresses) {
    if (isSpecial(a) && !inNetworks(a, config.allowNetworks)) {
      return `the callback host ${url.hostname} resolves to ${a}, an internal address ` +
        "(allow it in f2s.async.callbacks.allow_networks)";
    }
  }
  return undefined;
}

function hostAllowed(url: URL, allow: string[]): boolean {
  const host = url.hostname.toLowerCase();
  const port = url.port || (url.protocol === "https:" ? "443" : "80");
  return allow.some((pattern) => {
    const [h, p] = pattern.startsWith("[")
      ? [pattern.slice(0, pattern.indexOf("]") + 1), pattern.slice(pattern.indexOf("]") + 2)]
      : pattern.split(":");
    if (p && p !== port) return false;
    if (h === "*") return true;
    if (h.startsWith("*.")) return host.endsWith(h.slice(1));
    return host === h;
  });
}

async function resolveHost(host: string): Promise<string[]> {
  if (ipBytes(host)) return [host];
  if (host === "localhost" || host.endsWith(".localhost")) return ["127.0.0.1", "::1"];
  const [v4, v6] = await Promise.allSettled([
    Deno.resolveDns(host, "A"),
    Deno.resolveDns(host, "AAAA"),
  ]);
  const out = [
    ...(v4.status === "fulfilled" ? v4.value : []),
    ...(v6.status === "fulfilled" ? v6.value : []),
  ];
  if (out.length === 0 && v4.status === "rejected") throw v4.reason;
  return out;
}

const SPECIAL_V4 = [
  "0.0.0.0/8",
  "10.0.0.0/8",
  "100.64.0.0/10",
  "127.0.0.0/8",
  "169.254.0.0/16",
  "172.16.0.0/12",
  "192.0.0.0/24",
  "192.168.0.0/16",
  "198.18.0.0/15",
  "224.0.0.0/3",
].map((c) => parseCidr(c)!);
const SPECIAL_V6 = ["::/127", "fc00::/7", "fe80::/10", "ff00::/8"].map((c) => parseCidr(c)!);
const MAPPED = ["::ffff:0:0/96", "64:ff9b::/96"].map((c) => parseCidr(c)!);

/** Private, loopback, link-local, multicast and other addresses no public host has. */
export function isSpecial(address: string): boolean {
  const b = ipBytes(address);
  if (!b) return true;
  if (b.length === 4) return SPECIAL_V4.some((c) => contains(c, b));
  // An IPv4 address inside IPv6 (mapped, NAT64) is judged as the IPv4 address.
  if (MAPPED.some((c) => contains(c, b))) return isSpecial(b.slice(12).join("."));
  return SPECIAL_V6.some((c) => contains(c, b));
}

function inNetworks(address: string, networks: string[]): boolean {
  const b = ipBytes(address);
  return !!b && networks.some((n) => {
    const c = parseCidr(n);
    return !!c && contains(c, b);
  });
}

function contains(c: { bytes: number[]; bits: number }, b: number[]): boolean {
  if (c.bytes.length !== b.length) return false;
  for (let i = 0; i < c.bits; i += 8) {
    const bits = Math.min(8, c.bits - i);
    const mask = (0xff << (8 - bits)) & 0xff;
    if ((c.bytes[i / 8] & mask) !== (b[i / 8] & mask)) return false;
  }
  return true;
}

/** POSTs a finished call's answer to its callback; throws with the reason when it failed. */
export async function postCallback(call: Call, config: CallbackConfig): Promise<void> {
  const refusal = await callbackRefusal(call.callback!, config);
  if (refusal) throw new Error(refusal);
  const contentType = call.resultHeaders?.find(([k]) => k === "content-type")?.[1];
  const headers: Record<string, string> = {
    "x-call-id": call.id,
    "x-f2s-function": call.function,
    "x-f2s-call-state": call.state,
    "x-f2s-status": String(call.status ?? 0),
    "x-f2s-attempts": String(call.attempts),
  };
  if (contentType) headers["content-type"] = contentType;
  if (call.resultTruncated) headers["x-f2s-result-truncated"] = "true";
  const res = await fetch(call.callback!, {
    method: "POST",
    headers,
    body: call.resultBody as Uint8Array<ArrayBuffer> | undefined ?? null,
    redirect: "manual",
    signal: AbortSignal.timeout(config.timeout),
  });
  await res.body?.cancel();
  if (res.status < 200 || res.status >= 300) {
    throw new Error(`the callback answered ${res.status}`);
  }
}
