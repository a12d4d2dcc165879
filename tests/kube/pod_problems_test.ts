/**
 * The pure parts of F2S's visible state on Kubernetes: which pod status is a failure worth
 * the Function's Ready=False reason, and which platform events become Kubernetes Events.
 * The operator test shows both on the real cluster (`kubectl describe function`).
 */

import { kubeEventFor } from "../../control/kube/kube_events.ts";
import { podProblem } from "../../control/kube/pod_problems.ts";
import { assertEquals } from "../harness/assert.ts";

const pod = (name: string, created: string, status: Record<string, unknown>) => ({
  metadata: { name, creationTimestamp: created },
  status,
});

Deno.test("kube pod problems: stuck containers and unschedulable pods, newest first", () => {
  assertEquals(podProblem([]), undefined);
  // Starting normally: not a problem.
  assertEquals(
    podProblem([pod("a", "2026-01-01T00:00:00Z", {
      containerStatuses: [{
        name: "function",
        state: { waiting: { reason: "ContainerCreating" } },
      }],
    })]),
    undefined,
  );
  const crash = pod("old", "2026-01-01T00:00:00Z", {
    containerStatuses: [{
      name: "function",
      restartCount: 4,
      state: { waiting: { reason: "CrashLoopBackOff", message: "back-off 40s" } },
      lastState: { terminated: { exitCode: 1, reason: "Error" } },
    }],
  });
  assertEquals(podProblem([crash]), {
    reason: "CrashLoopBackOff",
    pod: "old",
    message:
      "pod old: container function: CrashLoopBackOff (exit code 1, Error, 4 restarts): back-off 40s",
  });
  const pull = pod("new", "2026-01-02T00:00:00Z", {
    containerStatuses: [{
      name: "function",
      state: { waiting: { reason: "ImagePullBackOff", message: "no such image" } },
    }],
  });
  assertEquals(podProblem([crash, pull])?.reason, "ImagePullBackOff", "the newest pod first");
  assertEquals(
    podProblem([{ ...pull, metadata: { ...pull.metadata, deletionTimestamp: "x" } }]),
    undefined,
    "a pod going away does not count",
  );
  assertEquals(
    podProblem([pod("p", "2026-01-01T00:00:00Z", {
      conditions: [{
        type: "PodScheduled",
        status: "False",
        reason: "Unschedulable",
        message: "0/1 nodes are available: 1 Insufficient cpu.",
      }],
    })]),
    {
      reason: "Unschedulable",
      pod: "p",
      message: "pod p: 0/1 nodes are available: 1 Insufficient cpu.",
    },
  );
});

Deno.test("kube events: which platform events become Kubernetes Events, and as what", () => {
  const ev = (type: string, data?: Record<string, unknown>) => ({
    time: "",
    type,
    function: "f",
    message: "m",
    data,
  });
  assertEquals(kubeEventFor(ev("scaling.decision", { direction: "down" })), {
    reason: "ScaledDown",
    warning: false,
    anyReplica: true,
  });
  assertEquals(kubeEventFor(ev("scaling.decision", { direction: "up" }))?.reason, "ScaledUp");
  assertEquals(kubeEventFor(ev("function.error"))?.warning, true);
  assertEquals(kubeEventFor(ev("function.applied"))?.anyReplica, undefined, "leader only");
  assertEquals(kubeEventFor(ev("function.status", { status: "False", reason: "Starting" })), {
    reason: "Starting",
    warning: false,
  });
  assertEquals(
    kubeEventFor(ev("function.status", { status: "False", reason: "ImagePullBackOff" })),
    { reason: "ImagePullBackOff", warning: true },
  );
  assertEquals(kubeEventFor(ev("instance.ready")), undefined);
});
