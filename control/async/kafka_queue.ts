/**
 * The async queue shared by control-plane replicas through Kafka: a submitted call is
 * produced to the `f2s-async` topic (acks from all in-sync replicas before the 202), and
 * every replica consumes the topic in one consumer group. A consumed call goes into the
 * replica's local queue (control/async/store.ts), where the worker runs it with the same
 * retries and concurrency bounds; its offset is committed only once the call finished. A
 * replica that dies leaves its calls uncommitted, so the group hands them to another
 * replica: nothing accepted is lost, and only calls running at the crash run twice.
 */

import { Buffer } from "node:buffer";
import type { Logger } from "../../common/log.ts";
import type { KafkaConfig } from "../kafka/config.ts";
import { asyncKafka, consumeForever, sendAcked, topicProducer } from "./kafka_client.ts";
import type { CallStore, NewCall } from "./store.ts";

/** Partitions of a topic F2S creates: calls of a partition are taken one at a time. */
const PARTITIONS = 16;
const HEARTBEAT_MS = 3_000;

export interface KafkaQueue {
  /** Resolves once the brokers acknowledged the call. */
  publish(call: NewCall): Promise<void>;
  /** Calls consumed here whose offsets are not committed yet. */
  pending(): string[];
  stop(): Promise<void>;
}

export interface KafkaQueueDeps {
  kafka: KafkaConfig;
  topic: string;
  store: CallStore;
  /** New work in the local queue. */
  queued(): void;
  /**
   * What other replicas did with a call before it came here (redelivered after a crash):
   * finished it (it is not run again), or made attempts (they count against the limit).
   */
  before?(id: string): { finished: boolean; attempts: number; nextAt: number } | undefined;
  /** Resolves when the local worker finished the call (any final state). */
  finished(id: string): Promise<void>;
  log: Logger;
}

export function startKafkaQueue(deps: KafkaQueueDeps): KafkaQueue {
  const { log, topic } = deps;
  const kafka = asyncKafka(deps.kafka, "async", log);
  const stopping = new AbortController();
  const { producer, ready } = topicProducer(
    kafka,
    { topic, numPartitions: PARTITIONS },
    stopping.signal,
    log,
  );

  const consuming = consumeForever({
    kafka,
    config: deps.kafka,
    groupId: `${deps.kafka.consumerGroup}-async`,
    topic,
    ready,
    signal: stopping.signal,
    log,
    what: "the async consumer",
    partitionsConsumedConcurrently: PARTITIONS,
    eachMessage: async (c, { partition, message, heartbeat }) => {
      const call = decode(message.value);
      if (call) await runHere(call, heartbeat);
      else log.warn("not an async call; skipped", { topic, partition, offset: message.offset });
      if (stopping.signal.aborted) return; // uncommitted: another replica takes it
      await c.commitOffsets([{ topic, partition, offset: String(BigInt(message.offset) + 1n) }]);
      if (call) uncommitted.delete(call.id);
    },
  });
  consuming.catch((e) => log.error("the async consumer stopped", { error: e }));

  const uncommitted = new Set<string>();
  async function runHere(call: NewCall, heartbeat: () => Promise<void>) {
    const before = deps.before?.(call.id);
    if (before?.finished) {
      log.info("a redelivered call was finished already; not run again", { callId: call.id });
      return;
    }
    deps.store.insert(call, Math.max(call.createdAt, before?.nextAt ?? 0), before?.attempts);
    uncommitted.add(call.id);
    const done = deps.finished(call.id);
    deps.queued();
    const beat = setInterval(() => heartbeat().catch(() => {}), HEARTBEAT_MS);
    try {
      await Promise.race([
        done,
        new Promise((r) => stopping.signal.addEventListener("abort", r, { once: true })),
      ]);
    } finally {
      clearInterval(beat);
    }
  }

  return {
    pending: () => [...uncommitted],
    publish: (call) =>
      // Brokers that do not answer must cost the caller a 503, not a request held forever.
      sendAcked(producer, ready, topic, { key: call.id, value: encode(call) }, stopping.signal),
    async stop() {
      stopping.abort();
      await Promise.allSettled([producer.disconnect(), consuming]);
    },
  };
}

function encode(call: NewCall): Buffer {
  const body = call.body ? Buffer.from(call.body).toString("base64") : null;
  return Buffer.from(JSON.stringify({ ...call, body }));
}

function decode(value: Uint8Array | null): NewCall | undefined {
  if (!value) return undefined;
  try {
    const v = JSON.parse(new TextDecoder().decode(value));
    if (typeof v?.id !== "string" || typeof v?.function !== "string") return undefined;
    return { ...v, body: v.body ? new Uint8Array(Buffer.from(v.body, "base64")) : null };
  } catch {
    return undefined;
  }
}
