/**
 * The fizzlet's Prometheus metrics, served at /f2s/metrics: requests by status code,
 * request duration, requests in flight and waiting. One registry per fizzlet, so tests can
 * run several in one process. Children per status code are cached: the hot path does no
 * label lookups.
 */

import client from "prom-client";

export interface FizzletMetrics {
  registry: client.Registry;
  /** Counts one finished request with its status code and duration in seconds. */
  observe(status: number, seconds: number): void;
  inflight: client.Gauge;
  queued: client.Gauge;
  /** 1 for the mode being served (proxy, command, pending), 0 for the others. */
  setMode(mode: string): void;
}

export function createMetrics(): FizzletMetrics {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: "f2s_fizzlet_" });
  const registers = [registry];
  const requests = new client.Counter({
    name: "f2s_fizzlet_requests_total",
    help: "Requests answered by the fizzlet, by HTTP status code",
    labelNames: ["code"] as const,
    registers,
  });
  const duration = new client.Histogram({
    name: "f2s_fizzlet_request_duration_seconds",
    help: "Time from request arrival until the response headers are sent",
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers,
  });
  const inflight = new client.Gauge({
    name: "f2s_fizzlet_inflight_requests",
    help: "Requests being served by the function right now",
    registers,
  });
  const queued = new client.Gauge({
    name: "f2s_fizzlet_queued_requests",
    help: "Requests waiting for a free slot (--max-inflight)",
    registers,
  });
  const mode = new client.Gauge({
    name: "f2s_fizzlet_mode",
    help: "1 for the mode the fizzlet serves in",
    labelNames: ["mode"] as const,
    registers,
  });
  const byCode = new Map<number, client.Counter.Internal>();
  return {
    registry,
    observe(status, seconds) {
      let counter = byCode.get(status);
      if (!counter) {
        counter = requests.labels(String(status));
        byCode.set(status, counter);
      }
      counter.inc();
      duration.observe(seconds);
    },
    inflight,
    queued,
    setMode(current) {
      for (const m of ["proxy", "command", "pending"]) mode.set({ mode: m }, m === current ? 1 : 0);
    },
  };
}
