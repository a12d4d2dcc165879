/**
 * Kafka triggers as the control plane runs them: one consumer per consumer group (shared
 * with other control-plane replicas through the group), one long-lived producer for the
 * answers, and a small probe that tells `/health` and `f2s_kafka_connected` whether the
 * brokers answer. Start-up never waits for Kafka: everything connects in the background
 * and reconnects after failures, while HTTP keeps being served.
 *
 * Each message is handled by `deliver` (control/kafka/deliver.ts) and its offset committed
 * only afterwards, one partition's messages strictly in order.
 */

import { Buffer } from "node:buffer";
import client from "prom-client";
// @ts-types="./kafkajs.d.ts"
import {
  type Admin,
  type Consumer,
  Kafka,
  type KafkaMessage,
  type LogEntry,
  logLevel,
  Partitioners,
  type Producer,
} from "kafkajs";
import type { FunctionDef } from "../../common/function.ts";
import { createLogger, type Logger } from "../../common/log.ts";
import type { EventLog } from "../events.ts";
import { type KafkaConfig, listenerGroup } from "./config.ts";
import { backoffFor, deliver, type Route } from "./deliver.ts";
import type { ConsumedMessage, OutgoingRecord } from "./message.ts";
import { createKafkaMetrics } from "./metrics.ts";

export interface KafkaTriggersDeps {
  config: KafkaConfig;
  /** A function by name or Kubernetes UID, as deployed right now. */
  resolve(ref: string): FunctionDef | undefined;
  /** The dispatcher path; never throws (errors come back as 4xx/5xx responses). */
  invoke(fn: FunctionDef, req: Request, requestId: string): Promise<Response>;
  events: EventLog;
  registry?: client.Registry;
  log?: Logger;
  /** Overrides the config's client id (e.g. to tell replicas apart in broker logs). */
  clientId?: string;
}

export interface KafkaHealth {
  enabled: boolean;
  connected: boolean;
  detail?: string;
}

export interface KafkaTriggers {
  health(): KafkaHealth;
  /** Finishes in-flight messages, commits them, leaves the groups and disconnects. */
  stop(): Promise<void>;
}

/** How often the brokers are asked whether they are there, and how long they may take. */
const PROBE_INTERVAL_MS = 3_000;
const PROBE_TIMEOUT_MS = 3_000;
/** Longest a fetch waits at the broker for new records (Kafka's Java client uses 500 ms). */
const FETCH_MAX_WAIT_MS = 1_000;
/** Bounds each step of shutdown, so a dead broker cannot hold the process. */
const STOP_STEP_TIMEOUT_MS = 10_000;

export function startKafkaTriggers(deps: KafkaTriggersDeps): Promise<KafkaTriggers> {
  const { config } = deps;
  if (!config.enabled) {
    return Promise.resolve({
      health: () => ({ enabled: false, connected: false, detail: "disabled" }),
      stop: () => Promise.resolve(),
    });
  }
  if (config.brokers.length === 0) {
    // Only reachable through F2S_KAFKA_ENABLED without brokers (the file is validated).
    (deps.log ?? createLogger("kafka")).error("kafka is enabled but no brokers are configured");
    return Promise.resolve({
      health: () => ({ enabled: true, connected: false, detail: "no brokers configured" }),
      stop: () => Promise.resolve(),
    });
  }
  return Promise.resolve(start(deps));
}

interface GroupState {
  group: string;
  joined: boolean;
  problem?: string;
  /** Resolves when the current consumer died for good and must be replaced. */
  dead?: () => void;
  /** Messages being handled right now, and who waits for that to reach zero. */
  inflight: number;
  idle?: () => void;
}

function start(deps: KafkaTriggersDeps): KafkaTriggers {
  const { config, events } = deps;
  const log = deps.log ?? createLogger("kafka");
  const stopping = new AbortController();
  const signal = stopping.signal;
  const kafka = kafkaClient(deps.clientId ?? config.clientId, config.brokers, log);

  const groups = new Map<string, GroupState>();
  let probeProblem: string | undefined = "connecting";
  let wasConnected: boolean | undefined;

  function health(): KafkaHealth {
    if (signal.aborted) return { enabled: true, connected: false, detail: "stopped" };
    const problems: string[] = [];
    if (probeProblem) problems.push(`brokers: ${probeProblem}`);
    for (const g of groups.values()) {
      if (!g.joined) problems.push(`group ${g.group}: ${g.problem ?? "joining"}`);
    }
    return problems.length === 0
      ? { enabled: true, connected: true }
      : { enabled: true, connected: false, detail: problems.join("; ") };
  }

  const metrics = createKafkaMetrics(
    deps.registry ?? new client.Registry(),
    () => health().connected,
  );

  /**
   * Records a platform event when connectivity changes, not on every probe. Joining at
   * start-up is not a change; brokers that do not answer at start-up are.
   */
  function noteHealth() {
    if (signal.aborted) return;
    const h = health();
    if (h.connected === wasConnected) return;
    if (h.connected) {
      events.record("kafka.connected", `connected to ${config.brokers.join(",")}`);
      log.info("kafka connected", { brokers: config.brokers });
      wasConnected = true;
    } else if (wasConnected || (probeProblem && probeProblem !== "connecting")) {
      events.record("kafka.disconnected", h.detail ?? "disconnected");
      log.warn("kafka unhealthy", { detail: h.detail });
      wasConnected = false;
    }
  }

  // --- producer: one for every answer, connected on first use and after failures.
  const producer: Producer = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    allowAutoTopicCreation: true,
  });
  let producerReady: Promise<void> | undefined;
  function ensureProducer(): Promise<void> {
    producerReady ??= producer.connect().catch((e) => {
      producerReady = undefined;
      throw e;
    });
    return producerReady;
  }
  async function produce(records: OutgoingRecord[]): Promise<void> {
    await ensureProducer();
    const byTopic = new Map<string, OutgoingRecord[]>();
    for (const r of records) byTopic.set(r.topic, [...byTopic.get(r.topic) ?? [], r]);
    try {
      await producer.sendBatch({
        acks: -1,
        topicMessages: [...byTopic].map(([topic, rs]) => ({
          topic,
          messages: rs.map((r) => ({
            key: r.key,
            value: Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength),
            headers: r.headers,
          })),
        })),
      });
    } catch (e) {
      if (/disconnected/i.test((e as Error).message)) producerReady = undefined;
      throw e;
    }
  }

  // --- consumers: one per consumer group, each subscribed to its listeners' topics.
  const routesByGroup = new Map<string, Map<string, Route[]>>();
  for (const listener of config.listeners) {
    const group = listenerGroup(config, listener);
    const byTopic = routesByGroup.get(group) ?? new Map<string, Route[]>();
    routesByGroup.set(group, byTopic);
    const routes = byTopic.get(listener.topic) ?? [];
    byTopic.set(listener.topic, routes);
    for (const action of listener.actions) {
      routes.push({
        action,
        id: `${listener.topic}/${action.name}`,
        responseTopic: action.response.topic ?? listener.topic,
        deadLetterTopic: listener.deadLetterTopic ?? config.deadLetterTopic,
      });
    }
  }

  const deliveryDeps = {
    resolve: deps.resolve,
    invoke: deps.invoke,
    produce,
    sleep,
    signal,
    policy: config,
    metrics,
    events,
    log,
  };

  async function handle(
    state: GroupState,
    consumer: Consumer,
    routes: Route[],
    message: ConsumedMessage,
    heartbeat: () => Promise<void>,
  ): Promise<void> {
    // Once stopping, messages are left uncommitted for the partition's next owner. (With
    // autoCommit off, kafkajs never commits on its own, so returning is safe here.)
    if (signal.aborted) return;
    state.inflight++;
    try {
      await handleNow(consumer, routes, message, heartbeat);
    } finally {
      if (--state.inflight === 0) state.idle?.();
    }
  }

  async function handleNow(
    // The consumer that fetched the message commits it, even if it was replaced meanwhile.
    consumer: Consumer,
    routes: Route[],
    message: ConsumedMessage,
    heartbeat: () => Promise<void>,
  ): Promise<void> {
    metrics.consumed.inc({ topic: message.topic });
    // A slow function must not get this member thrown out of its group.
    const beat = setInterval(() => heartbeat().catch(() => {}), config.heartbeatInterval);
    try {
      await deliver(message, routes, deliveryDeps);
    } catch (e) {
      if (signal.aborted) {
        log.info("stopping: message left uncommitted for redelivery", {
          topic: message.topic,
          partition: message.partition,
          offset: message.offset,
        });
        return;
      }
      throw e;
    } finally {
      clearInterval(beat);
    }
    try {
      await consumer.commitOffsets([{
        topic: message.topic,
        partition: message.partition,
        offset: (BigInt(message.offset) + 1n).toString(),
      }]);
    } catch (e) {
      // Not fatal: a later commit covers this offset, or the partition's next owner
      // processes the message again (at least once).
      metrics.errors.inc({ kind: "commit" });
      log.warn("offset commit failed", {
        topic: message.topic,
        partition: message.partition,
        offset: message.offset,
        error: e,
      });
    }
  }

  async function runGroup(state: GroupState, byTopic: Map<string, Route[]>): Promise<void> {
    for (let attempt = 0; !signal.aborted; attempt++) {
      const consumer = kafka.consumer({
        groupId: state.group,
        sessionTimeout: config.sessionTimeout,
        heartbeatInterval: config.heartbeatInterval,
        // A stop or rebalance waits for the fetch in progress; kafkajs' 5 s makes that slow.
        maxWaitTimeInMs: FETCH_MAX_WAIT_MS,
        allowAutoTopicCreation: true,
        retry: { initialRetryTime: 300, maxRetryTime: 5_000, retries: 8 },
      });
      const died = new Promise<void>((resolve) => (state.dead = resolve));
      consumer.on(consumer.events.GROUP_JOIN, (e) => {
        state.joined = true;
        state.problem = undefined;
        attempt = 0;
        const assigned = Object.entries(e.payload.memberAssignment)
          .map(([t, ps]) => `${t}[${ps.join(",")}]`).join(" ");
        log.info("joined consumer group", { group: state.group, assigned });
        noteHealth();
      });
      consumer.on(consumer.events.CRASH, (e) => {
        state.joined = false;
        state.problem = `consumer crashed: ${e.payload.error.message}`;
        metrics.errors.inc({ kind: "consumer_crash" });
        log.warn("consumer crashed", {
          group: state.group,
          error: e.payload.error,
          restart: e.payload.restart,
        });
        noteHealth();
        if (!e.payload.restart) state.dead?.();
      });
      const setup = (async () => {
        await consumer.connect();
        await consumer.subscribe({
          topics: [...byTopic.keys()],
          fromBeginning: config.fromBeginning,
        });
        await consumer.run({
          autoCommit: false,
          partitionsConsumedConcurrently: config.concurrentPartitions,
          eachMessage: ({ topic, partition, message, heartbeat }) =>
            handle(
              state,
              consumer,
              byTopic.get(topic) ?? [],
              consumed(topic, partition, message),
              heartbeat,
            ),
        });
      })();
      try {
        // A stop must not wait for a connect that keeps retrying against absent brokers.
        await Promise.race([
          setup.then(() => Promise.race([died, aborted(signal)])),
          aborted(signal),
        ]);
      } catch (e) {
        state.joined = false;
        state.problem = `cannot connect: ${(e as Error).message}`;
        metrics.errors.inc({ kind: "connect" });
        log.warn("consumer could not start; retrying", { group: state.group, error: e });
        noteHealth();
      }
      setup.catch(() => {}); // its failure was handled above, or no longer matters
      if (signal.aborted) {
        // kafkajs drops commits once its disconnect began, so the messages being handled
        // finish and commit first; new ones are refused by `handle` meanwhile.
        try {
          consumer.pause([...byTopic.keys()].map((topic) => ({ topic })));
        } catch {
          // Not running (never connected): nothing to pause.
        }
        await idle(state);
      }
      await withTimeout(consumer.disconnect(), STOP_STEP_TIMEOUT_MS).catch((e) =>
        log.warn("consumer did not disconnect cleanly", { group: state.group, error: e })
      );
      state.joined = false;
      if (signal.aborted) return;
      await sleep(backoffFor({ ...config, retryBackoffMax: 10_000 }, Math.min(attempt, 5)), signal)
        .catch(() => {});
    }
  }

  // --- probe: the brokers answer a metadata request, or the reason they did not.
  let admin: Admin | undefined;
  async function probe(): Promise<void> {
    let fresh: Admin | undefined;
    try {
      if (!admin) {
        fresh = kafka.admin({ retry: { retries: 0 } });
        await withTimeout(fresh.connect(), PROBE_TIMEOUT_MS);
        admin = fresh;
        fresh = undefined;
      }
      await withTimeout(admin.describeCluster(), PROBE_TIMEOUT_MS);
      probeProblem = undefined;
    } catch (e) {
      probeProblem = (e as Error).message || String(e);
      // A new client next time: one whose connection broke may not recover by itself.
      for (const stale of [admin, fresh]) stale?.disconnect().catch(() => {});
      admin = undefined;
    }
    noteHealth();
  }
  const probing = (async () => {
    while (!signal.aborted) {
      await probe();
      await sleep(PROBE_INTERVAL_MS, signal).catch(() => {});
    }
  })();

  const running: Promise<void>[] = [];
  for (const [group, byTopic] of routesByGroup) {
    const state: GroupState = { group, joined: false, inflight: 0 };
    groups.set(group, state);
    running.push(runGroup(state, byTopic));
  }
  log.info("kafka triggers starting", {
    brokers: config.brokers,
    groups: [...groups.keys()],
    topics: config.listeners.map((l) => l.topic),
  });

  return {
    health,
    async stop() {
      if (signal.aborted) return;
      stopping.abort();
      // Each group's loop lets in-flight messages finish, disconnects its consumer and ends.
      await Promise.all(running);
      await probing;
      await withTimeout(producer.disconnect(), STOP_STEP_TIMEOUT_MS).catch(() => {});
      await admin?.disconnect().catch(() => {});
      log.info("kafka triggers stopped");
    },
  };
}

function idle(state: GroupState): Promise<void> {
  if (state.inflight === 0) return Promise.resolve();
  return new Promise((resolve) => (state.idle = resolve));
}

function consumed(topic: string, partition: number, m: KafkaMessage): ConsumedMessage {
  const headers: [string, Uint8Array][] = [];
  for (const [name, value] of Object.entries(m.headers ?? {})) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v === undefined) continue;
      headers.push([name, typeof v === "string" ? new TextEncoder().encode(v) : v]);
    }
  }
  return { topic, partition, offset: m.offset, key: m.key, value: m.value, headers };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const done = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", done);
      resolve();
    }, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    }),
  ]);
}

/**
 * A kafkajs client as every Kafka part of F2S uses it (triggers, async calls, call state):
 * short connection timeout and bounded retries, so a broker that is down shows as a health
 * problem within seconds instead of a client retrying for minutes; its logs through ours.
 */
export function kafkaClient(clientId: string, brokers: string[], log: Logger): Kafka {
  return new Kafka({
    clientId,
    brokers,
    connectionTimeout: 3_000,
    logLevel: logLevel.INFO,
    logCreator: kafkaLogCreator(log),
    retry: { initialRetryTime: 300, maxRetryTime: 5_000, retries: 8 },
  });
}

/**
 * kafkajs logs through ours: its ERROR lines are mostly transient (a coordinator moving,
 * a broker restarting) and recovered from, so they become warnings; INFO becomes debug.
 * F2S logs its own final failures as errors.
 */
export function kafkaLogCreator(log: Logger) {
  return () => ({ level, namespace, log: entry }: LogEntry) => {
    const { message, timestamp: _t, logger: _l, stack: _s, ...fields } = entry;
    const line = { kafkajs: namespace, ...fields };
    if (level <= logLevel.WARN) log.warn(message, line);
    else log.debug(message, line);
  };
}
