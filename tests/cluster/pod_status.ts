/**
 * The pod status the process kubelet reports: phase, conditions, IPs and the container's
 * status, built from what the kubelet knows about the pod's process. Pure, so the shape is
 * the same whatever produced the state.
 */

import type { KubeObject } from "./kube.ts";

export interface Terminated {
  exitCode: number;
  signal?: number;
  reason: string;
  message?: string;
  startedAt?: string;
  finishedAt: string;
}

export interface ContainerState {
  name: string;
  image: string;
  running?: { startedAt: string };
  waiting?: { reason: string; message?: string };
  terminated?: Terminated;
  lastTerminated?: Terminated;
  ready: boolean;
  restartCount: number;
  /** Process id of the container's fizzlet, shown as its container id. */
  pid?: number;
}

export interface PodState {
  phase: "Pending" | "Running" | "Succeeded" | "Failed";
  podIp?: string;
  hostIp: string;
  startTime: string;
  /** The pod's network namespace is set up (PodReadyToStartContainers). */
  netReady: boolean;
  container: ContainerState;
  /** Pod-level reason and message, e.g. for a pod the kubelet cannot run. */
  reason?: string;
  message?: string;
}

function containerStatus(c: ContainerState): KubeObject {
  const state: KubeObject = {};
  if (c.running) state.running = c.running;
  else if (c.terminated) state.terminated = c.terminated;
  else state.waiting = c.waiting ?? { reason: "ContainerCreating" };
  const status: KubeObject = {
    name: c.name,
    image: c.image,
    imageID: "",
    ready: c.ready,
    started: !!c.running,
    restartCount: c.restartCount,
    state,
    lastState: c.lastTerminated ? { terminated: c.lastTerminated } : {},
  };
  if (c.pid) status.containerID = `f2s-process://${c.pid}`;
  return status;
}

/**
 * The strategic-merge patch for `pods/status`: conditions keep their lastTransitionTime
 * from `pod` while their status stays the same.
 */
export function podStatusPatch(pod: KubeObject, state: PodState, now: string): KubeObject {
  const previous = new Map<string, KubeObject>(
    (pod.status?.conditions ?? []).map((c: KubeObject) => [c.type, c]),
  );
  const terminal = state.phase === "Succeeded" || state.phase === "Failed";
  const ready = state.container.ready && !terminal;
  const condition = (type: string, ok: boolean, reason?: string) => {
    const status = ok ? "True" : "False";
    const before = previous.get(type);
    const c: KubeObject = {
      type,
      status,
      lastProbeTime: null,
      lastTransitionTime: before?.status === status ? before.lastTransitionTime : now,
    };
    if (!ok && reason) c.reason = reason;
    return c;
  };
  const notReadyReason = terminal ? "PodCompleted" : "ContainersNotReady";
  const status: KubeObject = {
    phase: state.phase,
    hostIP: state.hostIp,
    hostIPs: [{ ip: state.hostIp }],
    startTime: state.startTime,
    conditions: [
      condition("PodReadyToStartContainers", state.netReady),
      condition("Initialized", true),
      condition("ContainersReady", ready, notReadyReason),
      condition("Ready", ready, notReadyReason),
    ],
    containerStatuses: [containerStatus(state.container)],
  };
  if (state.podIp) {
    status.podIP = state.podIp;
    status.podIPs = [{ ip: state.podIp }];
  }
  if (state.reason) status.reason = state.reason;
  if (state.message) status.message = state.message;
  return { status };
}

/** Node conditions of a healthy node, with the given heartbeat time. */
export function nodeConditions(now: string, since: string): KubeObject[] {
  const c = (type: string, status: string, reason: string, message: string) => ({
    type,
    status,
    reason,
    message,
    lastHeartbeatTime: now,
    lastTransitionTime: since,
  });
  return [
    c("MemoryPressure", "False", "KubeletHasSufficientMemory", "process kubelet"),
    c("DiskPressure", "False", "KubeletHasNoDiskPressure", "process kubelet"),
    c("PIDPressure", "False", "KubeletHasSufficientPID", "process kubelet"),
    c("Ready", "True", "KubeletReady", "process kubelet is posting ready status"),
  ];
}
