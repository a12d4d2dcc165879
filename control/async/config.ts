/**
 * The `f2s.async` section of config.yaml: where `f2s dev` keeps its queue, retry pacing,
 * size limits, how long finished calls are kept, and which callback URLs are allowed.
 * Callbacks are refused unless allowed here: an open callback lets any caller make the
 * control plane send requests into its own network (SSRF). See docs/async.md.
 */

import { type Obj, Reader } from "../../common/config_util.ts";

export interface AsyncConfig {
  /**
   * SQLite file of the embedded queue. Default: `.f2s/async.db` in the functions folder
   * under `f2s dev`, `$TMPDIR/f2s-async-IDENTITY/async.db` under `f2s serve`.
   */
  path?: string;
  /** First retry delay (ms); doubles per attempt up to retryBackoffMax, with jitter. */
  retryBackoff: number;
  retryBackoffMax: number;
  /** Largest request body an async call may carry (bytes; it is stored). */
  maxBodyBytes: number;
  /** Largest answer body kept for GET /calls/{id} and the callback (bytes). */
  maxResultBytes: number;
  /** How long a finished call stays visible (ms). */
  retention: number;
  callbacks: CallbackConfig;
  /** The topic calls go through when Kafka is enabled. */
  kafkaTopic: string;
  /** The compacted topic every replica reads the state of every call from (Kafka enabled). */
  kafkaCallsTopic: string;
}

export interface CallbackConfig {
  /** Host patterns callbacks may go to: "hooks.example.com", "*.example.com", "host:8443". */
  allow: string[];
  /** CIDRs of private/loopback/link-local addresses a callback may reach anyway. */
  allowNetworks: string[];
  /** Attempts per callback before it is given up (recorded on the call). */
  maxAttempts: number;
  /** Time limit of one callback POST (ms). */
  timeout: number;
}

export function parseAsyncConfig(raw: unknown, path: string, r: Reader): AsyncConfig {
  const a: Obj = r.obj(raw, path);
  r.known(a, path, [
    "path",
    "retry_backoff",
    "retry_backoff_max",
    "max_body_bytes",
    "max_result_bytes",
    "retention",
    "callbacks",
    "kafka_topic",
    "kafka_calls_topic",
  ]);
  const c = r.obj(a.callbacks, `${path}.callbacks`);
  r.known(c, `${path}.callbacks`, ["allow", "allow_networks", "max_attempts", "timeout"]);
  const strings = (v: unknown, p: string) =>
    r.list(v, p).filter((x, i) => {
      if (typeof x === "string" && x.trim() !== "") return true;
      r.error(`${p}[${i}]`, "must be a non-empty string");
      return false;
    }).map((x) => (x as string).trim().toLowerCase());
  const allowNetworks = strings(c.allow_networks, `${path}.callbacks.allow_networks`);
  allowNetworks.forEach((n, i) => {
    if (!parseCidr(n)) {
      r.error(`${path}.callbacks.allow_networks[${i}]`, `"${n}" is not a CIDR like 10.0.0.0/8`);
    }
  });
  return {
    path: r.str(a.path, `${path}.path`),
    retryBackoff: r.duration(a.retry_backoff, `${path}.retry_backoff`, 1000),
    retryBackoffMax: r.duration(a.retry_backoff_max, `${path}.retry_backoff_max`, 60_000),
    maxBodyBytes: r.num(a.max_body_bytes, `${path}.max_body_bytes`, 1 << 20, 0, 64 << 20),
    maxResultBytes: r.num(a.max_result_bytes, `${path}.max_result_bytes`, 256 << 10, 0, 16 << 20),
    kafkaTopic: r.str(a.kafka_topic, `${path}.kafka_topic`, "f2s-async"),
    kafkaCallsTopic: r.str(a.kafka_calls_topic, `${path}.kafka_calls_topic`, "f2s-async-calls"),
    retention: r.duration(a.retention, `${path}.retention`, 3_600_000),
    callbacks: {
      allow: strings(c.allow, `${path}.callbacks.allow`),
      allowNetworks,
      maxAttempts: r.num(c.max_attempts, `${path}.callbacks.max_attempts`, 5, 1, 100),
      timeout: r.duration(c.timeout, `${path}.callbacks.timeout`, 10_000),
    },
  };
}

/** An IPv4 or IPv6 CIDR as address bytes and prefix length, or undefined. */
export function parseCidr(text: string): { bytes: number[]; bits: number } | undefined {
  const [addr, len] = text.split("/");
  const bytes = ipBytes(addr);
  if (!bytes) return undefined;
  const max = bytes.length * 8;
  const bits = len === undefined ? max : Number(len);
  if (!Number.isInteger(bits) || bits < 0 || bits > max || !/^\d*$/.test(len ?? "")) {
    return undefined;
  }
  return { bytes, bits };
}

/** The bytes of an IPv4 (4) or IPv6 (16) address literal, or undefined. */
export function ipBytes(text: string): number[] | undefined {
  const t = text.replace(/^\[|\]$/g, "");
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(t);
  if (v4) {
    const b = v4.slice(1).map(Number);
    return b.every((x) => x <= 255) ? b : undefined;
  }
  if (!t.includes(":") || !/^[0-9a-f:.]+$/i.test(t)) return undefined;
  const halves = t.split("::");
  if (halves.length > 2) return undefined;
  const groups = (s: string): number[] | undefined => {
    if (s === "") return [];
    const out: number[] = [];
    for (const part of s.split(":")) {
      if (part.includes(".")) {
        const v = ipBytes(part);
        if (!v || v.length !== 4) return undefined;
        out.push((v[0] << 8) | v[1], (v[2] << 8) | v[3]);
      } else {
        if (!/^[0-9a-f]{1,4}$/i.test(part)) return undefined;
        out.push(parseInt(part, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (!head || !tail) return undefined;
  const fill = 8 - head.length - tail.length;
  if (halves.length === 1 ? fill !== 0 : fill < 1) return undefined;
  const all = [...head, ...new Array(halves.length === 2 ? fill : 0).fill(0), ...tail];
  return all.flatMap((g) => [g >> 8, g & 255]);
}
