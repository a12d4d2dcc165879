/**
 * Where the autoscaler reads demand from, behind one interface: this control plane's own
 * dispatcher (local) or Prometheus, which sums what every control-plane replica exported, so
 * the one replica that acts sees all the traffic when several share it.
 *
 * Prometheus is asked for `rate(f2s_concurrency_seconds_total[window])`: the counter is the
 * integral of in-flight requests over time, so its rate is the exact average concurrency over
 * the window even with a 1 s scrape and 10 ms requests, which sampling the in-flight gauge
 * would mostly miss. Windows must span at least two scrapes for rate() to have two samples.
 */

import type { ConcurrencyTracker } from "./concurrency.ts";

export interface ConcurrencySignal {
  /** Which source this is, for decision logs ("local", "prometheus"). */
  readonly source: string;
  /** Time-weighted average of in-flight requests for `fn` over the last `windowMs`. */
  average(fn: string, windowMs: number): Promise<number>;
  /** Now while `fn` has requests in flight, else when its last one finished (ms). */
  lastActivity(fn: string): Promise<number | undefined>;
}

/** The signal of this control plane's own dispatcher. */
export function localSignal(tracker: ConcurrencyTracker): ConcurrencySignal {
  return {
    source: "local",
    average: (fn, windowMs) => Promise.resolve(tracker.average(fn, windowMs)),
    lastActivity: (fn) => Promise.resolve(tracker.lastActivity(fn)),
  };
}

export class SignalError extends Error {}

export interface PrometheusSignalOptions {
  /** Base URL of Prometheus, e.g. http://prometheus:9090 (a bare host:port gets http://). */
  url: string;
  /** Per query (ms); default 2000, below the autoscaler's tick. */
  timeoutMs?: number;
  /**
   * This replica's own tracker: its last activity is taken into account too, because a
   * request that arrived since the last scrape must already keep the function from zero.
   */
  local?: ConcurrencyTracker;
  fetch?: typeof fetch;
  /** Unix time in ms (Prometheus timestamps are wall-clock). */
  wallClock?: () => number;
  /** The local tracker's clock, if it is not wall-clock time. */
  localClock?: () => number;
}

export function prometheusSignal(options: PrometheusSignalOptions): ConcurrencySignal {
  const base = normalizeUrl(options.url);
  const doFetch = options.fetch ?? fetch;
  const timeoutMs = options.timeoutMs ?? 2000;
  const wallClock = options.wallClock ?? Date.now;
  const localClock = options.localClock ?? wallClock;

  /** The single value of an instant query, or undefined when no series matched. */
  async function scalar(query: string): Promise<number | undefined> {
    const url = `${base}/api/v1/query?query=${encodeURIComponent(query)}`;
    let res: Response;
    try {
      res = await doFetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    } catch (e) {
      throw new SignalError(`prometheus at ${base} is unreachable: ${(e as Error).message}`);
    }
    const text = await res.text();
    let body: {
      status?: string;
      error?: string;
      data?: { resultType?: string; result?: { value?: [number, string] }[] };
    };
    try {
      body = JSON.parse(text);
    } catch {
      throw new SignalError(
        `prometheus at ${base} answered ${res.status} with a non-JSON body: ${text.slice(0, 200)}`,
      );
    }
    if (!res.ok || body.status !== "success") {
      throw new SignalError(
        `prometheus query ${query} failed (${res.status}): ${body.error ?? text.slice(0, 200)}`,
      );
    }
    const result = body.data?.result ?? [];
    if (body.data?.resultType !== "vector") {
      throw new SignalError(`prometheus query ${query} returned ${body.data?.resultType}`);
    }
    if (result.length === 0) return undefined;
    const value = Number(result[0].value?.[1]);
    return Number.isFinite(value) ? value : undefined;
  }

  return {
    source: "prometheus",
    async average(fn, windowMs) {
      const window = `${Math.max(1, Math.round(windowMs))}ms`;
      const v = await scalar(`sum(rate(f2s_concurrency_seconds_total{${label(fn)}}[${window}]))`);
      return v ?? 0;
    },
    async lastActivity(fn) {
      const seconds = await scalar(`max(f2s_last_activity_timestamp_seconds{${label(fn)}})`);
      // In the local tracker's clock, so it compares with what the autoscaler calls now.
      const remote = seconds === undefined ? undefined : seconds * 1000 - wallClock() +
        localClock();
      const own = options.local?.lastActivity(fn);
      if (remote === undefined) return own;
      if (own === undefined) return remote;
      return Math.max(remote, own);
    },
  };
}

/** `function="name"` with the value escaped as PromQL wants. */
function label(fn: string): string {
  return `function="${fn.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`;
}

/** The seed writes `prometheus.url: localhost:9090`; accept that as http://localhost:9090. */
export function normalizeUrl(url: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? url : `http://${url}`;
  return withScheme.replace(/\/+$/, "");
}
