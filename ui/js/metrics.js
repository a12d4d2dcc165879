/**
 * The numbers the UI shows per function, derived in the browser from the control plane's
 * `/metrics`: totals (invocations, 5xx answers, instances, last activity) from one scrape,
 * rates and latency from two, and a poller that keeps the last few minutes of scrapes.
 */

import { parsePrometheus } from "./prom.js";

/** A function's numbers in one scrape. */
function emptyStats() {
  return {
    invocations: 0,
    errors: 0,
    durationSum: 0,
    durationCount: 0,
    /** @type {[number, number][]} cumulative buckets [upper bound in s, count], sorted */
    buckets: [],
    inflight: 0,
    ready: 0,
    desired: 0,
    /** Unix seconds, or undefined when the function never had a request. */
    lastActivity: undefined,
  };
}

/**
 * Per-function stats from parsed samples.
 * @param {{ name: string, labels: Record<string, string>, value: number }[]} samples
 * @returns {Map<string, ReturnType<typeof emptyStats>>}
 */
export function functionStats(samples) {
  /** @type {Map<string, ReturnType<typeof emptyStats>>} */
  const byName = new Map();
  const of = (name) => {
    let s = byName.get(name);
    if (!s) byName.set(name, s = emptyStats());
    return s;
  };
  for (const { name, labels, value } of samples) {
    const fn = labels.function;
    if (fn === undefined) continue;
    switch (name) {
      case "f2s_invocations_total": {
        const s = of(fn);
        s.invocations += value;
        if (/^5\d\d$/.test(labels.code ?? "")) s.errors += value;
        break;
      }
      case "f2s_invocation_duration_seconds_sum":
        of(fn).durationSum = value;
        break;
      case "f2s_invocation_duration_seconds_count":
        of(fn).durationCount = value;
        break;
      case "f2s_invocation_duration_seconds_bucket":
        of(fn).buckets.push([parseLe(labels.le), value]);
        break;
      case "f2s_inflight_requests":
        of(fn).inflight = value;
        break;
      case "f2s_ready_instances":
        of(fn).ready = value;
        break;
      case "f2s_desired_instances":
        of(fn).desired = value;
        break;
      case "f2s_last_activity_timestamp_seconds":
        if (value > 0) of(fn).lastActivity = value;
        break;
    }
  }
  for (const s of byName.values()) s.buckets.sort((a, b) => a[0] - b[0]);
  return byName;
}

function parseLe(le) {
  return le === "+Inf" ? Infinity : Number(le);
}

/** How much a counter grew; a smaller value means it restarted from zero. */
function growth(before, after) {
  return after >= before ? after - before : after;
}

/**
 * What happened between two scrapes `seconds` apart: requests per second, share of 5xx
 * answers, and the average and 95th-percentile latency in ms (undefined without requests).
 */
export function between(before, after, seconds) {
  const b = before ?? emptyStats();
  const requests = growth(b.invocations, after.invocations);
  const errors = growth(b.errors, after.errors);
  const count = growth(b.durationCount, after.durationCount);
  const sum = growth(b.durationSum, after.durationSum);
  const buckets = after.buckets.map(([le, n]) => {
    const old = b.buckets.find(([l]) => l === le)?.[1] ?? 0;
    return [le, growth(old, n)];
  });
  return {
    rps: seconds > 0 ? requests / seconds : 0,
    errorRatio: requests > 0 ? errors / requests : undefined,
    avgMs: count > 0 ? (sum / count) * 1000 : undefined,
    p95Ms: count > 0 ? quantile(0.95, buckets) * 1000 : undefined,
  };
}

/**
 * The q-quantile of cumulative histogram buckets `[[le, count], …]`, interpolated
 * linearly inside the bucket like Prometheus' histogram_quantile().
 */
export function quantile(q, buckets) {
  if (buckets.length === 0) return NaN;
  const total = buckets[buckets.length - 1][1];
  if (total === 0) return NaN;
  const rank = q * total;
  let prevLe = 0, prevCount = 0;
  for (const [le, count] of buckets) {
    if (count >= rank) {
      if (le === Infinity) return prevLe;
      if (count === prevCount) return le;
      return prevLe + (le - prevLe) * ((rank - prevCount) / (count - prevCount));
    }
    prevLe = le;
    prevCount = count;
  }
  return prevLe;
}

/**
 * Scrapes `/metrics` every `intervalMs` while something listens and keeps `keepMs` of
 * scrapes. `load()` returns the metrics text; `now()` the time in ms.
 * @param {{
 *   load: () => Promise<string>,
 *   intervalMs?: number,
 *   keepMs?: number,
 *   now?: () => number,
 * }} options
 */
export function createMetricsPoller({ load, intervalMs = 2000, keepMs = 5 * 60_000, now }) {
  const clock = now ?? (() => Date.now());
  /** @type {{ t: number, stats: Map<string, ReturnType<typeof emptyStats>> }[]} oldest first */
  const scrapes = [];
  const listeners = new Set();
  let timer;
  let running = false;
  let lastError;

  async function tick() {
    timer = undefined;
    running = true;
    try {
      const text = await load();
      scrapes.push({ t: clock(), stats: functionStats(parsePrometheus(text)) });
      lastError = undefined;
    } catch (e) {
      lastError = e;
    }
    const cutoff = clock() - keepMs;
    while (scrapes.length > 0 && scrapes[0].t < cutoff) scrapes.shift();
    running = false;
    for (const fn of listeners) fn();
    if (listeners.size > 0) timer = setTimeout(tick, intervalMs);
  }

  return {
    intervalMs,
    keepMs,
    /** Calls `fn` after every scrape; scraping runs while at least one listener is there. */
    subscribe(fn) {
      listeners.add(fn);
      if (scrapes.length > 0) fn();
      if (timer === undefined && !running) {
        // Keep scrapes at least an interval apart: a rate over a sliver of time after a
        // screen change would turn one request into a spike.
        const last = scrapes[scrapes.length - 1]?.t;
        const wait = last === undefined ? 0 : Math.max(0, last + intervalMs - clock());
        timer = setTimeout(tick, wait);
      }
      return () => {
        listeners.delete(fn);
        if (listeners.size === 0) {
          clearTimeout(timer);
          timer = undefined;
        }
      };
    },
    /** Why the last scrape failed, or undefined. */
    get error() {
      return lastError;
    },
    /** The function's numbers in the newest scrape, or undefined. */
    latest(name) {
      return scrapes[scrapes.length - 1]?.stats.get(name);
    },
    /** Per scrape interval: `{t, rps, errorRatio, avgMs, p95Ms, ready, desired, inflight}`. */
    series(name) {
      const out = [];
      for (let i = 1; i < scrapes.length; i++) {
        const cur = scrapes[i].stats.get(name);
        if (!cur) continue;
        const seconds = (scrapes[i].t - scrapes[i - 1].t) / 1000;
        out.push({
          t: scrapes[i].t,
          ...between(scrapes[i - 1].stats.get(name), cur, seconds),
          ready: cur.ready,
          desired: cur.desired,
          inflight: cur.inflight,
        });
      }
      return out;
    },
  };
}
