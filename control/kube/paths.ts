/**
 * API paths of the resources F2S reads and writes on Kubernetes, in one place.
 */

import { API_GROUP } from "../../common/function.ts";
import { resourcePath } from "./client.ts";

export const FUNCTION_VERSION = "v1alpha1";

/** Keeps a deleted Function until the leader has removed its Deployment and Service. */
export const FINALIZER = "f2s.opensight.ch/cleanup";

export const paths = {
  functions: (namespace: string, name?: string, subresource?: string) =>
    resourcePath({
      group: API_GROUP,
      version: FUNCTION_VERSION,
      plural: "functions",
      namespace,
      name,
      subresource,
    }),
  deployments: (namespace: string, name?: string, subresource?: string) =>
    resourcePath({
      group: "apps",
      version: "v1",
      plural: "deployments",
      namespace,
      name,
      subresource,
    }),
  services: (namespace: string, name?: string) =>
    resourcePath({ version: "v1", plural: "services", namespace, name }),
  endpointSlices: (namespace: string) =>
    resourcePath({ group: "discovery.k8s.io", version: "v1", plural: "endpointslices", namespace }),
  leases: (namespace: string, name?: string) =>
    resourcePath({
      group: "coordination.k8s.io",
      version: "v1",
      plural: "leases",
      namespace,
      name,
    }),
};

/** An annotation name part from any name (a replica's identity, a function): at most 63 of
 * [A-Za-z0-9._-]; different names never share a key. */
export function annotationKey(identity: string): string {
  let key = identity.replace(/[^A-Za-z0-9._-]/g, "-").replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, "");
  if (key.length > 63 || key !== identity) {
    // Different identities must not share a key: add a hash of the original.
    let h = 0;
    for (const ch of identity) h = (Math.imul(h, 31) + ch.codePointAt(0)!) >>> 0;
    key = `${key.slice(0, 54)}-${h.toString(16).padStart(8, "0")}`.replace(/^-/, "x");
  }
  return key || "replica";
}
