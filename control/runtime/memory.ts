/**
 * A runtime whose instances live in this process: each is F2S's own HTTP/1.1 server on a
 * loopback port, answering with a handler the caller gives (the app and its fizzlet in
 * one function). No process is started, so tests of the platform, the API and the
 * store follower run in milliseconds, and the bench measures the dispatcher alone. The
 * dispatcher still forwards to the instance over a real connection: pooling, suspension
 * on a failed connection and retries are exercised as in `f2s dev`.
 *
 * An app may also be the URL of a server running elsewhere (the dispatcher bench's static
 * backend). Start latency and start failures are injected per start (`app(fn)` is asked every time
 * an instance starts), and `crash` ends an instance the way a dying process would.
 */

import { type Clock, realClock, type TimerId } from "../../common/clock.ts";
import type { FunctionDef } from "../../common/function.ts";
import { type Http1Server, serveHttp1 } from "../../common/http1_server.ts";
import { createLogger, type Logger } from "../../common/log.ts";
import { FIZZLET_PATHS } from "../../common/protocol.ts";
import { webHandler } from "../../common/web_bridge.ts";
import type { EventRecorder } from "../../dispatcher/needs.ts";
import { applyDesired, planInstances, scaleDesired } from "./plan.ts";
import type {
  Instance,
  InstanceListener,
  InstanceState,
  Runtime,
  StartFailure,
} from "./runtime.ts";

/** What an instance of a function does, asked for at every start. */
export type MemoryApp =
  & (
    | {
      /** Answers the function's requests (paths as the fizzlet would see them). */
      handler(req: Request, instance: Instance): Response | Promise<Response>;
    }
    | {
      /** A server already running elsewhere is the instance (the bench's static backend). */
      url: string;
    }
  )
  & {
    /** From start to ready (ms); default 0. */
    startMs?: number;
    /** The start fails after `startMs` with this reason (e.g. AppExited) instead. */
    failure?: { reason: string; message: string };
  };

export interface MemoryRuntimeOptions {
  /** Times start latency (default: the real clock), so a test clock drives instance starts. */
  clock?: Clock;
  /** The app for a function's new instance; undefined: the function cannot start here. */
  app(fn: FunctionDef): MemoryApp | undefined;
  events?: EventRecorder;
  log?: Logger;
}

export interface MemoryRuntime extends Runtime {
  readonly kind: "memory";
  /** Ends an instance as if its process died: gone at once, then replaced. */
  crash(id: string): Promise<void>;
  /** How many instances of the function were started so far (failed starts included). */
  starts(name: string): number;
}

interface MemoryInstance {
  id: string;
  function: string;
  generation: number;
  state: InstanceState;
  /** The instance's own server (none for an app given as a URL). */
  server?: Http1Server;
  url: string;
  timer?: TimerId;
  stopping: boolean;
}

interface FunctionState {
  fn: FunctionDef;
  desired: number;
  generation: number;
  starts: number;
  failure?: StartFailure;
}

export function createMemoryRuntime(options: MemoryRuntimeOptions): MemoryRuntime {
  const log = options.log ?? createLogger("runtime.memory");
  const clock = options.clock ?? realClock;
  const functions = new Map<string, FunctionState>();
  const instances = new Map<string, MemoryInstance>();
  const listeners = new Set<InstanceListener>();
  let counter = 0;
  let closed = false;

  function notify(snapshot: Instance) {
    for (const l of listeners) {
      try {
        l(snapshot);
      } catch (e) {
        log.error("instance listener failed", { error: e });
      }
    }
  }

  function emit(inst: MemoryInstance, state: InstanceState, failure?: StartFailure) {
    inst.state = state;
    notify({ id: inst.id, function: inst.function, url: inst.url, state, failure });
  }

  function record(type: string, message: string, name: string) {
    options.events?.record(type, message, { function: name });
  }

  function startInstance(st: FunctionState) {
    const id = `${st.fn.name}-${++counter}`;
    st.starts++;
    const app = options.app(st.fn);
    if (!app) {
      // Like f2s dev without a folder for the image: nothing to run, said at once.
      st.failure = failureOf("NoApp", `no in-memory app for function "${st.fn.name}"`);
      record("instance.failed", st.failure.message, st.fn.name);
      notify({ id, function: st.fn.name, url: "", state: "gone", failure: st.failure });
      return;
    }
    // The instance's requests arrive only once it exists (and is ready).
    const own = (answer: (inst: MemoryInstance, req: Request) => Response | Promise<Response>) =>
      webHandler((req) => answer(inst, req));
    const server = "url" in app ? undefined : serveHttp1(
      { hostname: "127.0.0.1", port: 0, log },
      own((self, req) => {
        const path = new URL(req.url).pathname;
        if (path === FIZZLET_PATHS.ready || path === FIZZLET_PATHS.health) {
          const ready = self.state === "ready";
          return new Response(ready ? "ready" : "not ready", { status: ready ? 200 : 503 });
        }
        return app.handler(req, snapshot(self));
      }),
    );
    const inst: MemoryInstance = {
      id,
      function: st.fn.name,
      generation: st.generation,
      state: "starting",
      server,
      url: "url" in app ? app.url : `http://127.0.0.1:${server!.addr.port}`,
      stopping: false,
    };
    instances.set(id, inst);
    record("instance.starting", `instance ${id} starting`, st.fn.name);
    emit(inst, "starting");
    const becomeReady = () => {
      inst.timer = undefined;
      if (inst.stopping) return;
      if (app.failure) {
        st.failure = failureOf(app.failure.reason, app.failure.message);
        record("instance.failed", st.failure.message, st.fn.name);
        instances.delete(id);
        inst.stopping = true;
        server?.shutdown();
        emit(inst, "gone", st.failure);
        return;
      }
      st.failure = undefined;
      emit(inst, "ready");
      record("instance.ready", `instance ${id} is ready`, st.fn.name);
      matchDesired(st.fn.name);
    };
    // Ready after the injected latency; without one, still not within apply's own call,
    // as no real instance is ready at once either.
    if ((app.startMs ?? 0) > 0) inst.timer = clock.setTimeout(becomeReady, app.startMs!);
    else queueMicrotask(becomeReady);
  }

  /** No new requests, the ones in flight finish, then gone. */
  async function stopInstance(inst: MemoryInstance) {
    if (inst.stopping) return;
    inst.stopping = true;
    clock.clearTimeout(inst.timer);
    emit(inst, "draining");
    record("instance.draining", `instance ${inst.id} draining`, inst.function);
    await inst.server?.shutdown();
    instances.delete(inst.id);
    emit(inst, "gone");
  }

  /** Moves the instances of one function toward what is desired (plan.ts, as local.ts). */
  function matchDesired(name: string) {
    if (closed) return;
    const st = functions.get(name);
    const all = [...instances.values()].filter((i) => i.function === name && !i.stopping);
    if (!st) {
      for (const inst of all) stopInstance(inst);
      return;
    }
    const plan = planInstances(all, st.desired, st.generation);
    for (let i = 0; i < plan.start; i++) startInstance(st);
    for (const inst of plan.stop) stopInstance(inst);
  }

  return {
    kind: "memory",
    apply(fn, replicas) {
      if (closed) return Promise.resolve();
      applyDesired(functions, fn, replicas, () => ({
        fn,
        desired: replicas,
        generation: 1,
        starts: 0,
      }));
      matchDesired(fn.name);
      return Promise.resolve();
    },
    scale: (name, replicas) => scaleDesired(functions, name, replicas, matchDesired),
    async remove(name) {
      if (!functions.delete(name)) return;
      await Promise.all(
        [...instances.values()].filter((i) => i.function === name).map(stopInstance),
      );
    },
    desiredReplicas: (name) => functions.get(name)?.desired,
    failure: (name) => functions.get(name)?.failure,
    check(fn) {
      return options.app(fn)
        ? []
        : [{ path: "target.containerImage", message: `no in-memory app for "${fn.name}"` }];
    },
    instances(name) {
      return [...instances.values()]
        .filter((i) => name === undefined || i.function === name)
        .map(snapshot);
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async crash(id) {
      const inst = instances.get(id);
      if (!inst || inst.stopping) throw new Error(`no running instance "${id}"`);
      inst.stopping = true;
      clock.clearTimeout(inst.timer);
      instances.delete(id);
      // Gone at once, without draining first (answers already under way still finish:
      // the server has no way to cut them).
      const done = inst.server?.shutdown();
      const message = `instance ${id} exited unexpectedly (crash injected)`;
      record("instance.crashed", message, inst.function);
      const st = functions.get(inst.function);
      const failure = inst.state === "starting" && st
        ? (st.failure = failureOf("ExitedBeforeReady", message))
        : undefined;
      emit(inst, "gone", failure);
      matchDesired(inst.function);
      await done;
    },
    starts: (name) => functions.get(name)?.starts ?? 0,
    async close() {
      closed = true;
      await Promise.all([...instances.values()].map(stopInstance));
    },
  };
}

function snapshot(i: MemoryInstance): Instance {
  return { id: i.id, function: i.function, url: i.url, state: i.state };
}

function failureOf(reason: string, message: string): StartFailure {
  return { reason, message, at: new Date().toISOString() };
}
