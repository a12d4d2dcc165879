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
