/**
 * Prometheus metrics of the Kafka triggers (`f2s_kafka_*`), registered in the control
 * plane's registry so they appear on its `/metrics`. Invocations themselves are also
 * counted by the dispatcher like any HTTP request; these count the Kafka side.
 */

import client from "prom-client";

export interface KafkaMetrics {
  /** 1 while the brokers answer and every consumer is in its group, else 0 (collected). */
  connected: client.Gauge;
  consumed: client.Counter<"topic">;
  /** Finished invocations by function and outcome: ok, rejected (4xx), failed, retried. */
  invocations: client.Counter<"function" | "outcome">;
  /** Produced records by topic and kind (response, dead_letter). */
  produced: client.Counter<"topic" | "kind">;
  /** Problems by kind: connect, consumer_crash, produce, commit, invoke, not_found. */
  errors: client.Counter<"kind">;
}

export function createKafkaMetrics(
  registry: client.Registry,
  isConnected: () => boolean,
): KafkaMetrics {
  const registers = [registry];
  return {
    connected: new client.Gauge({
      name: "f2s_kafka_connected",
      help: "1 while Kafka is reachable and every trigger consumer is in its group",
      registers,
      collect() {
        this.set(isConnected() ? 1 : 0);
      },
    }),
    consumed: new client.Counter({
      name: "f2s_kafka_messages_consumed_total",
      help: "Kafka messages consumed by the triggers, by topic",
      labelNames: ["topic"] as const,
      registers,
    }),
    invocations: new client.Counter({
      name: "f2s_kafka_invocations_total",
      help:
        "Function invocations caused by Kafka messages, by outcome (ok, rejected, failed, retried)",
      labelNames: ["function", "outcome"] as const,
      registers,
    }),
    produced: new client.Counter({
      name: "f2s_kafka_produced_total",
      help: "Records produced by the triggers, by topic and kind (response, dead_letter)",
      labelNames: ["topic", "kind"] as const,
      registers,
    }),
    errors: new client.Counter({
      name: "f2s_kafka_errors_total",
      help: "Kafka trigger problems by kind (connect, consumer_crash, produce, commit, invoke)",
      labelNames: ["kind"] as const,
      registers,
    }),
  };
}
