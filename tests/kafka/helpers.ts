/**
 * What the Kafka trigger tests share besides the broker: a real HTTP server standing in
 * for deployed functions (one handler per function name, every request recorded), an
 * `invoke` that forwards to it the way the dispatcher would, and a plain kafkajs client
 * to create topics, produce, read topics back and look at committed offsets.
 */

// @ts-types="../../control/kafka/kafkajs.d.ts"
import { Kafka, type KafkaMessage, logLevel, Partitioners } from "kafkajs";
import { type FunctionDef, parseFunction } from "../../common/function.ts";
import { errorResponse } from "../../common/protocol.ts";

/** One request a test function received. */
export interface Received {
  fn: string;
  method: string;
  body: string;
  headers: Headers;
}

export type FnHandler = (req: Received) => Response | Promise<Response>;

export interface FunctionServer {
  url: string;
  received: Received[];
  /** Sets what the function `name` answers (default: 200 echoing "name:body"). */
  handle(name: string, handler: FnHandler): void;
  bodiesFor(name: string): string[];
  close(): Promise<void>;
}

export function startFunctionServer(): FunctionServer {
  const received: Received[] = [];
  const handlers = new Map<string, FnHandler>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const fn = new URL(req.url).pathname.slice(1);
    const r: Received = { fn, method: req.method, body: await req.text(), headers: req.headers };
    received.push(r);
    const handler = handlers.get(fn);
    if (handler) return await handler(r);
    return new Response(`${fn}:${r.body}`, { headers: { "content-type": "text/plain" } });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    received,
    handle: (name, handler) => handlers.set(name, handler),
    bodiesFor: (name) => received.filter((r) => r.fn === name).map((r) => r.body),
    close: () => server.shutdown(),
  };
}

/** A FunctionDef as the control plane would have it; endpoint `/<name>`. */
export function testFunction(name: string, uid?: string, method = "POST"): FunctionDef {
  const parsed = parseFunction({
    metadata: { name, uid },
    spec: { endpoint: `/${name}`, method },
    target: { containerImage: `test/${name}` },
  });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  return parsed.fn;
}

/** `resolve` over a fixed set of functions, by name or uid. */
export function resolverOf(fns: FunctionDef[]): (ref: string) => FunctionDef | undefined {
  return (ref) => fns.find((f) => f.name === ref || f.uid === ref);
}

/**
 * Stands in for the dispatcher: forwards to the function server and, like the dispatcher,
 * never throws (an unreachable function becomes a 502 JSON error).
 */
export function forwardingInvoke(baseUrl: string) {
  return async (fn: FunctionDef, req: Request, _requestId: string): Promise<Response> => {
    try {
      return await fetch(`${baseUrl}/${fn.name}`, {
        method: req.method,
        headers: req.headers,
        body: await req.arrayBuffer(),
      });
    } catch (e) {
      return errorResponse(502, "function unreachable", { message: (e as Error).message });
    }
  };
}

/** A kafkajs client for the test's own producing and reading; quiet unless it fails. */
export function testKafka(bootstrap: string): Kafka {
  return new Kafka({
    clientId: "f2s-test",
    brokers: [bootstrap],
    logLevel: logLevel.NOTHING,
    retry: { initialRetryTime: 200, maxRetryTime: 2000, retries: 10 },
  });
}

export async function createTopics(
  kafka: Kafka,
  topics: { topic: string; partitions?: number }[],
): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: topics.map((t) => ({ topic: t.topic, numPartitions: t.partitions ?? 1 })),
    });
  } finally {
    await admin.disconnect();
  }
}

export interface TestRecord {
  key?: string | null;
  value: string;
  headers?: Record<string, string>;
  partition?: number;
}

export async function produce(kafka: Kafka, topic: string, records: TestRecord[]): Promise<void> {
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  try {
    await producer.send({ topic, acks: -1, messages: records });
  } finally {
    await producer.disconnect();
  }
}

/** A record read back, decoded. */
export interface ReadRecord {
  partition: number;
  offset: string;
  key: string | null;
  value: string;
  headers: Record<string, string>;
}

/**
 * Reads `topic` from the beginning until `count` records arrived (then waits `settleMs`
 * more to catch extras a test must not see) or `timeoutMs` passed. Uses a throw-away group.
 */
export async function readTopic(
  kafka: Kafka,
  topic: string,
  count: number,
  options: { timeoutMs?: number; settleMs?: number } = {},
): Promise<ReadRecord[]> {
  const { timeoutMs = 30_000, settleMs = 0 } = options;
  const consumer = kafka.consumer({
    groupId: `reader-${crypto.randomUUID()}`,
    sessionTimeout: 6_000,
    heartbeatInterval: 500,
    maxWaitTimeInMs: 200,
  });
  const records: ReadRecord[] = [];
  let enough: () => void = () => {};
  const gotEnough = new Promise<void>((r) => (enough = r));
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      eachMessage: ({ partition, message }) => {
        records.push(decode(partition, message));
        if (records.length >= count) enough();
        return Promise.resolve();
      },
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([gotEnough, new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    if (settleMs > 0) await new Promise((r) => setTimeout(r, settleMs));
  } finally {
    await consumer.disconnect();
  }
  return records;
}

function decode(partition: number, m: KafkaMessage): ReadRecord {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(m.headers ?? {})) {
    if (v !== undefined) headers[k] = Array.isArray(v) ? v.map(String).join(",") : String(v);
  }
  return {
    partition,
    offset: m.offset,
    key: m.key === null ? null : m.key.toString(),
    value: m.value === null ? "" : m.value.toString(),
    headers,
  };
}

/** The group's committed offset per partition of `topic` (-1 when none). */
export async function committedOffsets(
  kafka: Kafka,
  group: string,
  topic: string,
): Promise<Record<number, number>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const [entry] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    return Object.fromEntries(entry.partitions.map((p) => [p.partition, Number(p.offset)]));
  } finally {
    await admin.disconnect();
  }
}

/** Polls `check` until it returns a truthy value, or fails naming `what`. */
export async function waitFor<T>(
  what: string,
  check: () => T | Promise<T>,
  timeoutMs = 30_000,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last}` : ""}`);
}

/** A promise with its resolve function, for "the function was called" style signals. */
export function signal<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
