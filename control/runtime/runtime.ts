/**
 * The runtime interface: how the control plane makes function instances exist and learns
 * about them. `f2s dev` implements it with local processes (local.ts), `f2s serve` with
 * Deployments and EndpointSlices (kube.ts), tests and the bench with in-process servers
 * (memory.ts). The dispatcher, the API and the autoscaler depend only on
 * this interface, so the same logic runs in both places and in tests.
 */

import type { FunctionDef } from "../../common/function.ts";

import type { Instance, StartFailure } from "../../dispatcher/needs.ts";

// The instance types are the dispatcher's (it routes to them); re-exported for the runtimes.
export type { Instance, InstanceState, StartFailure } from "../../dispatcher/needs.ts";

export type InstanceListener = (instance: Instance) => void;

export interface Runtime {
  readonly kind: "local" | "kubernetes" | "memory";
  /**
   * Makes `fn` exist with `replicas` instances; called again with a changed definition it
   * replaces the instances (new ones first, old ones drained).
   */
  apply(fn: FunctionDef, replicas: number): Promise<void>;
  /** Changes the number of instances of an applied function (scale-down drains first). */
  scale(name: string, replicas: number): Promise<void>;
  /** Removes every instance of the function (drained first). */
  remove(name: string): Promise<void>;
  /** The replica count last asked for, or undefined for an unknown function. */
  desiredReplicas(name: string): number | undefined;
  /** The last start failure of a function with no ready instance (undefined when fine). */
  failure?(name: string): StartFailure | undefined;
  /**
   * Problems that would keep `fn` from ever starting here, found before it is stored (e.g.
   * `f2s dev` has no folder for its image); an empty list when it can start.
   */
  check?(fn: FunctionDef): { path: string; message: string }[];
  /** Current instances, of one function or of all. */
  instances(name?: string): Instance[];
  /**
   * Calls `listener` on every change of an instance's state. Events are pushed, never
   * polled: this is what keeps the routing table current. Returns the unsubscribe function.
   */
  subscribe(listener: InstanceListener): () => void;
  /** Stops everything the runtime started (drains in-flight work first). */
  close(): Promise<void>;
}
