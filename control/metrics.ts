/**
 * The control plane's Prometheus metrics (served at `/metrics`). One registry per control
 * plane instance, so tests can run several in one process. Names follow Prometheus
 * conventions: `f2s_` prefix, `_total` for counters, `_seconds` for durations.
 */

import client from "prom-client";
import { createCounter, createHistogram } from "../common/metric_series.ts";
import type { DispatchMetrics } from "../dispatcher/needs.ts";

/** The dispatcher's series (dispatcher/needs.ts) and the rest of the control plane's. */
export interface Metrics extends DispatchMetrics {
  registry: client.Registry;
  desiredInstances: client.Gauge<"function">;
  scalingDecisions: client.Counter<"function" | "direction">;
  /**
   * Integral of in-flight requests over time (request-seconds), kept by the autoscaler's
   * concurrency tracker: `rate()` of it is the exact average concurrency over any window,
   * which sampling the in-flight gauge every scrape cannot give for short requests.
   */
  concurrencySeconds: client.Counter<"function">;
  /** When the function last had a request in flight (Unix seconds; now while busy). */
  lastActivity: client.Gauge<"function">;
  /** Average concurrency the autoscaler saw in its last round, by window (stable, panic). */
  observedConcurrency: client.Gauge<"function" | "window">;
  /** 1 while the autoscaler is in panic mode for the function, else 0. */
  panicMode: client.Gauge<"function">;
}

export function createMetrics(options: { processMetrics?: boolean } = {}): Metrics {
  const registry = new client.Registry();
  if (options.processMetrics ?? true) {
    client.collectDefaultMetrics({ register: registry, prefix: "f2s_" });
  }
  const registers = [registry];
  const hooks = new Set<() => void>();
  // Every metric whose values are kept elsewhere names `collect`, and a scrape asks all of
  // them in one synchronous pass: the hooks run on the first ask and not again until the
  // pass is over.
  let collected = false;
  const collect = () => {
    if (collected) return;
    collected = true;
    queueMicrotask(() => collected = false);
    for (const hook of hooks) hook();
  };
  return {
    registry,
    invocations: createCounter({
      name: "f2s_invocations_total",
      help: "Finished function invocations by status code",
      labelNames: ["function", "code"] as const,
      registers,
    }),
    duration: createHistogram({
      name: "f2s_invocation_duration_seconds",
      help: "Duration of function invocations through the dispatcher",
      labelNames: ["function"] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    inflight: new client.Gauge({
      name: "f2s_inflight_requests",
      help: "Requests in flight (served or held) per function",
      labelNames: ["function"] as const,
      registers,
      collect,
    }),
    held: new client.Gauge({
      name: "f2s_held_requests",
      help: "Requests held while the function scales up from zero",
      labelNames: ["function"] as const,
      registers,
    }),
    coldStarts: new client.Counter({
      name: "f2s_cold_starts_total",
      help: "Scale-ups from zero caused by a request",
      labelNames: ["function"] as const,
      registers,
    }),
    coldStartDuration: new client.Histogram({
      name: "f2s_cold_start_duration_seconds",
      help:
        "Time from a request arriving at a function with no instance to the first ready instance",
      labelNames: ["function"] as const,
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
      registers,
    }),
    desiredInstances: new client.Gauge({
      name: "f2s_desired_instances",
      help: "Instances the control plane wants per function",
      labelNames: ["function"] as const,
      registers,
    }),
    readyInstances: new client.Gauge({
      name: "f2s_ready_instances",
      help: "Ready instances per function",
      labelNames: ["function"] as const,
      registers,
    }),
    scalingDecisions: new client.Counter({
      name: "f2s_scaling_decisions_total",
      help: "Scaling decisions that changed the desired instances, by direction (up, down)",
      labelNames: ["function", "direction"] as const,
      registers,
    }),
    concurrencySeconds: new client.Counter({
      name: "f2s_concurrency_seconds_total",
      help: "Integral of in-flight requests over time; rate() is the average concurrency",
      labelNames: ["function"] as const,
      registers,
      collect,
    }),
    lastActivity: new client.Gauge({
      name: "f2s_last_activity_timestamp_seconds",
      help: "When the function last had a request in flight (now while it has one)",
      labelNames: ["function"] as const,
      registers,
      collect,
    }),
    observedConcurrency: new client.Gauge({
      name: "f2s_autoscaler_observed_concurrency",
      help: "Average concurrency the autoscaler used in its last decision, by window",
      labelNames: ["function", "window"] as const,
      registers,
    }),
    panicMode: new client.Gauge({
      name: "f2s_autoscaler_panic",
      help: "1 while the autoscaler is in panic mode for the function",
      labelNames: ["function"] as const,
      registers,
    }),
    onCollect(hook) {
      hooks.add(hook);
      return () => hooks.delete(hook);
    },
  };
}
