/** How a function's instance counts read: "1 of 1 ready", "Starting 0 of 2", "Scaled to zero". */

import { h } from "../dom.js";

/** The state word for ready/desired instances: ready, starting, stopping or idle. */
export function instanceState(ready, desired) {
  if (desired === 0 && ready === 0) return "idle";
  if (ready < desired) return "starting";
  if (ready > desired) return "stopping";
  return "ready";
}

const WORDS = {
  idle: "Scaled to zero",
  starting: "Starting",
  stopping: "Scaling down",
  ready: "Ready",
};

export function instancesBadge(ready, desired) {
  const state = instanceState(ready, desired);
  return h(
    "span",
    { class: `badge ${state}`, "data-state": state },
    state === "idle" ? WORDS.idle : `${WORDS[state]} ${ready} / ${desired}`,
  );
}

/** Reasons of a Ready=False condition that are part of normal life, not a problem. */
const NORMAL = new Set(["ScaledToZero", "Starting"]);

/**
 * The function's start failure from its `Ready` condition ({reason, message}), or
 * undefined when it is fine: the real cause, shown instead of a long wait.
 */
export function startFailure(status) {
  const ready = (status?.conditions ?? []).find((c) => c.type === "Ready");
  if (!ready || ready.status !== "False" || NORMAL.has(ready.reason)) return undefined;
  return { reason: ready.reason, message: ready.message };
}
