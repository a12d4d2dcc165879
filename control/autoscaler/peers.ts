/**
 * The load of the other control-plane replicas, for the `local` scaling source: with several
 * `f2s serve` replicas each dispatcher sees only its own requests, and a leader scaling on its
 * own share alone would take a busy function to zero while another replica serves it.
 *
 * Every replica reports, per function, its requests in flight (served or held), the integral
 * of its concurrency (request-ms, the same counter the Prometheus source reads) and how long
 * ago its last request ended (control/autoscaler/kube_load.ts carries the reports). Here the receiver
 * keeps each peer's integral as samples stamped with its own clock when they arrived, so the
 * average over a window is the integral's growth over the window, exact however short the
 * requests were; after the last sample the peer's in-flight count is carried forward. A peer
 * that has not reported for `staleMs` (it died, or lost the API) no longer counts.
 */

import { type Clock, realClock } from "../../common/clock.ts";
import type { ConcurrencyTracker } from "./concurrency.ts";
import type { ConcurrencySignal } from "./signal.ts";

/** Per function: [in flight, request-ms since the replica started, ms since the last request
 * ended (null: never)]. `seq` changes with every report, so a heartbeat is seen as one. */
export interface LoadReport {
  seq: number;
  fns: Record<string, [number, number, number | null]>;
}

/** This replica's report from its tracker: functions active within `retentionMs`. */
export function loadReport(
  tracker: ConcurrencyTracker,
  seq: number,
  now: number,
  retentionMs = 3_600_000,
): LoadReport {
  const fns: LoadReport["fns"] = {};
  for (const fn of tracker.functions()) {
    const inflight = tracker.current(fn);
    const last = tracker.lastActivity(fn);
    if (inflight === 0 && (last === undefined || now - last > retentionMs)) continue;
    fns[fn] = [
      inflight,
      Math.round(tracker.total(fn)),
      last === undefined ? null : Math.max(0, now - last),
    ];
  }
  return { seq, fns };
}

/** A report as it arrived, checked: anything malformed yields undefined. */
export function parseLoadReport(text: string): LoadReport | undefined {
  try {
    const r = JSON.parse(text);
    if (typeof r?.seq !== "number" || typeof r.fns !== "object" || r.fns === null) return undefined;
    const fns: LoadReport["fns"] = {};
    for (const [fn, v] of Object.entries(r.fns)) {
      if (!Array.isArray(v) || v.length !== 3) continue;
      const [inflight, total, idle] = v;
      if (!(Number.isFinite(inflight) && inflight >= 0 && Number.isFinite(total) && total >= 0)) {
        continue;
      }
      if (idle !== null && !(Number.isFinite(idle) && idle >= 0)) continue;
      fns[fn] = [inflight, total, idle];
    }
    return { seq: r.seq, fns };
  } catch {
    return undefined;
  }
}

export interface PeerLoads {
  /** A peer's report, received at `at` (the receiver's clock). */
  record(peer: string, report: LoadReport, at: number): void;
  /** The peer left (its report was removed). */
  forget(peer: string): void;
  /** Peers that reported within the stale limit. */
  fresh(now: number): string[];
  /** Every peer known, with when it last reported. */
  lastSeen(): Map<string, number>;
  /** Sum over fresh peers of the average concurrency over the window ending `now`. */
  average(fn: string, windowMs: number, now: number): number;
  /** Requests in flight on fresh peers, as last reported. */
  inflight(fn: string, now: number): number;
  /** `now` while a fresh peer has a request in flight, else the latest end of one. */
  lastActivity(fn: string, now: number): number | undefined;
}

interface Series {
  /** Arrival time and integral, oldest first. */
  samples: { t: number; total: number }[];
  inflight: number;
  /** When the peer's last request ended, on the receiver's clock. */
  lastEnded?: number;
}

interface Peer {
  seq: number;
  seen: number;
  fns: Map<string, Series>;
}

export function createPeerLoads(
  options: { staleMs: number; retentionMs?: number },
): PeerLoads {
  const retentionMs = options.retentionMs ?? 3_600_000;
  const peers = new Map<string, Peer>();
  const isFresh = (p: Peer, now: number) => now - p.seen <= options.staleMs;

  /** The peer's integral at time `t`: interpolated, or carried forward after the last sample. */
  function integralAt(s: Series, t: number): number {
    const samples = s.samples;
    const last = samples[samples.length - 1];
    if (t >= last.t) return last.total + s.inflight * (t - last.t);
    if (t <= samples[0].t) return samples[0].total;
    let i = samples.length - 1;
    while (samples[i - 1].t > t) i--;
    const a = samples[i - 1], b = samples[i];
    return a.total + (b.total - a.total) * (t - a.t) / (b.t - a.t);
  }

  return {
    record(peer, report, at) {
      let p = peers.get(peer);
      if (p && p.seq === report.seq) return;
      if (!p) {
        p = { seq: report.seq, seen: at, fns: new Map() };
        peers.set(peer, p);
      }
      p.seq = report.seq;
      p.seen = at;
      for (const fn of [...p.fns.keys()]) if (!(fn in report.fns)) p.fns.delete(fn);
      for (const [fn, [inflight, total, idle]] of Object.entries(report.fns)) {
        let s = p.fns.get(fn);
        const last = s?.samples[s.samples.length - 1];
        // A smaller integral: the replica restarted under the same name; start over.
        if (!s || (last && total < last.total)) {
          s = { samples: [], inflight: 0 };
          p.fns.set(fn, s);
        }
        if (last && at <= last.t) s.samples.pop();
        s.samples.push({ t: at, total });
        s.inflight = inflight;
        s.lastEnded = idle === null ? undefined : at - idle;
        // Keep one sample older than the retention, to interpolate up to its edge.
        let drop = 0;
        while (drop + 1 < s.samples.length && s.samples[drop + 1].t < at - retentionMs) drop++;
        if (drop) s.samples.splice(0, drop);
      }
    },
    forget: (peer) => void peers.delete(peer),
    fresh: (now) => [...peers].filter(([, p]) => isFresh(p, now)).map(([name]) => name),
    lastSeen: () => new Map([...peers].map(([name, p]) => [name, p.seen])),
    average(fn, windowMs, now) {
      let sum = 0;
      for (const p of peers.values()) {
        const s = p.fns.get(fn);
        if (!s || !isFresh(p, now)) continue;
        if (windowMs <= 0) {
          sum += s.inflight;
          continue;
        }
        sum += Math.max(0, integralAt(s, now) - integralAt(s, now - windowMs)) / windowMs;
      }
      return sum;
    },
    inflight(fn, now) {
      let sum = 0;
      for (const p of peers.values()) {
        if (isFresh(p, now)) sum += p.fns.get(fn)?.inflight ?? 0;
      }
      return sum;
    },
    lastActivity(fn, now) {
      let latest: number | undefined;
      for (const p of peers.values()) {
        const s = p.fns.get(fn);
        if (!s || !isFresh(p, now)) continue;
        const t = s.inflight > 0 ? now : s.lastEnded;
        if (t !== undefined && (latest === undefined || t > latest)) latest = t;
      }
      return latest;
    },
  };
}

/**
 * The `local` source with several replicas: this replica's own load plus what the others
 * reported, so the leader scales on all of it and never takes to zero a function that is
 * busy elsewhere.
 */
export function replicasSignal(
  tracker: ConcurrencyTracker,
  peers: PeerLoads,
  clock: Clock = realClock,
): ConcurrencySignal {
  const now = () => clock.now();
  return {
    source: "local",
    average: (fn, windowMs) =>
      Promise.resolve(tracker.average(fn, windowMs) + peers.average(fn, windowMs, now())),
    lastActivity(fn) {
      const own = tracker.lastActivity(fn);
      const others = peers.lastActivity(fn, now());
      if (own === undefined) return Promise.resolve(others);
      if (others === undefined) return Promise.resolve(own);
      return Promise.resolve(Math.max(own, others));
    },
  };
}
