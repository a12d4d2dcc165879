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
// @ts-types="../kafka/kafkajs.d.ts"
import { type Consumer, Kafka, logLevel, Partitioners, type Producer } from "kafkajs";
import type { Logger } from "../../common/log.ts";
import type { KafkaConfig } from "../kafka/config.ts";
import { kafkaLogCreator } from "../kafka/triggers.ts";
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
  /** Resolves when the local worker finished the call (any final state). */
  finished(id: string): Promise<void>;
  log: Logger;
}

export function startKafkaQueue(deps: KafkaQueueDeps): KafkaQueue {
  const { log, topic } = deps;
  const kafka = new Kafka({
    clientId: `${deps.kafka.clientId}-async`,
    brokers: deps.kafka.brokers,
    connectionTimeout: 3_000,
    logLevel: logLevel.INFO,
    logCreator: kafkaLogCreator(log),
    retry: { initialRetryTime: 300, maxRetryTime: 5_000, retries: 8 },
  });
  const stopping = new AbortController();
  const producer: Producer = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    allowAutoTopicCreation: false,
  });
  const ready = (async () => {
    // Several replicas may create the topic at once; losing that race is fine, and the
    // metadata may lag the creation: publish and the consumer retry until it is there.
    for (let attempt = 0; attempt < 10 && !stopping.signal.aborted; attempt++) {
      const admin = kafka.admin();
      try {
        await admin.connect();
        await admin.createTopics({
          topics: [{ topic, numPartitions: PARTITIONS }],
          waitForLeaders: true,
        });
        break;
      } catch (e) {
        if (/already exists/i.test(String(e))) break;
        log.warn("creating the async topic failed; retrying", { topic, error: e });
        await new Promise((r) => setTimeout(r, 500));
      } finally {
        await admin.disconnect().catch(() => {});
      }
    }
    await producer.connect();
  })();
  ready.catch((e) => log.error("the async topic is not ready", { topic, error: e }));

  let consumer: Consumer | undefined;
  /**
   * One consumer at a time; when it crashes (a coordinator still loading, a broker gone)
   * it is replaced by a new one after a second, as kafkajs' own restart can stall.
   */
  async function consumeLoop() {
    await ready;
    while (!stopping.signal.aborted) {
      const c = kafka.consumer({
        groupId: `${deps.kafka.consumerGroup}-async`,
        sessionTimeout: deps.kafka.sessionTimeout,
        heartbeatInterval: deps.kafka.heartbeatInterval,
        maxWaitTimeInMs: 1_000,
        retry: {
          initialRetryTime: 300,
          maxRetryTime: 5_000,
          retries: 8,
          restartOnFailure: () => Promise.resolve(false),
        },
      });
      consumer = c;
      const died = new Promise<void>((resolve) => {
        c.on(c.events.CRASH, (e) => {
          log.warn("the async consumer crashed; replacing it", { error: e.payload.error });
          resolve();
        });
        stopping.signal.addEventListener("abort", () => resolve(), { once: true });
      });
      c.on(c.events.GROUP_JOIN, (e) => {
        const assigned = Object.entries(e.payload.memberAssignment)
          .map(([t, ps]) => `${t}[${ps.join(",")}]`).join(" ");
        log.info("joined the async consumer group", { assigned });
      });
      try {
        await c.connect();
        await c.subscribe({ topics: [topic], fromBeginning: true });
        await c.run({
          autoCommit: false,
          partitionsConsumedConcurrently: PARTITIONS,
          eachMessage: async ({ partition, message, heartbeat }) => {
            const call = decode(message.value);
            if (call) await runHere(call, heartbeat);
            else {
              log.warn("not an async call; skipped", { topic, partition, offset: message.offset });
            }
            if (stopping.signal.aborted) return; // uncommitted: another replica takes it
            await c.commitOffsets([
              { topic, partition, offset: String(BigInt(message.offset) + 1n) },
            ]);
            if (call) uncommitted.delete(call.id);
          },
        });
        await died;
      } catch (e) {
        log.warn("the async consumer could not start; retrying", { error: e });
      }
      await c.disconnect().catch(() => {});
      if (!stopping.signal.aborted) await new Promise((r) => setTimeout(r, 1000));
    }
  }
  const consuming = consumeLoop();
  consuming.catch((e) => log.error("the async consumer stopped", { error: e }));

  const uncommitted = new Set<string>();
  async function runHere(call: NewCall, heartbeat: () => Promise<void>) {
    deps.store.insert(call);
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
    async publish(call) {
      // Brokers that do not answer must cost the caller a 503, not a request held forever.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        ready,
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error("Kafka is not reachable")), 15_000);
        }),
      ]).finally(() => clearTimeout(timer));
      // A topic just created (by another replica too) takes a moment to have leaders
      // everywhere, and a broker may be moving: errors are retried for ten seconds
      // before the caller gets a 503.
      for (let attempt = 0;; attempt++) {
        try {
          await producer.send({
            topic,
            acks: -1,
            messages: [{ key: call.id, value: encode(call) }],
          });
          return;
        } catch (e) {
          if (attempt >= 40 || stopping.signal.aborted) throw e;
          await new Promise((r) => setTimeout(r, 250));
        }
      }
    },
    async stop() {
      stopping.abort();
      await Promise.allSettled([consumer?.disconnect(), producer.disconnect(), consuming]);
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
