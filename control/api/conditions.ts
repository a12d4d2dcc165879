/**
 * A function's `Ready` condition, shaped like Kubernetes' so `f2s fn get`, the UI and
 * kubectl users read the same thing: True when an instance serves, else False with the
 * reason (the last start failure first, since that is what a user must fix).
 */

import type { StartFailure } from "../runtime/runtime.ts";

export interface Condition {
  type: "Ready";
  status: "True" | "False";
  reason: string;
  message: string;
  lastTransitionTime?: string;
}

export function readyCondition(
  ready: number,
  desired: number,
  failure: StartFailure | undefined,
): Condition {
  if (ready > 0) {
    return { type: "Ready", status: "True", reason: "InstancesReady", message: `${ready} ready` };
  }
  if (failure) {
    return {
      type: "Ready",
      status: "False",
      reason: failure.reason,
      message: failure.message,
      lastTransitionTime: failure.at,
    };
  }
  return desired === 0
    ? {
      type: "Ready",
      status: "False",
      reason: "ScaledToZero",
      message: "no instance; the next request starts one",
    }
    : { type: "Ready", status: "False", reason: "Starting", message: "instances are starting" };
}
