/**
 * The local runtime used by `f2s dev`: every instance is a real process tree, the fizzlet
 * (started as `f2s fizzlet`) on its own loopback port, with the function's app or start.sh
 * beneath it. Readiness comes from probing the fizzlet's `/f2s/ready` like a kubelet does,
 * and every state change is pushed to subscribers.
 */

import { existsSync } from "node:fs";
import { basename, isAbsolute, join } from "node:path";
import { type Clock, realClock, type TimerId } from "../../common/clock.ts";
import type { FunctionDef } from "../../common/function.ts";
import { createLogger, type Logger } from "../../common/log.ts";
import { FIZZLET_PATHS } from "../../common/protocol.ts";
import { selfCommand } from "../../common/self.ts";
import type { EventLog } from "../events.ts";
import { instanceEnv } from "./instance_env.ts";
import { applyDesired, planInstances, scaleDesired } from "./plan.ts";
import { createPortPool, type PortPool } from "./ports.ts";
import { makeSocketDir } from "./socket_dir.ts";
import { type Marker, sweep, sweepOrphans, ticksNow } from "../../common/sweep.ts";
import { ownerId } from "../../common/owners.ts";
import type {
  Instance,
  InstanceListener,
  InstanceState,
  Runtime,
  StartFailure,
} from "./runtime.ts";

export interface LocalRuntimeOptions {
  /** Folders searched for an image's function folder when `target.local.dir` is not set. */
  imageDirs: string[];
  events: EventLog;
  /** How long an instance may take to finish in-flight work when stopped. */
  gracePeriodMs?: number;
  /** How often a ready instance is probed again. */
  probeIntervalMs?: number;
  /** Where instance ports come from (default: any free port). */
  ports?: PortPool;
  /** Probe pacing, restart back-off and kill timers run on it (default: the real one). */
  clock?: Clock;
  log?: Logger;
}

interface LocalInstance extends Instance {
  generation: number;
  child?: Deno.ChildProcess;
  pid?: number;
  exited: Promise<void>;
  stopping: boolean;
  /** The app's last line of output, quoted when it fails before being ready. */
  lastOutput?: string;
  /** Its fizzlet's and its app's port, given back to the pool when it is gone. */
  ports: number[];
  /**
   * In the environment of its fizzlet and of everything that inherits it (the app, scripts):
   * how what it leaves behind is found once it is gone (common/sweep.ts).
   */
  marker: Marker;
  /** When its fizzlet was started, on /proc's clock (sweep.ts's ticksNow). */
  since: number;
}

interface FunctionState {
  fn: FunctionDef;
  desired: number;
  generation: number;
  crashes: number;
  /** On the clock's monotonic time; 0: no wait. */
  restartAt: number;
  removed: boolean;
  /** Why the last instance did not start; cleared when one is ready. */
  failure?: StartFailure;
}

/** Names the control plane (common/owners.ts: ownerId) in its instances' environment. */
const OWNER_VARIABLE = "F2S_DEV_OWNER";

export function createLocalRuntime(options: LocalRuntimeOptions): Runtime {
  const log = options.log ?? createLogger("runtime.local");
  const grace = options.gracePeriodMs ?? 10_000;
  const probeInterval = options.probeIntervalMs ?? 1000;
  const ports = options.ports ?? createPortPool();
  const clock = options.clock ?? realClock;
  const functions = new Map<string, FunctionState>();
  const instances = new Map<string, LocalInstance>();
  const listeners = new Set<InstanceListener>();
  let counter = 0;
  let closed = false;
  let socketDir: string | undefined;
  /** This control plane, in every instance's environment: see sweepOrphans. */
  const owner = ownerId();
  sweepLeftByGone();

  /**
   * A Unix socket path for an instance's fizzlet, which serves on it as well as on its
   * port: the dispatcher uses it (on one machine it costs about half of a loopback TCP
   * round trip's CPU, bench/RESULTS.md). None when the path would be too long for a socket.
   */
  function socketFor(id: string): string | undefined {
    if (!socketDir) {
      const made = makeSocketDir();
      socketDir = made.dir;
      if (made.removed > 0) {
        log.info("socket folders of control planes that are gone removed", {
          removed: made.removed,
        });
      }
    }
    const path = join(socketDir, `${id}.sock`);
    return path.length <= 100 ? path : undefined;
  }

  function emit(inst: LocalInstance, state: InstanceState, failure?: StartFailure) {
    if (inst.state === state && !failure) return;
    inst.state = state;
    const { id, function: fn, url, socket } = inst;
    notify({ id, function: fn, url, socket, state, failure });
  }

  function notify(snapshot: Instance) {
    for (const l of listeners) {
      try {
        l(snapshot);
      } catch (e) {
        log.error("instance listener failed", { error: e });
      }
    }
  }

  /** The function's folder, or the folders searched in vain. */
  function resolveDir(fn: FunctionDef): { dir: string } | { searched: string[] } {
    if (fn.local.dir) {
      return existsSync(fn.local.dir) ? { dir: fn.local.dir } : { searched: [fn.local.dir] };
    }
    // "registry/f2s-examples/nodejs:1.2" → "nodejs", looked up in every image folder.
    const name = basename(fn.image.replace(/[:@].*$/, ""));
    const searched = options.imageDirs.map((dir) => join(dir, name));
    const dir = searched.find((candidate) => existsSync(candidate));
    return dir ? { dir } : { searched };
  }

  function missingDirMessage(fn: FunctionDef, searched: string[]): string {
    return fn.local.dir
      ? `target.local.dir "${fn.local.dir}" does not exist`
      : `no local folder for image "${fn.image}" (searched ${
        searched.join(", ")
      }): set target.local.dir or add a folder named after the image`;
  }

  /**
   * An instance that will not become ready: the function's status says why, held requests
   * get the reason at once (through the event), and the next try waits out a backoff.
   */
  function startFailed(st: FunctionState, id: string, reason: string, message: string) {
    st.failure = { reason, message, at: new Date(clock.now()).toISOString() };
    options.events.record("instance.failed", message, { function: st.fn.name, data: { reason } });
    log.error(message, { function: st.fn.name, instance: id, reason });
    st.crashes++;
    st.restartAt = clock.monotonic() + backoff(st.crashes);
    scheduleMatch(st.fn.name, backoff(st.crashes));
    notify({ id, function: st.fn.name, url: "", state: "gone", failure: st.failure });
  }

  /** Watches an instance's log while it starts: its app exiting is a failure to start. */
  function watchOutput(inst: LocalInstance, st: FunctionState, line: string) {
    let entry: { msg?: unknown; line?: unknown; code?: unknown; error?: unknown };
    try {
      entry = JSON.parse(line);
    } catch {
      inst.lastOutput = line;
      return;
    }
    if (entry.msg === "app output") inst.lastOutput = String(entry.line);
    const exited = entry.msg === "app exited; restarting";
    if (inst.state !== "starting" || (!exited && entry.msg !== "app could not be started")) return;
    const why = exited
      ? `its app exited (code ${entry.code ?? "?"})`
      : `its app could not be started (${entry.error})`;
    const message = `instance ${inst.id} is not ready: ${why}` +
      (inst.lastOutput ? `; last output: ${inst.lastOutput.slice(0, 300)}` : "");
    st.failure = { reason: "AppExited", message, at: new Date(clock.now()).toISOString() };
    options.events.record("instance.failed", message, {
      function: inst.function,
      data: { reason: "AppExited" },
    });
    emit(inst, "starting", st.failure);
  }

  function startInstance(st: FunctionState) {
    const fn = st.fn;
    const id = `${fn.name}-${++counter}`;
    const found = resolveDir(fn);
    const ilog = log.with({ function: fn.name, instance: id });
    if ("searched" in found) {
      return startFailed(st, id, "NoLocalFolder", missingDirMessage(fn, found.searched));
    }
    const dir = found.dir;
    const port = ports.take();
    const appPort = port === undefined ? undefined : ports.take();
    if (port === undefined || appPort === undefined) {
      if (port !== undefined) ports.release(port);
      const where = ports.range
        ? `in --instance-ports ${ports.range.from}-${ports.range.to}`
        : "that no instance holds (the kernel offered only held ones)";
      return startFailed(st, id, "NoFreePort", `no two free ports left ${where} for ${id}`);
    }
    const args = [
      "fizzlet",
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      "--app-port",
      String(appPort),
      "--dir",
      isAbsolute(dir) ? dir : join(Deno.cwd(), dir),
      "--grace",
      String(grace),
    ];
    const socket = socketFor(id);
    if (socket) args.push("--socket", socket);
    if (fn.local.command) args.push("--app-command", fn.local.command, "--mode", "proxy");
    const [cmd, ...rest] = selfCommand(args);
    const inst: LocalInstance = {
      id,
      function: fn.name,
      url: `http://127.0.0.1:${port}`,
      socket,
      state: "starting",
      generation: st.generation,
      exited: Promise.resolve(),
      stopping: false,
      ports: [port, appPort],
      marker: { name: "F2S_INSTANCE_RUN", value: crypto.randomUUID() },
      since: ticksNow(),
    };
    try {
      // setsid: the instance gets its own session, so a terminal's Ctrl-C reaches only the
      // control plane, which then stops every instance in order.
      const child = new Deno.Command("setsid", {
        args: [cmd, ...rest],
        cwd: isAbsolute(dir) ? dir : join(Deno.cwd(), dir),
        // Only an allow-list of the control plane's environment, never its secrets.
        clearEnv: true,
        env: instanceEnv(fn.env, {
          F2S_FUNCTION: fn.name,
          F2S_INSTANCE: id,
          F2S_LOG_LEVEL: Deno.env.get("F2S_LOG_LEVEL") ?? "info",
          // The fizzlet stops when this process dies, even by SIGKILL (fizzlet/follow_parent.ts).
          F2S_PARENT_PID: String(Deno.pid),
          [inst.marker.name]: inst.marker.value,
          ...(owner ? { [OWNER_VARIABLE]: owner } : {}),
        }),
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      inst.child = child;
      inst.pid = child.pid;
      const onLine = (line: string) => {
        watchOutput(inst, st, line);
        relay(line, fn.name, id);
      };
      pipeLines(child.stdout, onLine);
      pipeLines(child.stderr, onLine);
      inst.exited = child.status.then((status) => onExit(inst, status.code, status.signal));
    } catch (e) {
      for (const p of inst.ports) ports.release(p);
      return startFailed(st, id, "StartFailed", `could not start ${id}: ${e}`);
    }
    instances.set(id, inst);
    options.events.record("instance.starting", `instance ${id} starting on port ${port}`, {
      function: fn.name,
      data: { instance: id, port, dir },
    });
    ilog.info("instance starting", { port, dir });
    const snapshot: Instance = { id, function: fn.name, url: inst.url, socket, state: "starting" };
    for (const l of listeners) l(snapshot);
    probe(inst, st);
  }

  /** Probes /f2s/ready: fast while starting, then every probeInterval while running. */
  async function probe(inst: LocalInstance, st: FunctionState) {
    let delay = 5;
    let failures = 0;
    const startedAt = clock.monotonic();
    while (!closed && !inst.stopping && instances.has(inst.id)) {
      let ok = false;
      try {
        const res = await fetch(inst.url + FIZZLET_PATHS.ready, {
          signal: AbortSignal.timeout(2000),
        });
        ok = res.ok;
        await res.body?.cancel();
      } catch {
        ok = false;
      }
      if (inst.stopping || !instances.has(inst.id)) return;
      if (ok) {
        failures = 0;
        if (inst.state === "starting") {
          st.crashes = 0;
          st.failure = undefined;
          emit(inst, "ready");
          options.events.record("instance.ready", `instance ${inst.id} is ready`, {
            function: inst.function,
            data: { instance: inst.id },
          });
          matchDesired(inst.function);
        }
        delay = probeInterval;
      } else if (inst.state === "ready" && ++failures >= 3) {
        emit(inst, "starting");
        options.events.record("instance.unready", `instance ${inst.id} failed 3 readiness probes`, {
          function: inst.function,
        });
        delay = 10;
      } else if (inst.state === "starting") {
        // A refused connection costs microseconds: probe often during the first seconds,
        // since a held request waits for exactly this moment (cold start).
        delay = clock.monotonic() - startedAt < 3000 ? 5 : Math.min(delay * 1.5, 200);
      }
      await clock.sleep(delay);
    }
  }

  function onExit(inst: LocalInstance, code: number, signal: string | null) {
    instances.delete(inst.id);
    killLeftovers(inst);
    for (const p of inst.ports) ports.release(p);
    const st = functions.get(inst.function);
    let failure: StartFailure | undefined;
    if (!inst.stopping) {
      const message = `instance ${inst.id} exited unexpectedly (code ${code}${
        signal ? `, signal ${signal}` : ""
      })${inst.lastOutput ? `; last output: ${inst.lastOutput.slice(0, 300)}` : ""}`;
      log.warn(message, { function: inst.function, instance: inst.id });
      options.events.record("instance.crashed", message, { function: inst.function });
      if (st && st.generation === inst.generation) {
        st.crashes++;
        st.restartAt = clock.monotonic() + backoff(st.crashes);
        if (inst.state === "starting") {
          failure = st.failure = {
            reason: "ExitedBeforeReady",
            message,
            at: new Date(clock.now()).toISOString(),
          };
        }
      }
    }
    emit(inst, "gone", failure);
    if (st && !st.removed) {
      scheduleMatch(inst.function, st ? Math.max(0, st.restartAt - clock.monotonic()) : 0);
    }
  }

  /**
   * Kills what the instance's fizzlet left running: nothing after a normal stop (it stops its
   * app and scripts), but its app and their children when the fizzlet itself was killed (the
   * app has a session of its own and would keep running, and keep its port, which the pool
   * hands out again). Before the ports go back to the pool and a new instance starts.
   */
  function killLeftovers(inst: LocalInstance) {
    if (!inst.pid) return;
    const live = new Set([...instances.values()].map((i) => i.marker.value));
    try {
      const killed = sweep(inst.pid, inst.since, inst.marker, live, undefined, true);
      if (killed > 0) {
        log.warn("killed what a gone instance left running", {
          function: inst.function,
          instance: inst.id,
          killed,
        });
      }
    } catch (e) {
      log.warn("could not look for what a gone instance left running", {
        function: inst.function,
        instance: inst.id,
        error: e,
      });
    }
  }

  /**
   * Kills what control planes gone before this one started left running: the apps of
   * instances whose fizzlet was killed together with their control plane.
   */
  function sweepLeftByGone() {
    try {
      const killed = sweepOrphans(OWNER_VARIABLE);
      if (killed > 0) {
        log.warn("killed what control planes that are gone left running", { killed });
      }
    } catch (e) {
      log.warn("could not look for what control planes that are gone left running", { error: e });
    }
  }

  /** Stops one instance: no new requests (draining), SIGTERM, grace period, SIGKILL. */
  async function stopInstance(inst: LocalInstance) {
    if (inst.stopping) return inst.exited;
    inst.stopping = true;
    emit(inst, "draining");
    options.events.record("instance.draining", `instance ${inst.id} draining`, {
      function: inst.function,
    });
    signalGroup(inst, "SIGTERM");
    const killed = clock.setTimeout(() => signalGroup(inst, "SIGKILL"), grace + 2000);
    await inst.exited;
    clock.clearTimeout(killed);
  }

  function signalGroup(inst: LocalInstance, signal: Deno.Signal) {
    if (!inst.pid) return;
    try {
      // The negative pid addresses the instance's whole process group (setsid made it one).
      Deno.kill(-inst.pid, signal);
    } catch {
      try {
        Deno.kill(inst.pid, signal);
      } catch {
        // already gone
      }
    }
  }

  const pending = new Map<string, TimerId>();
  function scheduleMatch(name: string, delayMs: number) {
    if (closed || pending.has(name)) return;
    pending.set(
      name,
      clock.setTimeout(() => {
        pending.delete(name);
        matchDesired(name);
      }, delayMs),
    );
  }

  /** Moves the instances of one function toward what is desired. */
  function matchDesired(name: string) {
    if (closed) return;
    const st = functions.get(name);
    const all = [...instances.values()].filter((i) => i.function === name && !i.stopping);
    if (!st || st.removed) {
      for (const inst of all) stopInstance(inst);
      return;
    }
    const plan = planInstances(all, st.desired, st.generation);
    if (plan.start > 0) {
      const wait = st.restartAt - clock.monotonic();
      if (wait > 0) scheduleMatch(name, wait);
      else for (let i = 0; i < plan.start; i++) startInstance(st);
    }
    for (const inst of plan.stop) stopInstance(inst);
  }

  return {
    kind: "local",
    apply(fn, replicas) {
      if (closed) return Promise.resolve();
      const fresh = () => ({
        fn,
        desired: replicas,
        generation: 1,
        crashes: 0,
        restartAt: 0,
        removed: false,
      });
      if (applyDesired(functions, fn, replicas, fresh)) {
        // A new definition starts without the old one's crash backoff.
        Object.assign(functions.get(fn.name)!, { crashes: 0, restartAt: 0 });
      }
      matchDesired(fn.name);
      return Promise.resolve();
    },
    scale: (name, replicas) => scaleDesired(functions, name, replicas, matchDesired),
    async remove(name) {
      const st = functions.get(name);
      if (!st) return;
      st.removed = true;
      functions.delete(name);
      await Promise.all(
        [...instances.values()].filter((i) => i.function === name).map((i) => stopInstance(i)),
      );
    },
    desiredReplicas: (name) => functions.get(name)?.desired,
    failure: (name) => functions.get(name)?.failure,
    check(fn) {
      const found = resolveDir(fn);
      if (!("searched" in found)) return [];
      const path = fn.local.dir ? "target.local.dir" : "target.containerImage";
      return [{ path, message: missingDirMessage(fn, found.searched) }];
    },
    instances(name) {
      return [...instances.values()]
        .filter((i) => name === undefined || i.function === name)
        .map((i) => ({ id: i.id, function: i.function, url: i.url, state: i.state }));
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async close() {
      closed = true;
      for (const t of pending.values()) clock.clearTimeout(t);
      pending.clear();
      await Promise.all([...instances.values()].map((i) => stopInstance(i)));
      if (socketDir) await Deno.remove(socketDir, { recursive: true }).catch(() => {});
    },
  };
}

function backoff(crashes: number): number {
  return crashes <= 0 ? 0 : Math.min(100 * 2 ** (crashes - 1), 10_000);
}

/** Calls `onLine` for every line of a process's output stream. */
async function pipeLines(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void) {
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for await (const chunk of stream) {
      buffer += decoder.decode(chunk, { stream: true });
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (line.trim()) onLine(line);
      }
    }
  } catch {
    // the process went away; its exit is handled elsewhere
  }
  if (buffer.trim()) onLine(buffer);
}

const encoder = new TextEncoder();

/** Passes an instance's log line on, tagged with function and instance. */
function relay(line: string, fn: string, instance: string) {
  let out: string;
  try {
    const parsed = JSON.parse(line);
    out = JSON.stringify(
      typeof parsed === "object" && parsed !== null
        ? { ...parsed, function: fn, instance }
        : { level: "info", component: "instance", function: fn, instance, msg: line },
    );
  } catch {
    out = JSON.stringify({
      time: new Date().toISOString(),
      level: "info",
      component: "instance",
      function: fn,
      instance,
      msg: line,
    });
  }
  try {
    Deno.stderr.writeSync(encoder.encode(out + "\n"));
  } catch {
    // stderr closed
  }
}
