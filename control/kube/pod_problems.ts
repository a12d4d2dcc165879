/**
 * Why a function's pods do not run, from their status as the kubelet reports it: a
 * container waiting for a reason that will not fix itself (a wrong image, a crashing app, a
 * missing Secret) or a pod the scheduler cannot place. The operator makes it the Function's
 * Ready=False reason, so a wrong image does not show as "Starting" for ever.
 */

import type { KubeObject } from "./client.ts";

/** Waiting reasons that mean the container will not start without a change. */
const FAILING = new Set([
  "ErrImagePull",
  "ImagePullBackOff",
  "InvalidImageName",
  "ErrImageNeverPull",
  "CrashLoopBackOff",
  "CreateContainerConfigError",
  "CreateContainerError",
  "RunContainerError",
]);

export interface PodProblem {
  reason: string;
  message: string;
  /** The stuck pod's name. */
  pod?: string;
}

/** The first problem among `pods` (newest pod first), or undefined when none is stuck. */
export function podProblem(pods: KubeObject[]): PodProblem | undefined {
  const newestFirst = [...pods].sort((a, b) =>
    String(b.metadata?.creationTimestamp ?? "").localeCompare(
      String(a.metadata?.creationTimestamp ?? ""),
    )
  );
  for (const pod of newestFirst) {
    if (pod.metadata?.deletionTimestamp) continue;
    const name = pod.metadata?.name;
    for (const c of pod.status?.containerStatuses ?? []) {
      const waiting = c.state?.waiting;
      if (waiting && FAILING.has(waiting.reason)) {
        const last = c.lastState?.terminated;
        const exit = waiting.reason === "CrashLoopBackOff" && last
          ? ` (exit code ${last.exitCode}${last.reason ? `, ${last.reason}` : ""}, ` +
            `${c.restartCount ?? 0} restarts)`
          : "";
        return {
          reason: waiting.reason,
          pod: name,
          message: `pod ${name}: container ${c.name}: ${waiting.reason}${exit}` +
            (waiting.message ? `: ${waiting.message}` : ""),
        };
      }
    }
    const scheduled = (pod.status?.conditions ?? []).find((c: KubeObject) =>
      c.type === "PodScheduled"
    );
    if (scheduled?.status === "False" && scheduled.reason === "Unschedulable") {
      return {
        reason: "Unschedulable",
        pod: name,
        message: `pod ${name}: ${scheduled.message ?? ""}`,
      };
    }
  }
  return undefined;
}
