/**
 * Instances from EndpointSlices: every address of a function's Service is one instance at
 * http://IP:PORT, ready when the slice says so, draining while its pod terminates. The
 * dispatcher routes only to ready ones, so this is what makes a new pod take traffic.
 */

import { FIZZLET_PORT } from "../../common/protocol.ts";
import type { Instance, InstanceState } from "./runtime.ts";
import type { KubeObject } from "../kube/client.ts";

export const SERVICE_NAME_LABEL = "kubernetes.io/service-name";

/** The function (= Service) an EndpointSlice belongs to. */
export function sliceFunction(slice: KubeObject | undefined): string | undefined {
  return slice?.metadata?.labels?.[SERVICE_NAME_LABEL];
}

/** The instances of function `name` that `slices` describe, by instance id. */
export function instancesFromSlices(name: string, slices: KubeObject[]): Map<string, Instance> {
  const out = new Map<string, Instance>();
  const rank: Record<InstanceState, number> = { ready: 3, starting: 2, draining: 1, gone: 0 };
  for (const slice of slices) {
    if (sliceFunction(slice) !== name) continue;
    if (slice.addressType && slice.addressType !== "IPv4" && slice.addressType !== "IPv6") continue;
    const ports: KubeObject[] = slice.ports ?? [];
    const port = ports.find((p) => p.name === "http")?.port ?? ports[0]?.port ?? FIZZLET_PORT;
    for (const ep of slice.endpoints ?? []) {
      const address: string | undefined = ep.addresses?.[0];
      if (!address) continue;
      const c = ep.conditions ?? {};
      // An unset `ready` means ready (EndpointSlice API); terminating wins over both.
      const state: InstanceState = c.terminating === true
        ? "draining"
        : c.ready === false
        ? "starting"
        : "ready";
      const host = address.includes(":") ? `[${address}]` : address;
      const instance: Instance = {
        id: ep.targetRef?.name ?? address,
        function: name,
        url: `http://${host}:${port}`,
        state,
      };
      // While a slice is rewritten, one pod may show up in two slices: keep the best view.
      const seen = out.get(instance.id);
      if (!seen || rank[state] > rank[seen.state]) out.set(instance.id, instance);
    }
  }
  return out;
}
