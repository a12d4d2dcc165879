/**
 * A stand-in for the runtime in the autoscaler loop tests: it only counts instances (they
 * are ready as soon as asked for unless `startDelayMs` says otherwise) and records every
 * `scale` call. The end-to-end tests use the real local runtime through `f2s dev`.
 */

import type { Instance, Runtime } from "../../control/runtime/runtime.ts";

export interface CountingRuntime extends Pick<Runtime, "scale" | "instances" | "desiredReplicas"> {
  calls: { name: string; replicas: number }[];
  add(name: string, replicas: number): void;
  /** Marks the instances of `name` ready (when started with `ready: false`). */
  markReady(name: string): void;
}

export function countingRuntime(options: { ready?: boolean } = {}): CountingRuntime {
  const desired = new Map<string, number>();
  const ready = new Map<string, number>();
  const calls: { name: string; replicas: number }[] = [];
  const instantReady = options.ready ?? true;
  return {
    calls,
    add(name, replicas) {
      desired.set(name, replicas);
      ready.set(name, instantReady ? replicas : 0);
    },
    markReady(name) {
      ready.set(name, desired.get(name) ?? 0);
    },
    scale(name, replicas) {
      if (!desired.has(name)) return Promise.reject(new Error(`function "${name}" is not applied`));
      calls.push({ name, replicas });
      desired.set(name, replicas);
      // Scale-down takes effect at once; scale-up is ready at once only when asked so.
      const r = ready.get(name) ?? 0;
      ready.set(name, instantReady ? replicas : Math.min(r, replicas));
      return Promise.resolve();
    },
    desiredReplicas: (name) => desired.get(name),
    instances(name) {
      const out: Instance[] = [];
      for (const [fn, n] of desired) {
        if (name !== undefined && fn !== name) continue;
        const r = ready.get(fn) ?? 0;
        for (let i = 0; i < n; i++) {
          out.push({
            id: `${fn}-${i}`,
            function: fn,
            url: `http://127.0.0.1:1/${i}`,
            state: i < r ? "ready" : "starting",
          });
        }
      }
      return out;
    },
  };
}
