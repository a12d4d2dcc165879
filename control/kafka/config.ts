/**
 * The `kafka` section of config.yaml, in the seed's shape (`enabled`, `brokers`,
 * `consumergroup`, `listeners[].topic`, `listeners[].actions[]` with `triggers`,
 * `f2sfunctions` and `response.key`), plus what F2S adds: header and value triggers,
 * `response.topic`, retries with backoff, a dead-letter topic and consumer timings.
 * Every unknown key or value is reported with its path, so a typo stops start-up instead
 * of silently never triggering. See docs/kafka.md.
 */

import { type Obj, Reader } from "../config_util.ts";

export const TRIGGER_TYPES = ["key", "header", "value"] as const;
export const TRIGGER_FILTERS = ["equal", "not equal", "contains", "not contains"] as const;

export interface KafkaTrigger {
  type: typeof TRIGGER_TYPES[number];
  /** Header name, for type "header" (matched case-insensitively). */
  name?: string;
  filter: typeof TRIGGER_FILTERS[number];
  value: string;
}

export interface KafkaAction {
  name: string;
  /** All must match; none means every message of the topic. */
  triggers: KafkaTrigger[];
  /** Function names or Kubernetes UIDs. */
  functions: string[];
  /** `key` defaults to the message's own key, `topic` to the listener's topic. */
  response: { key?: string; topic?: string };
  /**
   * The request's content-type for a message without a `content-type` header: a media
   * type, or "auto" (application/json when the value parses as JSON, else
   * application/octet-stream). The listener's setting is the default.
   */
  contentType: string;
}

export interface KafkaListener {
  topic: string;
  /** Falls back to the section's `consumergroup`. */
  consumerGroup?: string;
  /** Falls back to the section's `dead_letter_topic`. */
  deadLetterTopic?: string;
  actions: KafkaAction[];
}

export interface KafkaConfig {
  enabled: boolean;
  brokers: string[];
  consumerGroup: string;
  clientId: string;
  /** Where a consumer group without committed offsets starts: earliest or latest offset. */
  fromBeginning: boolean;
  /** Extra attempts after a failed invocation (5xx or unreachable), before giving up. */
  retries: number;
  /** First wait between attempts (ms); doubles each attempt up to `retryBackoffMax`. */
  retryBackoff: number;
  retryBackoffMax: number;
  /** Where messages whose invocation finally failed are copied (none when unset). */
  deadLetterTopic?: string;
  sessionTimeout: number;
  heartbeatInterval: number;
  /** Partitions one consumer processes at the same time (order within each is kept). */
  concurrentPartitions: number;
  listeners: KafkaListener[];
}

export const KAFKA_DEFAULTS = {
  consumerGroup: "f2s",
  clientId: "f2s",
  retries: 3,
  retryBackoff: 500,
  retryBackoffMax: 30_000,
  sessionTimeout: 30_000,
  heartbeatInterval: 3_000,
  concurrentPartitions: 1,
} as const;

const SECTION_KEYS = [
  "enabled",
  "brokers",
  "consumergroup",
  "client_id",
  "from_beginning",
  "retries",
  "retry_backoff",
  "retry_backoff_max",
  "dead_letter_topic",
  "session_timeout",
  "heartbeat_interval",
  "concurrent_partitions",
  "listeners",
];

// Kafka's own rule for topic names (and group ids are kept to the same safe set).
const TOPIC_RE = /^[A-Za-z0-9._-]{1,249}$/;
const BROKER_RE = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/;
/** A broker without a port listens on Kafka's own, as every Kafka client reads it. */
export const DEFAULT_BROKER_PORT = 9092;

/**
 * Environment overrides (F2S_KAFKA_ENABLED, F2S_KAFKA_BROKERS) replace the file's values
 * before they are checked: a broken value in the file must not stop a start whose
 * environment replaces it.
 */
export interface KafkaOverrides {
  enabled?: boolean;
  /** With the path their errors are reported under, e.g. "env F2S_KAFKA_BROKERS". */
  brokers?: { values: string[]; path: string };
}
const HEADER_NAME_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
const MEDIA_TYPE_RE = new RegExp(`^${TOKEN}/${TOKEN}(\\s*;[\\x20-\\x7e]*)?$`);
export const AUTO_CONTENT_TYPE = "auto";

export function parseKafkaConfig(
  raw: unknown,
  path: string,
  r: Reader,
  overrides: KafkaOverrides = {},
): KafkaConfig {
  const o: Obj = r.obj(raw, path);
  r.known(o, path, SECTION_KEYS);
  const enabled = overrides.enabled ?? r.bool(o.enabled, `${path}.enabled`, false);

  const brokerList = overrides.brokers?.values ?? r.list(o.brokers, `${path}.brokers`);
  const brokersPath = overrides.brokers?.path ?? `${path}.brokers`;
  const brokers = brokerList.map((b, i) => {
    const p = `${brokersPath}[${i}]`;
    const s = r.str(b, p, "").trim();
    const m = BROKER_RE.exec(s);
    const port = m?.[2] === undefined ? DEFAULT_BROKER_PORT : Number(m[2]);
    if (!m || port < 1 || port > 65535) {
      r.error(p, `"${s}" is not host or host:port`);
      return s;
    }
    return `${m[1]}:${port}`;
  });
  if (enabled && brokers.length === 0) {
    r.error(`${path}.brokers`, "needs at least one broker when kafka is enabled");
  }

  const consumerGroup = groupId(r, o.consumergroup, `${path}.consumergroup`) ??
    KAFKA_DEFAULTS.consumerGroup;
  const clientId = r.str(o.client_id, `${path}.client_id`, KAFKA_DEFAULTS.clientId);
  if (clientId.trim() === "") r.error(`${path}.client_id`, "must not be empty");
  const deadLetterTopic = topicName(r, o.dead_letter_topic, `${path}.dead_letter_topic`);
  const retryBackoff = positive(
    r,
    r.duration(o.retry_backoff, `${path}.retry_backoff`, KAFKA_DEFAULTS.retryBackoff),
    `${path}.retry_backoff`,
  );
  const retryBackoffMax = r.duration(
    o.retry_backoff_max,
    `${path}.retry_backoff_max`,
    Math.max(KAFKA_DEFAULTS.retryBackoffMax, retryBackoff),
  );
  if (retryBackoffMax < retryBackoff) {
    r.error(`${path}.retry_backoff_max`, "must be at least retry_backoff");
  }
  const sessionTimeout = positive(
    r,
    r.duration(o.session_timeout, `${path}.session_timeout`, KAFKA_DEFAULTS.sessionTimeout),
    `${path}.session_timeout`,
  );
  const heartbeatInterval = positive(
    r,
    r.duration(
      o.heartbeat_interval,
      `${path}.heartbeat_interval`,
      Math.min(KAFKA_DEFAULTS.heartbeatInterval, Math.floor(sessionTimeout / 3)),
    ),
    `${path}.heartbeat_interval`,
  );
  if (heartbeatInterval >= sessionTimeout) {
    r.error(`${path}.heartbeat_interval`, "must be shorter than session_timeout");
  }

  const listeners = r.list(o.listeners, `${path}.listeners`).map((l, i) =>
    parseListener(r, l, `${path}.listeners[${i}]`)
  );
  if (enabled && listeners.length === 0) {
    r.error(`${path}.listeners`, "needs at least one listener when kafka is enabled");
  }

  return {
    enabled,
    brokers,
    consumerGroup,
    clientId,
    fromBeginning: r.bool(o.from_beginning, `${path}.from_beginning`, false),
    retries: integer(r, o.retries, `${path}.retries`, KAFKA_DEFAULTS.retries, 0, 100),
    retryBackoff,
    retryBackoffMax,
    deadLetterTopic,
    sessionTimeout,
    heartbeatInterval,
    concurrentPartitions: integer(
      r,
      o.concurrent_partitions,
      `${path}.concurrent_partitions`,
      KAFKA_DEFAULTS.concurrentPartitions,
      1,
      1000,
    ),
    listeners,
  };
}

function parseListener(r: Reader, raw: unknown, p: string): KafkaListener {
  const lo = r.obj(raw, p);
  r.known(lo, p, ["topic", "consumergroup", "dead_letter_topic", "contentType", "actions"]);
  const topic = topicName(r, lo.topic, `${p}.topic`);
  if (topic === undefined && lo.topic === undefined) r.error(`${p}.topic`, "is required");
  const contentType = mediaType(r, lo.contentType, `${p}.contentType`, AUTO_CONTENT_TYPE);
  const actions = r.list(lo.actions, `${p}.actions`).map((a, j) =>
    parseAction(r, a, `${p}.actions[${j}]`, j, contentType)
  );
  if (actions.length === 0) r.error(`${p}.actions`, "needs at least one action");
  const names = new Set<string>();
  actions.forEach((a, j) => {
    if (names.has(a.name)) {
      r.error(`${p}.actions[${j}].name`, `"${a.name}" is used twice in this listener`);
    }
    names.add(a.name);
  });
  return {
    topic: topic ?? "",
    consumerGroup: groupId(r, lo.consumergroup, `${p}.consumergroup`),
    deadLetterTopic: topicName(r, lo.dead_letter_topic, `${p}.dead_letter_topic`),
    actions,
  };
}

function parseAction(
  r: Reader,
  raw: unknown,
  ap: string,
  index: number,
  listenerContentType: string,
): KafkaAction {
  const ao = r.obj(raw, ap);
  r.known(ao, ap, ["name", "triggers", "f2sfunctions", "response", "contentType"]);
  const name = r.str(ao.name, `${ap}.name`, `action-${index}`);
  if (name.trim() === "") r.error(`${ap}.name`, "must not be empty");
  const triggers = r.list(ao.triggers, `${ap}.triggers`).map((t, k) =>
    parseTrigger(r, t, `${ap}.triggers[${k}]`)
  );
  const functions = r.list(ao.f2sfunctions, `${ap}.f2sfunctions`).map((f, k) => {
    const s = r.str(f, `${ap}.f2sfunctions[${k}]`, "").trim();
    if (s === "" && typeof f === "string") {
      r.error(`${ap}.f2sfunctions[${k}]`, "must be a function name or uid");
    }
    return s;
  }).filter((s) => s !== "");
  if (functions.length === 0 && ao.f2sfunctions === undefined) {
    r.error(`${ap}.f2sfunctions`, "is required (function names or uids)");
  } else if (Array.isArray(ao.f2sfunctions) && ao.f2sfunctions.length === 0) {
    r.error(`${ap}.f2sfunctions`, "needs at least one function");
  }
  const rp = `${ap}.response`;
  const response = r.obj(ao.response, rp);
  r.known(response, rp, ["key", "topic"]);
  return {
    name,
    triggers,
    functions,
    response: {
      key: scalar(r, response.key, `${rp}.key`),
      topic: topicName(r, response.topic, `${rp}.topic`),
    },
    contentType: mediaType(r, ao.contentType, `${ap}.contentType`, listenerContentType),
  };
}

/** "auto" or a media type such as "application/json" or "text/plain; charset=utf-8". */
function mediaType(r: Reader, v: unknown, path: string, dflt: string): string {
  const s = r.str(v, path, dflt).trim();
  if (s !== AUTO_CONTENT_TYPE && !MEDIA_TYPE_RE.test(s)) {
    r.error(path, `"${s}" is not a media type (e.g. application/json) or auto`);
  }
  return s;
}

function parseTrigger(r: Reader, raw: unknown, tp: string): KafkaTrigger {
  const to = r.obj(raw, tp);
  r.known(to, tp, ["type", "name", "filter", "value"]);
  const type = r.str(to.type, `${tp}.type`);
  if (type === undefined) {
    if (to.type === undefined) r.error(`${tp}.type`, `is required (${TRIGGER_TYPES.join(", ")})`);
  } else if (!(TRIGGER_TYPES as readonly string[]).includes(type)) {
    r.error(`${tp}.type`, `"${type}" is not a trigger type (${TRIGGER_TYPES.join(", ")})`);
  }
  const filter = r.str(to.filter, `${tp}.filter`, "equal");
  if (!(TRIGGER_FILTERS as readonly string[]).includes(filter)) {
    r.error(`${tp}.filter`, `"${filter}" is not a filter (${TRIGGER_FILTERS.join(", ")})`);
  }
  const name = r.str(to.name, `${tp}.name`);
  if (type === "header") {
    if (name === undefined && to.name === undefined) {
      r.error(`${tp}.name`, "is required for a header trigger (the header's name)");
    } else if (name !== undefined && !HEADER_NAME_RE.test(name)) {
      r.error(`${tp}.name`, `"${name}" is not a valid header name`);
    }
  } else if (to.name !== undefined) {
    r.error(`${tp}.name`, "is only used with type header");
  }
  const value = scalar(r, to.value, `${tp}.value`);
  if (value === undefined && to.value === undefined) r.error(`${tp}.value`, "is required");
  return {
    type: (type ?? "key") as KafkaTrigger["type"],
    name: type === "header" ? name : undefined,
    filter: filter as KafkaTrigger["filter"],
    value: value ?? "",
  };
}

/** Strings, and numbers or booleans written without quotes in YAML (`value: 42`). */
function scalar(r: Reader, v: unknown, path: string): string | undefined {
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  return r.str(v, path);
}

function topicName(r: Reader, v: unknown, path: string): string | undefined {
  const s = r.str(v, path);
  if (s === undefined) return undefined;
  if (!TOPIC_RE.test(s) || s === "." || s === "..") {
    r.error(path, `"${s}" is not a Kafka topic name (letters, digits, '.', '_', '-')`);
  }
  return s;
}

function groupId(r: Reader, v: unknown, path: string): string | undefined {
  const s = r.str(v, path);
  if (s !== undefined && s.trim() === "") r.error(path, "must not be empty");
  return s;
}

function integer(
  r: Reader,
  v: unknown,
  path: string,
  dflt: number,
  min: number,
  max: number,
): number {
  const n = r.num(v, path, dflt, min, max);
  if (!Number.isInteger(n)) r.error(path, "must be a whole number");
  return n;
}

function positive(r: Reader, ms: number, path: string): number {
  if (ms <= 0) r.error(path, "must be greater than 0");
  return ms;
}

/** The consumer group a listener's messages are consumed in. */
export function listenerGroup(config: KafkaConfig, listener: KafkaListener): string {
  return listener.consumerGroup ?? config.consumerGroup;
}
