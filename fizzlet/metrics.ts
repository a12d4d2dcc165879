/**
 * The fizzlet's Prometheus metrics, served at /f2s/metrics: requests by status code,
 * request duration, requests in flight and waiting.
 *
 * prom-client takes about 100 ms to load, which would be a third of a cold start. So the
 * hot path counts into plain numbers, and prom-client is loaded on the first scrape or a
 * few seconds after start-up (once the first requests are served), then fed what was
 * counted so far. One registry per fizzlet, so tests can run several in one process.
 */

import type client from "prom-client";
import { type CounterSeries, createCounter, createHistogram } from "../common/metric_series.ts";

export interface Gauge {
  inc(): void;
  dec(): void;
}

export interface FizzletMetrics {
  /** Counts one finished request with its status code and duration in seconds. */
  observe(status: number, seconds: number): void;
  inflight: Gauge;
  queued: Gauge;
  /** 1 for the mode being served (proxy, command, pending), 0 for the others. */
  setMode(mode: string): void;
  /** The Prometheus text exposition. */
  render(): Promise<{ body: string; contentType: string }>;
  /** Stops the deferred load (for shutdown and tests). */
  close(): void;
}

const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

interface Loaded {
  registry: client.Registry;
  observe(status: number, seconds: number): void;
}

export function createMetrics(options: { loadAfterMs?: number } = {}): FizzletMetrics {
  let inflight = 0;
  let queued = 0;
  let mode = "pending";
  // Observations made before prom-client is there; replayed once it is.
  const early: [number, number][] = [];
  let loaded: Loaded | undefined;
  let loading: Promise<Loaded> | undefined;

  const load = () => {
    loading ??= import("prom-client").then(({ default: prom }) => {
      const l = build(prom, () => inflight, () => queued, () => mode);
      for (const [status, seconds] of early.splice(0)) l.observe(status, seconds);
      loaded = l;
      return l;
    });
    return loading;
  };
  const timer = setTimeout(load, options.loadAfterMs ?? 5000);

  return {
    observe(status, seconds) {
      if (loaded) loaded.observe(status, seconds);
      else early.push([status, seconds]);
    },
    inflight: { inc: () => void inflight++, dec: () => void inflight-- },
    queued: { inc: () => void queued++, dec: () => void queued-- },
    setMode(current) {
      mode = current;
    },
    async render() {
      const l = await load();
      return { body: await l.registry.metrics(), contentType: l.registry.contentType };
    },
    close() {
      clearTimeout(timer);
    },
  };
}

function build(
  prom: typeof client,
  inflight: () => number,
  queued: () => number,
  mode: () => string,
): Loaded {
  const registry = new prom.Registry();
  prom.collectDefaultMetrics({ register: registry, prefix: "f2s_fizzlet_" });
  const registers = [registry];
  // The hot path's two series are plain numbers exposed in prom-client's shape
  // (common/metric_series.ts): prom-client's observe hashes labels on every call.
  const requests = createCounter({
    name: "f2s_fizzlet_requests_total",
    help: "Requests answered by the fizzlet, by HTTP status code",
    labelNames: ["code"] as const,
    registers,
  });
  const duration = createHistogram({
    name: "f2s_fizzlet_request_duration_seconds",
    help: "Time from request arrival until the response headers are sent",
    labelNames: [] as const,
    buckets: BUCKETS,
    registers,
  }).labels();
  new prom.Gauge({
    name: "f2s_fizzlet_inflight_requests",
    help: "Requests being served by the function right now",
    registers,
    collect() {
      this.set(inflight());
    },
  });
  new prom.Gauge({
    name: "f2s_fizzlet_queued_requests",
    help: "Requests waiting for a free slot (--max-inflight)",
    registers,
    collect() {
      this.set(queued());
    },
  });
  new prom.Gauge({
    name: "f2s_fizzlet_mode",
    help: "1 for the mode the fizzlet serves in",
    labelNames: ["mode"] as const,
    registers,
    collect() {
      for (const m of ["proxy", "command", "pending"]) this.set({ mode: m }, m === mode() ? 1 : 0);
    },
  });
  // Series per status code are cached: the hot path does no label lookups.
  const byCode = new Map<number, CounterSeries>();
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
  };
}
