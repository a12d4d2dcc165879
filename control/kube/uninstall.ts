/**
 * What `f2s cleanup` does before the control plane goes (the Helm chart's pre-delete hook):
 * the control plane is scaled to zero and its leader waited for, because a running leader
 * puts the finalizer straight back on every Function; then the Deployments and Services F2S
 * made are deleted and F2S's finalizer is taken off every Function. Without this, uninstalling
 * removes F2S's RBAC with its pods and the Functions' finalizers keep their namespace in
 * Terminating for ever. The Function resources themselves stay (as the CRD does).
 */

import { realClock } from "../../common/clock.ts";
import type { Logger } from "../../common/log.ts";
import { type KubeClient, KubeError, type KubeObject } from "./client.ts";
import { MANAGED_SELECTOR } from "./manifests.ts";
import { FINALIZER, paths } from "./paths.ts";

export interface CleanupOptions {
  client: KubeClient;
  /** Functions, the Lease and the control plane's Deployment. */
  namespace: string;
  /** The functions' Deployments and Services. */
  containersNamespace: string;
  /** The control plane's Deployment, scaled to zero first ("" leaves it alone). */
  controlPlane: string;
  leaseName: string;
  /** How long the leader may take to let go of the Lease. */
  waitMs: number;
  log: Logger;
  /** Between looks at the Lease. */
  pollMs?: number;
}

export interface CleanupResult {
  /** How long the Lease took to be free. */
  leaderWaitMs: number;
  deleted: string[];
  finalizersRemoved: string[];
}

export class CleanupError extends Error {}

export async function cleanup(o: CleanupOptions): Promise<CleanupResult> {
  const { client, log } = o;
  if (o.controlPlane) {
    const scaled = await client.patch(
      paths.deployments(o.namespace, o.controlPlane, "scale"),
      { spec: { replicas: 0 } },
      "merge",
    ).catch(notFound);
    log.info(scaled ? "control plane scaled to zero" : "no control plane Deployment", {
      deployment: `${o.namespace}/${o.controlPlane}`,
    });
  }
  const started = Date.now();
  await leaderGone(o);
  const leaderWaitMs = Date.now() - started;

  const deleted: string[] = [];
  const selector = { labelSelector: MANAGED_SELECTOR };
  for (
    const [kind, path] of [
      ["Deployment", paths.deployments(o.containersNamespace)],
      ["Service", paths.services(o.containersNamespace)],
    ]
  ) {
    const list = await client.request("GET", path, { query: selector });
    for (const item of list.items ?? []) {
      const name = item.metadata.name;
      await client.delete(`${path}/${name}`, { propagationPolicy: "Background" });
      deleted.push(`${kind} ${o.containersNamespace}/${name}`);
    }
  }

  const finalizersRemoved: string[] = [];
  const functions = await client.get(paths.functions(o.namespace));
  for (const fn of functions.items ?? []) {
    if (await removeFinalizer(client, o.namespace, fn)) finalizersRemoved.push(fn.metadata.name);
  }
  log.info("cleaned up", { leaderWaitMs, deleted, finalizersRemoved });
  return { leaderWaitMs, deleted, finalizersRemoved };
}

/**
 * Resolves once no replica leads: the Lease is missing or released, or it has not been
 * renewed for its duration (timed on this clock, as the election does).
 */
async function leaderGone(o: CleanupOptions): Promise<void> {
  const deadline = Date.now() + o.waitMs;
  let seen = "";
  let seenAt = Date.now();
  while (true) {
    const lease = await o.client.find(paths.leases(o.namespace, o.leaseName));
    const spec = lease?.spec ?? {};
    if (!spec.holderIdentity) return;
    const version = `${spec.holderIdentity} ${spec.renewTime}`;
    if (version !== seen) {
      seen = version;
      seenAt = Date.now();
    }
    const durationMs = (spec.leaseDurationSeconds ?? 15) * 1000;
    if (Date.now() - seenAt >= durationMs) {
      o.log.info("the Lease expired", { holder: spec.holderIdentity });
      return;
    }
    if (Date.now() >= deadline) {
      throw new CleanupError(
        `${spec.holderIdentity} still renews the Lease ${o.namespace}/${o.leaseName} after ` +
          `${o.waitMs} ms; a control plane still runs (outside the Deployment ` +
          `"${o.controlPlane}"?) and would put the finalizers back: stop it and try again`,
      );
    }
    await realClock.sleep(o.pollMs ?? 500);
  }
}

/** Takes F2S's finalizer off `fn`, re-reading it when someone else wrote it meanwhile. */
async function removeFinalizer(
  client: KubeClient,
  namespace: string,
  fn: KubeObject,
): Promise<boolean> {
  const path = paths.functions(namespace, fn.metadata.name);
  let current: KubeObject | undefined = fn;
  for (let attempt = 0; current && attempt < 5; attempt++) {
    const finalizers: string[] = current.metadata.finalizers ?? [];
    if (!finalizers.includes(FINALIZER)) return false;
    try {
      await client.patch(path, {
        metadata: {
          finalizers: finalizers.filter((f) => f !== FINALIZER),
          // Fails rather than dropping a finalizer someone else just added.
          resourceVersion: current.metadata.resourceVersion,
        },
      }, "merge");
      return true;
    } catch (e) {
      if (e instanceof KubeError && e.status === 404) return false;
      if (!(e instanceof KubeError && e.status === 409)) throw e;
      current = await client.find(path);
    }
  }
  if (!current) return false;
  throw new CleanupError(`Function ${namespace}/${fn.metadata.name} kept changing; try again`);
}

function notFound(e: unknown): undefined {
  if (e instanceof KubeError && e.status === 404) return undefined;
  throw e;
}
