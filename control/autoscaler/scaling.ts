/**
 * Scaling as one part of a control plane: the concurrency tracker the dispatcher feeds, the
 * signal the configuration chooses (local or Prometheus), and the autoscaler loop, wired
 * together the same way for `f2s dev`, `f2s serve` and tests.
 */

import { type Clock, realClock } from "../../common/clock.ts";
import type { FunctionDef } from "../../common/function.ts";
import type { Config } from "../config.ts";
import type { EventLog } from "../events.ts";
import type { Metrics } from "../metrics.ts";
import type { Runtime } from "../runtime/runtime.ts";
import { type Autoscaler, createAutoscaler } from "./autoscaler.ts";
import { type ConcurrencyTracker, createConcurrencyTracker } from "./concurrency.ts";
import { type PeerLoads, replicasSignal } from "./peers.ts";
import { type ConcurrencySignal, localSignal, prometheusSignal } from "./signal.ts";

export interface Scaling {
  tracker: ConcurrencyTracker;
  signal: ConcurrencySignal;
  autoscaler: Autoscaler;
  /** For the dispatcher's `onLoad`: +1 when a request arrives (or is held), -1 when done. */
  onLoad(name: string, delta: number): void;
  /** For the dispatcher's `wake`: a request is waiting for a function with nothing ready. */
  wake(name: string): void;
  start(): void;
  stop(): void;
}

export function createScaling(deps: {
  config: Config;
  runtime: Pick<Runtime, "scale" | "instances" | "desiredReplicas">;
  functions(): FunctionDef[];
  events: EventLog;
  metrics: Metrics;
  /** Only the leader acts on decisions (Kubernetes leader election); default always. */
  isLeader?: () => boolean;
  /** The other replicas' load (`f2s serve`): the local source adds it to this one's. */
  peers?: PeerLoads;
  /** The time every part reads (default: the real one; tests pass a fake). */
  clock?: Clock;
}): Scaling {
  const clock = deps.clock ?? realClock;
  const tracker = createConcurrencyTracker(clock, { metrics: deps.metrics });
  const signal = deps.config.autoscaling.source === "prometheus"
    ? prometheusSignal({ url: deps.config.prometheus.url!, local: tracker, clock })
    : deps.peers
    ? replicasSignal(tracker, deps.peers, clock)
    : localSignal(tracker);
  const autoscaler = createAutoscaler({
    runtime: deps.runtime,
    functions: deps.functions,
    signal,
    config: deps.config.autoscaling,
    events: deps.events,
    metrics: deps.metrics,
    isLeader: deps.isLeader,
    clock,
    forget: (name) => tracker.forget(name),
  });
  return {
    tracker,
    signal,
    autoscaler,
    onLoad: (name, delta) => tracker.change(name, delta),
    wake: (name) => autoscaler.wake(name),
    start: () => autoscaler.start(),
    stop: () => autoscaler.stop(),
  };
}
