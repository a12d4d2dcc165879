/**
 * The autoscaler loop: every tick, for every function, reads the concurrency signal, asks
 * the KPA decision (kpa.ts) for the instance count and, when it changes, tells the runtime,
 * records the decision with its inputs as an event and counts it in the metrics.
 *
 * It acts only through `runtime.scale` (the runtime drains instances on scale-down) and only
 * while `isLeader()` says so, so with several control-plane replicas one of them scales.
 * `wake` is the exception: raising a function from zero to one instance is idempotent and
 * urgent, so any replica's dispatcher may ask for it.
 */

import { type Clock, realClock } from "../../common/clock.ts";
import type { FunctionDef } from "../../common/function.ts";
import { createLogger, type Logger } from "../../common/log.ts";
import type { AutoscalingConfig } from "../config.ts";
import type { EventLog } from "../events.ts";
import type { Metrics } from "../metrics.ts";
import type { Runtime } from "../runtime/runtime.ts";
import { decide, type KpaDecision, type KpaParams, type PanicState } from "./kpa.ts";
import type { ConcurrencySignal } from "./signal.ts";

export interface AutoscalerDeps {
  runtime: Pick<Runtime, "scale" | "instances" | "desiredReplicas">;
  /** The functions to scale, read every tick. */
  functions(): FunctionDef[];
  signal: ConcurrencySignal;
  config: AutoscalingConfig;
  events: EventLog;
  metrics: Metrics;
  /** Must be the clock the signal's last-activity times use (default: the real one). */
  clock?: Clock;
  /** Only the leader acts on decisions; default: always this one. */
  isLeader?: () => boolean;
  /** Called once a function is no longer listed (e.g. to drop its signal history). */
  forget?: (name: string) => void;
  log?: Logger;
}

/** Scaling settings of one function: its own where set, the global ones otherwise. */
export interface ScalingParams extends KpaParams {
  panicWindow: number;
}

/** The last round for one function: what was measured and what was decided. */
export interface ScalingRecord {
  time: number;
  function: string;
  source: string;
  stableConcurrency: number;
  panicConcurrency: number;
  ready: number;
  from: number;
  to: number;
  reason: string;
  panic: boolean;
  idleForMs: number;
  params: ScalingParams;
}

export interface Autoscaler {
  start(): void;
  stop(): void;
  /** One decision round for every function (what each tick runs; tests call it directly). */
  tick(): Promise<void>;
  /** A request arrived for `name` with no ready instance: scale from zero now. */
  wake(name: string): void;
  /** The last round's inputs and decision for `name`, to explain its instance count. */
  explain(name: string): ScalingRecord | undefined;
}

export function scalingParams(fn: FunctionDef, global: AutoscalingConfig): ScalingParams {
  // FunctionDef fills in the defaults, so a value equal to the default means "not set here".
  const s = fn.scaling;
  return {
    targetConcurrency: s.targetConcurrency ?? global.targetConcurrency,
    idleTimeout: s.idleTimeout ?? global.idleTimeout,
    stableWindow: s.stableWindow ?? global.stableWindow,
    panicWindow: s.panicWindow ?? global.panicWindow,
    panicThreshold: s.panicThreshold ?? global.panicThreshold,
    minReplicas: fn.minReplicas,
    maxReplicas: fn.maxReplicas,
  };
}

interface FunctionState {
  seenSince: number;
  panic?: PanicState;
  lastWake?: number;
  signalFailing?: boolean;
  last?: ScalingRecord;
}

export function createAutoscaler(deps: AutoscalerDeps): Autoscaler {
  const clock = deps.clock ?? realClock;
  const isLeader = deps.isLeader ?? (() => true);
  const log = deps.log ?? createLogger("autoscaler");
  const states = new Map<string, FunctionState>();
  let timer: unknown;
  let running: Promise<void> | undefined;
  let wasLeader = false;

  function stateOf(name: string): FunctionState {
    let st = states.get(name);
    if (!st) {
      st = { seenSince: clock.now() };
      states.set(name, st);
    }
    return st;
  }

  function readyCount(name: string): number {
    return deps.runtime.instances(name).filter((i) => i.state === "ready").length;
  }

  function forget(name: string) {
    states.delete(name);
    deps.forget?.(name);
    const m = deps.metrics;
    m.desiredInstances.remove({ function: name });
    m.observedConcurrency.remove({ function: name, window: "stable" });
    m.observedConcurrency.remove({ function: name, window: "panic" });
    m.panicMode.remove({ function: name });
  }

  function recordDecision(rec: ScalingRecord, message: string) {
    const direction = rec.to > rec.from ? "up" : "down";
    deps.metrics.scalingDecisions.inc({ function: rec.function, direction });
    const p = rec.params;
    const data = {
      from: rec.from,
      to: rec.to,
      reason: rec.reason,
      direction,
      source: rec.source,
      stableConcurrency: round(rec.stableConcurrency),
      panicConcurrency: round(rec.panicConcurrency),
      stableWindowMs: p.stableWindow,
      panicWindowMs: p.panicWindow,
      targetConcurrency: p.targetConcurrency,
      panicThreshold: p.panicThreshold,
      minReplicas: p.minReplicas,
      maxReplicas: p.maxReplicas,
      ready: rec.ready,
      panic: rec.panic,
      idleForMs: Math.round(rec.idleForMs),
      idleTimeoutMs: p.idleTimeout,
    };
    deps.events.record("scaling.decision", message, { function: rec.function, data });
    log.info(message, { function: rec.function, ...data });
  }

  async function scale(name: string, to: number) {
    try {
      await deps.runtime.scale(name, to);
    } catch (e) {
      const message = `could not scale ${name} to ${to}: ${(e as Error).message}`;
      deps.events.record("scaling.error", message, { function: name });
      log.error(message, { function: name });
    }
  }

  async function scaleFunction(fn: FunctionDef) {
    const name = fn.name;
    const current = deps.runtime.desiredReplicas(name);
    if (current === undefined) return; // not applied (yet): nothing to scale
    const st = stateOf(name);
    const params = scalingParams(fn, deps.config);
    let stable: number, panic: number, lastActivity: number | undefined;
    try {
      [stable, panic, lastActivity] = await Promise.all([
        deps.signal.average(name, params.stableWindow),
        deps.signal.average(name, params.panicWindow),
        deps.signal.lastActivity(name),
      ]);
    } catch (e) {
      // Without a signal the count stays as it is; say so once, not every tick.
      if (!st.signalFailing) {
        st.signalFailing = true;
        const message = `no concurrency signal for ${name}, keeping ${current} instances: ${
          (e as Error).message
        }`;
        deps.events.record("scaling.error", message, { function: name });
        log.warn(message, { function: name, source: deps.signal.source });
      }
      return;
    }
    if (st.signalFailing) {
      st.signalFailing = false;
      log.info("concurrency signal is back", { function: name, source: deps.signal.source });
    }
    // A wake counts as activity: the held request may not have shown up in the signal yet.
    if (st.lastWake !== undefined) lastActivity = Math.max(lastActivity ?? 0, st.lastWake);
    const now = clock.now();
    const ready = readyCount(name);
    const d = decide({
      now,
      stable,
      panic,
      ready,
      current,
      lastActivity,
      seenSince: st.seenSince,
      panicState: st.panic,
      params,
    });
    notePanic(name, st.panic, d, panic, ready, params);
    st.panic = d.panicState;
    const rec: ScalingRecord = {
      time: now,
      function: name,
      source: deps.signal.source,
      stableConcurrency: stable,
      panicConcurrency: panic,
      ready,
      from: current,
      to: d.desired,
      reason: d.reason,
      panic: d.panicState !== undefined,
      idleForMs: d.idleFor,
      params,
    };
    st.last = rec;
    const m = deps.metrics;
    m.observedConcurrency.set({ function: name, window: "stable" }, stable);
    m.observedConcurrency.set({ function: name, window: "panic" }, panic);
    m.panicMode.set({ function: name }, d.panicState ? 1 : 0);

    // Someone else (a wake, an apply) may have changed the count while we measured.
    if (deps.runtime.desiredReplicas(name) !== current) return;
    m.desiredInstances.set({ function: name }, current);
    if (d.desired === current) return;
    if (d.desired === 0) {
      // Last look before going to zero: a request may have arrived during this round.
      const again = await deps.signal.lastActivity(name).catch(() => clock.now());
      const latest = Math.max(again ?? 0, st.lastWake ?? 0);
      if (clock.now() - latest < params.idleTimeout) return;
      if (deps.runtime.desiredReplicas(name) !== current) return;
    }
    m.desiredInstances.set({ function: name }, d.desired);
    recordDecision(rec, explainDecision(rec, d));
    await scale(name, d.desired);
  }

  function notePanic(
    name: string,
    before: PanicState | undefined,
    d: KpaDecision,
    panic: number,
    ready: number,
    p: ScalingParams,
  ) {
    const data = {
      panicConcurrency: round(panic),
      ready,
      targetConcurrency: p.targetConcurrency,
      panicThreshold: p.panicThreshold,
      panicWindowMs: p.panicWindow,
    };
    if (!before && d.panicState) {
      const message = `${name} entered panic mode: ${round(panic)} concurrent requests over ${
        seconds(p.panicWindow)
      } ≥ ${p.panicThreshold}× the capacity of ${
        Math.max(1, ready)
      } instance(s) at target ${p.targetConcurrency}`;
      deps.events.record("scaling.panic", message, { function: name, data });
      log.info(message, { function: name, ...data });
    } else if (before && !d.panicState) {
      const message = `${name} left panic mode`;
      deps.events.record("scaling.panic", message, { function: name, data });
      log.info(message, { function: name, ...data });
    }
  }

  async function tickOnce() {
    const leader = isLeader();
    if (!leader) {
      // Panic state is this replica's memory; a new leader starts afresh.
      if (wasLeader) { for (const st of states.values()) st.panic = undefined; }
      wasLeader = false;
      return;
    }
    wasLeader = true;
    const fns = deps.functions();
    const names = new Set(fns.map((f) => f.name));
    for (const name of [...states.keys()]) if (!names.has(name)) forget(name);
    await Promise.all(fns.map((fn) =>
      scaleFunction(fn).catch((e) => {
        log.error("scaling round failed", { function: fn.name, error: e });
      })
    ));
  }

  const autoscaler: Autoscaler = {
    start() {
      if (timer !== undefined) return;
      timer = clock.setInterval(() => {
        // A slow round (e.g. Prometheus timing out) is not stacked with the next one.
        if (!running) autoscaler.tick();
      }, deps.config.tick);
    },
    stop() {
      if (timer !== undefined) clock.clearInterval(timer);
      timer = undefined;
    },
    tick() {
      if (running) return running;
      running = tickOnce().finally(() => {
        running = undefined;
      });
      return running;
    },
    wake(name) {
      const current = deps.runtime.desiredReplicas(name);
      if (current === undefined || current > 0) return;
      const fn = deps.functions().find((f) => f.name === name);
      const params: ScalingParams = fn ? scalingParams(fn, deps.config) : {
        ...deps.config,
        minReplicas: 0,
        maxReplicas: 1,
      };
      const to = Math.max(1, params.minReplicas);
      const st = stateOf(name);
      st.lastWake = clock.now();
      deps.metrics.desiredInstances.set({ function: name }, to);
      const rec: ScalingRecord = {
        time: st.lastWake,
        function: name,
        source: deps.signal.source,
        stableConcurrency: 0,
        panicConcurrency: 0,
        ready: readyCount(name),
        from: 0,
        to,
        reason: "wake",
        panic: false,
        idleForMs: 0,
        params,
      };
      st.last = rec;
      recordDecision(rec, `scaled ${name} 0 → ${to} (wake): a request arrived with no instance`);
      scale(name, to);
    },
    explain: (name) => states.get(name)?.last,
  };
  return autoscaler;
}

/** The event message: the change, then why in words, with the numbers that led to it. */
function explainDecision(rec: ScalingRecord, d: KpaDecision): string {
  const p = rec.params;
  const head = `scaled ${rec.function} ${rec.from} → ${rec.to} (${rec.reason})`;
  const stable = `${round(rec.stableConcurrency)} concurrent over ${seconds(p.stableWindow)}`;
  const panic = `${round(rec.panicConcurrency)} concurrent over ${seconds(p.panicWindow)}`;
  switch (d.reason) {
    case "stable":
      return `${head}: ${stable} at target ${p.targetConcurrency} per instance needs ${d.wantStable}`;
    case "panic":
      return `${head}: panic, ${panic} at target ${p.targetConcurrency} needs ${d.wantPanic} (${stable})`;
    case "panic-hold":
      return `${head}: panic mode does not scale down until demand stays below ${p.panicThreshold}× capacity for ${
        seconds(p.stableWindow)
      }`;
    case "tolerance":
      return `${head}: ${stable} would leave less than the scale-down tolerance free on ${d.wantStable}`;
    case "idle":
      return `${head}: no request for ${seconds(rec.idleForMs)} (idle timeout ${
        seconds(p.idleTimeout)
      })`;
    case "keep-one":
      return `${head}: no load, but the last request was ${
        seconds(rec.idleForMs)
      } ago, within the idle timeout of ${seconds(p.idleTimeout)}`;
    case "min":
      return `${head}: demand (${
        Math.max(d.wantStable, d.wantPanic)
      }) is below minReplicas ${p.minReplicas}; ${stable}`;
    case "max":
      return `${head}: demand (${
        Math.max(d.wantStable, d.wantPanic)
      }) is above maxReplicas ${p.maxReplicas}; ${stable}, ${panic}`;
  }
}

function round(v: number): number {
  return Math.round(v * 1000) / 1000;
}

function seconds(ms: number): string {
  return `${round(ms / 1000)}s`;
}
