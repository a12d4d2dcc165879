/**
 * Functions created in a namespace F2S does not watch would otherwise sit there without a
 * word: the CRD accepts them anywhere. The leader lists them (every `everyMs`, and when it
 * becomes the leader) and gives each a status saying it is ignored and where to put it.
 *
 * This needs a ClusterRole that may list Functions and patch their status in every
 * namespace (the chart's `f2s-ignored-functions`); without it F2S logs that once and does
 * nothing more. A list rather than a watch: the informer keys objects by name within one
 * namespace, and a minute-scale answer is enough for a misplaced resource.
 */

import { type Clock, realClock } from "../../common/clock.ts";
import { API_GROUP } from "../../common/function.ts";
import { createLogger, type Logger } from "../../common/log.ts";
import { type KubeClient, KubeError, type KubeObject } from "./client.ts";
import { FUNCTION_VERSION } from "./paths.ts";

export const IGNORED_REASON = "NamespaceNotWatched";

export interface IgnoredFunctions {
  /** One pass now (leader only). */
  sweep(): Promise<void>;
  stop(): void;
}

export function ignoredMessage(namespace: string): string {
  return `F2S watches Functions in namespace ${namespace} only; this one is ignored ` +
    `(create it in ${namespace})`;
}

export function startIgnoredFunctions(options: {
  client: KubeClient;
  /** The namespace F2S watches. */
  namespace: string;
  isLeader: () => boolean;
  everyMs?: number;
  /** Default: the real one. */
  clock?: Clock;
  log?: Logger;
}): IgnoredFunctions {
  const { client, namespace } = options;
  const log = options.log ?? createLogger("ignored-functions", { namespace });
  const message = ignoredMessage(namespace);
  let allowed = true;
  let running: Promise<void> | undefined;

  async function mark(f: KubeObject) {
    const ns = f.metadata.namespace, name = f.metadata.name;
    const generation = f.metadata.generation;
    const ready = (f.status?.conditions ?? []).find((c: KubeObject) => c.type === "Ready");
    if (
      ready?.reason === IGNORED_REASON && ready.message === message &&
      f.status?.observedGeneration === generation
    ) return;
    await client.request(
      "PATCH",
      `/apis/${API_GROUP}/${FUNCTION_VERSION}/namespaces/${encodeURIComponent(ns)}/functions/${
        encodeURIComponent(name)
      }/status`,
      {
        body: {
          status: {
            observedGeneration: generation,
            readyReplicas: 0,
            replicas: 0,
            conditions: [{
              type: "Ready",
              status: "False",
              reason: IGNORED_REASON,
              message,
              lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
              observedGeneration: generation,
            }],
          },
        },
        contentType: "application/merge-patch+json",
        timeoutMs: 10_000,
      },
    );
    log.info("marked a Function outside the watched namespace as ignored", {
      function: name,
      functionNamespace: ns,
    });
  }

  async function pass() {
    if (!allowed || !options.isLeader()) return;
    let list: KubeObject;
    try {
      list = await client.request("GET", `/apis/${API_GROUP}/${FUNCTION_VERSION}/functions`, {
        query: { fieldSelector: `metadata.namespace!=${namespace}` },
        timeoutMs: 10_000,
      });
    } catch (e) {
      if (e instanceof KubeError && e.status === 403) {
        allowed = false;
        log.info(
          "may not list Functions in other namespaces; ones created there get no status",
          { error: e },
        );
      } else log.warn("could not list Functions in other namespaces", { error: e });
      return;
    }
    for (const f of list.items ?? []) {
      if (f.metadata?.deletionTimestamp) continue;
      await mark(f).catch((e) =>
        log.warn("could not mark an ignored Function", {
          function: f.metadata?.name,
          functionNamespace: f.metadata?.namespace,
          error: e,
        })
      );
    }
  }

  const sweep = () => running ?? (running = pass().finally(() => running = undefined));
  const clock = options.clock ?? realClock;
  const timer = clock.setInterval(sweep, options.everyMs ?? 15_000);
  return { sweep, stop: () => clock.clearInterval(timer) };
}
