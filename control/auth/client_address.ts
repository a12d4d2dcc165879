/**
 * Which address a request comes from, for throttling sign-ins: the TCP peer, or, when the
 * peer is a configured trusted proxy (an ingress), the nearest address in X-Forwarded-For
 * that is not itself a trusted proxy. X-Forwarded-For from anyone else is ignored, since a
 * client can write any address there.
 */

import type { HeaderGetter } from "../../common/protocol.ts";

/** Parses "10.0.0.7" or "10.0.0.0/8" (IPv4) or an exact IPv6 address; undefined if not one. */
export function parseTrusted(text: string): ((address: string) => boolean) | undefined {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})(?:\/(\d{1,2}))?$/.exec(text);
  if (m) {
    const net = ipv4(m[1]);
    const bits = m[2] === undefined ? 32 : Number(m[2]);
    if (net === undefined || bits > 32) return undefined;
    const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
    return (address) => {
      const a = ipv4(address.replace(/^::ffff:/, ""));
      return a !== undefined && ((a & mask) >>> 0) === ((net & mask) >>> 0);
    };
  }
  if (/^[0-9a-fA-F:]+$/.test(text) && text.includes(":")) {
    const want = text.toLowerCase();
    return (address) => address.toLowerCase() === want;
  }
  return undefined;
}

function ipv4(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return undefined;
    n = n * 256 + Number(p);
  }
  return n >>> 0;
}

/** Builds the resolver for the configured trusted proxies (already validated). */
export function clientAddressResolver(
  trusted: string[],
): (peer: string | undefined, headers: HeaderGetter) => string {
  const tests = trusted.map(parseTrusted).filter((t) => t !== undefined);
  const isTrusted = (a: string) => tests.some((t) => t(a));
  return (peer, headers) => {
    const address = peer ?? "unknown";
    if (tests.length === 0 || !isTrusted(address)) return address;
    const hops = (headers.get("x-forwarded-for") ?? "").split(",").map((h) => h.trim())
      .filter((h) => h !== "");
    // The right-most entries were added by our proxies; the first untrusted one is the client.
    for (let i = hops.length - 1; i >= 0; i--) {
      if (!isTrusted(hops[i])) return hops[i].slice(0, 64);
    }
    return address;
  };
}
