/**
 * A runtime on the fake clock whose instances are ready `startMs` after they were asked for
 * (never, for the functions in `never`) and gone at once when scaled away, youngest first;
 * every `scale` call is recorded. For tests of scaling and holding, where only the instances'
 * states matter; when instances must answer requests, use the memory runtime.
 */

import type { FakeClock } from "./fake_clock.ts";
import type { Instance, InstanceListener, Runtime } from "../../control/runtime/runtime.ts";

export interface ScaleCall {
  /** The clock's monotonic time of the call. */
  at: number;
  name: string;
  from: number;
  to: number;
}

export function startingRuntime(
  clock: FakeClock,
  options: { startMs: number; url?: string; never?: string[] },
): { runtime: Runtime; scaled: ScaleCall[] } {
  const desired = new Map<string, number>();
  const list = new Map<string, Instance[]>();
  const listeners = new Set<InstanceListener>();
  const scaled: ScaleCall[] = [];
  let next = 0;
  const notify = (i: Instance) => listeners.forEach((l) => l({ ...i }));
  function setCount(name: string, replicas: number) {
    desired.set(name, replicas);
    const mine = list.get(name) ?? [];
    list.set(name, mine);
    while (mine.length < replicas) {
      const inst: Instance = {
        id: `${name}-${next++}`,
        function: name,
        url: options.url ?? "http://127.0.0.1:1",
        state: "starting",
      };
      mine.push(inst);
      notify(inst);
      if (options.never?.includes(name)) continue;
      clock.setTimeout(() => {
        if (inst.state !== "starting") return;
        inst.state = "ready";
        notify(inst);
      }, options.startMs);
    }
    while (mine.length > replicas) {
      const inst = mine.pop()!;
      inst.state = "gone";
      notify(inst);
    }
  }
  const runtime: Runtime = {
    kind: "local",
    apply(fn, replicas) {
      setCount(fn.name, replicas);
      return Promise.resolve();
    },
    scale(name, replicas) {
      const from = desired.get(name);
      if (from === undefined) return Promise.reject(new Error(`${name} is not applied`));
      scaled.push({ at: clock.monotonic(), name, from, to: replicas });
      setCount(name, replicas);
      return Promise.resolve();
    },
    remove(name) {
      setCount(name, 0);
      desired.delete(name);
      return Promise.resolve();
    },
    desiredReplicas: (name) => desired.get(name),
    instances: (name) =>
      [...list.entries()].filter(([n]) => !name || n === name)
        .flatMap(([, l]) => l.map((i) => ({ ...i }))),
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close: () => Promise.resolve(),
  };
  return { runtime, scaled };
}
