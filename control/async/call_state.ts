/**
 * Call state shared by every replica through Kafka: each change of a call (accepted,
 * running, waiting for a retry, finished, callback settled) is published, keyed by the
 * call id, to a compacted topic (`f2s-async-calls`), and every replica reads the whole
 * topic into its view (control/async/call_view.ts) with a group of its own. So any
 * replica answers GET /calls/{id} for any call, whichever accepted or ran it, and a call
 * accepted by a replica that died stays readable. Compaction keeps one record per call;
 * `delete` with a retention past `f2s.async.retention` bounds the topic in time as the
 * local queue is.
 */

import { Buffer } from "node:buffer";
import type { Logger } from "../../common/log.ts";
import type { KafkaConfig } from "../kafka/config.ts";
import { type CallRecord, type CallView, recordOf } from "./call_view.ts";
import type { Call, CallStore } from "./store.ts";
import { asyncKafka, consumeForever, sendAcked, topicProducer } from "./kafka_client.ts";

const PARTITIONS = 16;
/** Kafka's default largest record is 1 MiB: a result is cut to fit with room to spare. */
export const SHARED_RESULT_MAX = 512 << 10;
/** Unfinished records this many retentions old are dropped (their replica never said more). */
const STALE_RETENTIONS = 24;
/** How long stopping waits for records not yet acknowledged. */
const STOP_FLUSH_MS = 5_000;

export interface SharedCalls {
  /** Applies the record to this replica's view at once, then publishes it (resolves on ack). */
  publish(record: CallRecord): Promise<void>;
  /** Waits (up to `ms`) until every record published so far is acknowledged or failed. */
  flush(ms: number): Promise<void>;
  /**
   * Whether this replica has read the topic as far as it reached when the replica started:
   * then every call accepted before is in its view. Until then an unknown id may be one.
   */
  caughtUp(): boolean;
  stop(): Promise<void>;
}

export interface SharedCallsDeps {
  kafka: KafkaConfig;
  topic: string;
  view: CallView;
  /** `f2s.async.retention` (ms): how long finished calls stay visible. */
  retention: number;
  log: Logger;
  now?: () => number;
}

export function startSharedCalls(deps: SharedCallsDeps): SharedCalls {
  const { log, topic, view, retention } = deps;
  const now = deps.now ?? Date.now;
  const kafka = asyncKafka(deps.kafka, "async-calls", log);
  const stopping = new AbortController();
  const { producer, ready } = topicProducer(
    kafka,
    {
      topic,
      numPartitions: PARTITIONS,
      configEntries: topicConfig(retention),
    },
    stopping.signal,
    log,
  );

  // How far the topic reached at the start, per partition (the last offset), and how far
  // this replica has read: caught up once it has read every partition to its start's end.
  const read = new Map<number, number>();
  let ends: Map<number, number> | undefined;
  let caughtUp = false;
  const checkCaughtUp = () => {
    if (caughtUp || !ends) return;
    for (const [partition, last] of ends) if ((read.get(partition) ?? -1) < last) return;
    caughtUp = true;
    log.info("shared call state read up to where it stood at the start", { topic });
  };
  const learnEnds = async () => {
    await ready;
    while (!stopping.signal.aborted && !ends) {
      const admin = kafka.admin();
      try {
        await admin.connect();
        const offsets = await admin.fetchTopicOffsets(topic);
        // high is the next offset to be written: an empty partition (high = low) has none.
        ends = new Map(
          offsets.filter((o) => Number(o.high) > Number(o.low))
            .map((o) => [o.partition, Number(o.high) - 1]),
        );
      } catch (e) {
        log.warn("the call-state topic's offsets could not be read; retrying", { error: e });
        await new Promise((r) => setTimeout(r, 1000));
      } finally {
        await admin.disconnect().catch(() => {});
      }
    }
    checkCaughtUp();
  };
  learnEnds().catch((e) =>
    log.error("reading the call-state topic's offsets failed", { error: e })
  );

  // A group of its own, new at every start and never committed: every replica reads every
  // partition from the beginning (records already held are merged, not duplicated).
  const consuming = consumeForever({
    kafka,
    config: deps.kafka,
    groupId: `${deps.kafka.consumerGroup}-async-calls-${crypto.randomUUID()}`,
    topic,
    ready,
    signal: stopping.signal,
    log,
    what: "the call-state consumer",
    partitionsConsumedConcurrently: 4,
    eachMessage: (_consumer, { partition, message }) => {
      if (!caughtUp) {
        read.set(partition, Math.max(read.get(partition) ?? -1, Number(message.offset)));
        checkCaughtUp();
      }
      if (message.value === null) return Promise.resolve(); // a tombstone
      const record = decodeRecord(message.value);
      if (!record) {
        log.warn("not a call record; skipped", { topic, partition, offset: message.offset });
      } else if (!expired(record, now() - retention)) {
        view.apply(record);
      }
      return Promise.resolve();
    },
  });
  consuming.catch((e) => log.error("the call-state consumer stopped", { error: e }));

  const inFlight = new Set<Promise<void>>();
  async function flush(ms: number) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.allSettled([...inFlight]),
      new Promise((r) => (timer = setTimeout(r, ms))),
    ]);
    clearTimeout(timer);
  }
  const purge = setInterval(() => {
    try {
      const t = now();
      const purged = view.purge(t - retention, t - STALE_RETENTIONS * retention);
      if (purged > 0) log.info("shared call records past retention deleted", { purged });
    } catch (e) {
      log.warn("purging shared call records failed", { error: e });
    }
  }, 60_000);

  return {
    publish(record) {
      view.apply(record);
      const sent = sendAcked(
        producer,
        ready,
        topic,
        { key: record.id, value: encodeRecord(record) },
        stopping.signal,
      );
      inFlight.add(sent);
      sent.catch(() => {}).finally(() => inFlight.delete(sent));
      return sent;
    },
    flush,
    caughtUp: () => caughtUp,
    async stop() {
      clearInterval(purge);
      await flush(STOP_FLUSH_MS);
      stopping.abort();
      await Promise.allSettled([producer.disconnect(), consuming]);
    },
  };
}

/**
 * Compacted (one record per call) and deleted past twice the retention (at least ten
 * minutes more), in segments short enough that both happen: Kafka cleans only closed ones.
 */
function topicConfig(retention: number) {
  const keep = Math.max(2 * retention, retention + 600_000);
  const segment = Math.min(Math.max(Math.round(retention / 2), 60_000), 3_600_000);
  return [
    { name: "cleanup.policy", value: "compact,delete" },
    { name: "retention.ms", value: String(keep) },
    { name: "segment.ms", value: String(segment) },
  ];
}

function expired(r: CallRecord, before: number): boolean {
  return r.finishedAt !== undefined && r.finishedAt < before && r.callbackState !== "pending";
}

export function encodeRecord(r: CallRecord): Buffer {
  const { resultBody, ...rest } = r;
  const cut = resultBody && resultBody.byteLength > SHARED_RESULT_MAX;
  return Buffer.from(JSON.stringify({
    ...rest,
    resultTruncated: rest.resultTruncated || cut || undefined,
    resultBody: resultBody
      ? Buffer.from(resultBody.subarray(0, SHARED_RESULT_MAX)).toString("base64")
      : undefined,
  }));
}

const STATES = new Set(["queued", "running", "succeeded", "failed", "dead-lettered"]);

/** A record from the topic, or undefined when it is not one (anyone may write to a topic). */
export function decodeRecord(value: Uint8Array): CallRecord | undefined {
  try {
    const v = JSON.parse(new TextDecoder().decode(value));
    const fine = typeof v?.id === "string" && typeof v.function === "string" &&
      STATES.has(v.state) && typeof v.attempts === "number" &&
      typeof v.createdAt === "number" && typeof v.callbackAttempts === "number" &&
      (v.caller === undefined || typeof v.caller?.name === "string");
    if (!fine) return undefined;
    return {
      ...v,
      resultBody: typeof v.resultBody === "string"
        ? new Uint8Array(Buffer.from(v.resultBody, "base64"))
        : undefined,
    };
  } catch {
    return undefined;
  }
}

/**
 * The local queue, publishing every change the worker makes to a call (claimed, waiting
 * for a retry, callback attempted). Those publishes are not waited for: the final state
 * is, by the service before the call's offset is committed, so a crash never loses it.
 */
export function publishingStore(store: CallStore, shared: SharedCalls, log: Logger): CallStore {
  const share = (c: Call | undefined) => {
    if (!c) return;
    shared.publish(recordOf(c)).catch((e) =>
      log.warn("a call's state could not be shared", { callId: c.id, error: e })
    );
  };
  return {
    ...store,
    claim(fn, now, limit) {
      const calls = store.claim(fn, now, limit);
      calls.forEach(share);
      return calls;
    },
    retry(id, nextAt, status, error) {
      store.retry(id, nextAt, status, error);
      share(store.get(id));
    },
    callbackDone(id, state, attempts, nextAt, error) {
      store.callbackDone(id, state, attempts, nextAt, error);
      share(store.get(id));
    },
  };
}
