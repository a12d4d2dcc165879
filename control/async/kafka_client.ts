/**
 * What the two Kafka parts of async calls share (the work topic, control/async/
 * kafka_queue.ts, and the call-state topic, control/async/call_state.ts): one client
 * setup, topic creation that tolerates other replicas racing to create it, and a send that
 * retries while a new topic gets its leaders, so a caller gets a 503 instead of a hang.
 */

import type { Buffer } from "node:buffer";
// @ts-types="../kafka/kafkajs.d.ts"
import {
  type Consumer,
  type EachMessagePayload,
  type Kafka,
  Partitioners,
  type Producer,
} from "kafkajs";
import type { Logger } from "../../common/log.ts";
import type { KafkaConfig } from "../kafka/config.ts";
import { kafkaClient } from "../kafka/triggers.ts";

export function asyncKafka(config: KafkaConfig, suffix: string, log: Logger): Kafka {
  return kafkaClient(`${config.clientId}-${suffix}`, config.brokers, log);
}

/**
 * Creates the topic unless it exists. Several replicas may create it at once; losing that
 * race is fine, and the metadata may lag the creation: senders and consumers retry.
 */
async function ensureTopic(
  kafka: Kafka,
  topic: TopicSpec,
  signal: AbortSignal,
  log: Logger,
): Promise<void> {
  for (let attempt = 0; attempt < 10 && !signal.aborted; attempt++) {
    const admin = kafka.admin();
    try {
      await admin.connect();
      await admin.createTopics({ topics: [topic], waitForLeaders: true });
      return;
    } catch (e) {
      if (/already exists/i.test(String(e))) return;
      log.warn("creating an async topic failed; retrying", { topic: topic.topic, error: e });
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      await admin.disconnect().catch(() => {});
    }
  }
}

export interface TopicSpec {
  topic: string;
  numPartitions: number;
  configEntries?: { name: string; value: string }[];
}

/** A producer to `spec`'s topic; `ready` resolves once the topic exists and it is connected. */
export function topicProducer(
  kafka: Kafka,
  spec: TopicSpec,
  signal: AbortSignal,
  log: Logger,
): { producer: Producer; ready: Promise<void> } {
  const producer = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    allowAutoTopicCreation: false,
  });
  const ready = (async () => {
    await ensureTopic(kafka, spec, signal, log);
    await producer.connect();
  })();
  ready.catch((e) => log.error("an async topic is not ready", { topic: spec.topic, error: e }));
  return { producer, ready };
}

/**
 * Sends with acks from all in-sync replicas once `ready` resolved (15 s at most), retrying
 * errors for ten seconds: a topic just created takes a moment to have leaders everywhere.
 */
export async function sendAcked(
  producer: Producer,
  ready: Promise<void>,
  topic: string,
  message: { key: string; value: Buffer | null },
  signal: AbortSignal,
): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    ready,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error("Kafka is not reachable")), 15_000);
    }),
  ]).finally(() => clearTimeout(timer));
  for (let attempt = 0;; attempt++) {
    try {
      await producer.send({ topic, acks: -1, messages: [message] });
      return;
    } catch (e) {
      if (attempt >= 40 || signal.aborted) throw e;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

export interface ConsumeOptions {
  kafka: Kafka;
  config: KafkaConfig;
  groupId: string;
  topic: string;
  /** Waited for before the first consumer starts (the topic exists). */
  ready: Promise<void>;
  signal: AbortSignal;
  log: Logger;
  /** Names the consumer in logs ("the async consumer"). */
  what: string;
  partitionsConsumedConcurrently: number;
  eachMessage(c: Consumer, payload: EachMessagePayload): Promise<void>;
}

/**
 * One consumer at a time, from the earliest offset when the group has none; when it
 * crashes (a coordinator still loading, a broker gone) it is replaced by a new one after a
 * second, as kafkajs' own restart can stall. Resolves once `signal` aborted and the last
 * consumer disconnected.
 */
export async function consumeForever(o: ConsumeOptions): Promise<void> {
  const { log, signal } = o;
  await o.ready;
  while (!signal.aborted) {
    const c = o.kafka.consumer({
      groupId: o.groupId,
      sessionTimeout: o.config.sessionTimeout,
      heartbeatInterval: o.config.heartbeatInterval,
      maxWaitTimeInMs: 1_000,
      retry: {
        initialRetryTime: 300,
        maxRetryTime: 5_000,
        retries: 8,
        restartOnFailure: () => Promise.resolve(false),
      },
    });
    const died = new Promise<void>((resolve) => {
      c.on(c.events.CRASH, (e) => {
        log.warn(`${o.what} crashed; replacing it`, { error: e.payload.error });
        resolve();
      });
      signal.addEventListener("abort", () => resolve(), { once: true });
    });
    c.on(c.events.GROUP_JOIN, (e) => {
      const assigned = Object.entries(e.payload.memberAssignment)
        .map(([t, ps]) => `${t}[${ps.join(",")}]`).join(" ");
      log.info(`${o.what} joined its group`, { assigned });
    });
    try {
      await c.connect();
      await c.subscribe({ topics: [o.topic], fromBeginning: true });
      await c.run({
        autoCommit: false,
        partitionsConsumedConcurrently: o.partitionsConsumedConcurrently,
        eachMessage: (payload) => o.eachMessage(c, payload),
      });
      await died;
    } catch (e) {
      log.warn(`${o.what} could not start; retrying`, { error: e });
    }
    await c.disconnect().catch(() => {});
    if (!signal.aborted) await new Promise((r) => setTimeout(r, 1000));
  }
}
