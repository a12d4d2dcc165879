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

import { type Clock, realClock } from "../../common/clock.ts";
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
  /** How long one answer serves every function of a round (ms); default 500. */
  cacheMs?: number;
  /**
   * This replica's own tracker: its last activity is taken into account too, because a
   * request that arrived since the last scrape must already keep the function from zero.
   */
  local?: ConcurrencyTracker;
  fetch?: typeof fetch;
  /**
   * The answer cache runs on its monotonic time (default: the real clock). Last activity is
   * compared as Unix time: Prometheus' timestamps, the tracker's and the autoscaler's now().
   */
  clock?: Clock;
}

export function prometheusSignal(options: PrometheusSignalOptions): ConcurrencySignal {
  const base = normalizeUrl(options.url);
  const doFetch = options.fetch ?? fetch;
  const timeoutMs = options.timeoutMs ?? 2000;
  const cacheMs = options.cacheMs ?? 500;
  const clock = options.clock ?? realClock;
  // One query answers every function (`by (function)`): a round over many functions asks
  // Prometheus once per distinct window, not once per function.
  const cache = new Map<string, { at: number; values: Promise<Map<string, number>> }>();

  function byFunction(query: string): Promise<Map<string, number>> {
    const now = clock.monotonic();
    const hit = cache.get(query);
    if (hit && now - hit.at < cacheMs) return hit.values;
    const values = vector(query);
    cache.set(query, { at: now, values });
    values.catch(() => cache.delete(query));
    return values;
  }

  /** An instant query's vector as function label → value. */
  async function vector(query: string): Promise<Map<string, number>> {
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
      data?: {
        resultType?: string;
        result?: { metric?: Record<string, string>; value?: [number, string] }[];
      };
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
    if (body.data?.resultType !== "vector") {
      throw new SignalError(`prometheus query ${query} returned ${body.data?.resultType}`);
    }
    const out = new Map<string, number>();
    for (const sample of body.data.result ?? []) {
      const fn = sample.metric?.function;
      const value = Number(sample.value?.[1]);
      if (fn !== undefined && Number.isFinite(value)) out.set(fn, value);
    }
    return out;
  }

  return {
    source: "prometheus",
    async average(fn, windowMs) {
      const window = `${Math.max(1, Math.round(windowMs))}ms`;
      const values = await byFunction(
        `sum by (function) (rate(f2s_concurrency_seconds_total[${window}]))`,
      );
      return values.get(fn) ?? 0;
    },
    async lastActivity(fn) {
      const values = await byFunction(
        "max by (function) (f2s_last_activity_timestamp_seconds)",
      );
      const seconds = values.get(fn);
      // Unix time, as the autoscaler's now() and the local tracker's times are.
      const remote = seconds === undefined ? undefined : seconds * 1000;
      const own = options.local?.lastActivity(fn);
      if (remote === undefined) return own;
      if (own === undefined) return remote;
      return Math.max(remote, own);
    },
  };
}

/** The seed writes `prometheus.url: localhost:9090`; accept that as http://localhost:9090. */
export function normalizeUrl(url: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? url : `http://${url}`;
  return withScheme.replace(/\/+$/, "");
}
