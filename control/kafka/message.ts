/**
 * Translations between Kafka records and HTTP: the Request a message turns into for a
 * function, and the records F2S produces back (the response and the dead letter). Kept
 * free of the Kafka client so the same shapes serve the consumer, tests and docs.
 *
 * The request is a POST (or the function's own PUT/PATCH) whose body is the message value,
 * because a message always carries a payload; GET/HEAD/DELETE/OPTIONS/ANY functions get a
 * POST too. Message headers travel as HTTP headers when they are valid as such.
 */

import type { FunctionDef } from "../../common/function.ts";
import { HOP_BY_HOP_HEADERS, REQUEST_ID_HEADER, requestIdFrom } from "../../common/protocol.ts";
import type { MessageView } from "./match.ts";

/** A consumed record, decoded from the client's representation. */
export interface ConsumedMessage {
  topic: string;
  partition: number;
  offset: string;
  key: Uint8Array | null;
  value: Uint8Array | null;
  /** Header names as sent; a repeated header keeps every value. */
  headers: [string, Uint8Array][];
}

/** A record to produce. */
export interface OutgoingRecord {
  topic: string;
  key: string | null;
  value: Uint8Array;
  headers: Record<string, string>;
}

export const KAFKA_HEADERS = {
  topic: "x-f2s-kafka-topic",
  partition: "x-f2s-kafka-partition",
  offset: "x-f2s-kafka-offset",
  key: "x-f2s-kafka-key",
  originalKey: "x-f2s-original-key",
  function: "x-f2s-function",
  status: "x-f2s-status",
  /** Which action produced a record: lets that action ignore its own responses. */
  action: "x-f2s-action",
  error: "x-f2s-error",
  /** How many F2S responses led to this record; bounds loops between actions. */
  hops: "x-f2s-hops",
} as const;

/** A record that is the answer to this many answers in a row fires nothing more. */
export const MAX_HOPS = 10;

const decoder = new TextDecoder();
// Headers the HTTP layer owns or that would confuse it; never copied from a message.
const NOT_FORWARDED = new Set<string>([
  ...HOP_BY_HOP_HEADERS,
  "host",
  "content-length",
  REQUEST_ID_HEADER,
  ...Object.values(KAFKA_HEADERS),
]);

export function text(bytes: Uint8Array | null): string | undefined {
  return bytes === null ? undefined : decoder.decode(bytes);
}

/** What triggers look at: key, value and headers as text. */
export function viewOf(message: ConsumedMessage): MessageView {
  const headers = new Map<string, string[]>();
  for (const [name, value] of message.headers) {
    const lower = name.toLowerCase();
    headers.set(lower, [...headers.get(lower) ?? [], decoder.decode(value)]);
  }
  return { key: text(message.key), value: text(message.value) ?? "", headers };
}

/** The message's own request id when it carries a sane one, else a new one. */
export function requestIdOf(message: ConsumedMessage): string {
  const h = new Headers();
  for (const [name, value] of message.headers) {
    if (name.toLowerCase() === REQUEST_ID_HEADER) {
      try {
        h.set(REQUEST_ID_HEADER, decoder.decode(value));
      } catch {
        // Not a valid header value: a new id is made below.
      }
      break;
    }
  }
  return requestIdFrom(h);
}

/** The HTTP method a function is invoked with for a message (see the top comment). */
export function methodFor(fn: FunctionDef): string {
  return fn.method === "PUT" || fn.method === "PATCH" ? fn.method : "POST";
}

/** The request handed to the dispatcher for one function and one message. */
export function invocationRequest(
  fn: FunctionDef,
  message: ConsumedMessage,
  requestId: string,
  contentType = "auto",
): Request {
  const headers = new Headers();
  for (const [name, value] of message.headers) {
    if (NOT_FORWARDED.has(name.toLowerCase())) continue;
    try {
      headers.append(name, decoder.decode(value));
    } catch {
      // A Kafka header name or value that HTTP cannot carry (spaces, newlines): dropped.
    }
  }
  headers.set(REQUEST_ID_HEADER, requestId);
  headers.set(KAFKA_HEADERS.topic, message.topic);
  headers.set(KAFKA_HEADERS.partition, String(message.partition));
  headers.set(KAFKA_HEADERS.offset, message.offset);
  const key = headerSafe(text(message.key));
  if (key !== undefined) headers.set(KAFKA_HEADERS.key, key);
  if (!headers.has("content-type")) {
    headers.set("content-type", contentTypeOf(message.value, contentType));
  }
  return new Request(`http://kafka.f2s.internal${fn.endpoint}`, {
    method: methodFor(fn),
    headers,
    // Kafka's client hands out Node Buffers, which are Uint8Arrays over an ArrayBuffer.
    body: (message.value ?? new Uint8Array()) as Uint8Array<ArrayBuffer>,
  });
}

/**
 * The content-type of a message that carries none: the configured one, or for "auto"
 * JSON when the value parses as JSON (the original F2S handed values to `start.sh
 * input.json`), else bytes.
 */
export function contentTypeOf(value: Uint8Array | null, configured: string): string {
  if (configured !== "auto") return configured;
  if (value === null || value.length === 0) return "application/octet-stream";
  try {
    JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(value));
    return "application/json";
  } catch {
    return "application/octet-stream";
  }
}

/** The record carrying a function's answer to the response topic. */
export function responseRecord(opts: {
  topic: string;
  key: string | undefined;
  message: ConsumedMessage;
  action: string;
  functionName: string;
  status: number;
  body: Uint8Array;
  contentType?: string | null;
  requestId: string;
}): OutgoingRecord {
  const headers: Record<string, string> = {
    [REQUEST_ID_HEADER]: opts.requestId,
    [KAFKA_HEADERS.function]: opts.functionName,
    [KAFKA_HEADERS.status]: String(opts.status),
    [KAFKA_HEADERS.action]: opts.action,
    [KAFKA_HEADERS.hops]: String(hopsOf(opts.message) + 1),
  };
  const originalKey = text(opts.message.key);
  if (originalKey !== undefined) headers[KAFKA_HEADERS.originalKey] = originalKey;
  if (opts.contentType) headers["content-type"] = opts.contentType;
  return {
    topic: opts.topic,
    key: opts.key ?? originalKey ?? null,
    value: opts.body,
    headers,
  };
}

/** A copy of a message whose invocation finally failed, with why, for a dead-letter topic. */
export function deadLetterRecord(opts: {
  topic: string;
  message: ConsumedMessage;
  action: string;
  functionName: string;
  status: number;
  error: string;
  requestId: string;
}): OutgoingRecord {
  const headers: Record<string, string> = {};
  for (const [name, value] of opts.message.headers) headers[name] = decoder.decode(value);
  Object.assign(headers, {
    [REQUEST_ID_HEADER]: opts.requestId,
    [KAFKA_HEADERS.function]: opts.functionName,
    [KAFKA_HEADERS.status]: String(opts.status),
    [KAFKA_HEADERS.action]: opts.action,
    [KAFKA_HEADERS.error]: opts.error,
    [KAFKA_HEADERS.topic]: opts.message.topic,
    [KAFKA_HEADERS.partition]: String(opts.message.partition),
    [KAFKA_HEADERS.offset]: opts.message.offset,
  });
  return {
    topic: opts.topic,
    key: text(opts.message.key) ?? null,
    value: opts.message.value ?? new Uint8Array(),
    headers,
  };
}

/** The `x-f2s-hops` of a message (0 for records F2S did not produce). */
export function hopsOf(message: ConsumedMessage): number {
  const raw = message.headers.find(([name]) => name.toLowerCase() === KAFKA_HEADERS.hops);
  const n = raw ? Number(decoder.decode(raw[1])) : 0;
  return Number.isInteger(n) && n > 0 ? n : 0;
}

function headerSafe(s: string | undefined): string | undefined {
  if (s === undefined) return undefined;
  try {
    new Headers({ h: s });
    return s;
  } catch {
    return encodeURIComponent(s);
  }
}
