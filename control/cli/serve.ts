/**
 * `f2s serve`: the control plane on Kubernetes. The same platform as `f2s dev` (API,
 * dispatcher, store follower, autoscaler, Kafka), assembled from Kubernetes parts: Function
 * resources as the store, Deployments, Services and EndpointSlices as the runtime, and a
 * Lease that elects the one replica that writes to the cluster. Every replica serves the
 * API and dispatches invocations.
 *
 * In a pod it uses its service account; from a laptop, `--kubeconfig`, `KUBECONFIG` or
 * ~/.kube/config (control/kube/connection.ts).
 */

import {
  helpText,
  intOption,
  type OptionTable,
  parseCommand,
  UsageError,
} from "../../common/cli.ts";
import { parseDuration } from "../../common/duration.ts";
import type { Http1Server } from "../../common/http1_server.ts";
import { createLogger, setLogLevel } from "../../common/log.ts";
import { createAuth } from "../auth/auth.ts";
import { ConfigError, loadConfig } from "../config.ts";
import { createEventLog } from "../events.ts";
import { commandClient, KubeError } from "../kube/client.ts";
import { createLeaderElection, validateTimings } from "../kube/leader.ts";
import { startIgnoredFunctions } from "../kube/ignored.ts";
import { startKubeEvents } from "../kube/kube_events.ts";
import { startLoadExchange } from "../autoscaler/kube_load.ts";
import { createPeerLoads } from "../autoscaler/peers.ts";
import { startOperator } from "../operator.ts";
import { createKubeRuntime } from "../runtime/kube.ts";
import { createKubeStore } from "../store/kube.ts";
import { createMetrics } from "../metrics.ts";
import { listen, untilShutdownSignal } from "../listen.ts";
import { createPlatform } from "../platform.ts";
import { createKubeTicks } from "../async/kube_ticks.ts";
import { createUiHandler } from "../ui.ts";

const DEFAULT_CONFIG = "/etc/f2s/config.yaml";

export const OPTIONS: OptionTable = {
  port: {
    type: "string",
    env: "F2S_PORT",
    default: "8080",
    value: "PORT",
    description: "Port for API, invocations and metrics (0: any free port)",
  },
  host: {
    type: "string",
    env: "F2S_HOST",
    default: "0.0.0.0",
    value: "ADDR",
    description: "Address to listen on",
  },
  config: {
    type: "string",
    env: "F2S_CONFIG",
    value: "FILE",
    description: `config.yaml (seed format); default ${DEFAULT_CONFIG} when it exists`,
  },
  kubeconfig: {
    type: "string",
    env: "KUBECONFIG",
    value: "FILE",
    description: "Kubeconfig file(s), `:`-separated; without: the in-cluster service " +
      "account, else ~/.kube/config",
  },
  context: {
    type: "string",
    env: "F2S_KUBE_CONTEXT",
    value: "NAME",
    description: "Kubeconfig context (default: its current-context)",
  },
  namespace: {
    type: "string",
    env: "F2S_NAMESPACE",
    default: "f2s",
    value: "NS",
    description: "Namespace of the Function resources and the leader Lease",
  },
  "containers-namespace": {
    type: "string",
    env: "F2S_CONTAINERS_NAMESPACE",
    default: "f2s-containers",
    value: "NS",
    description: "Namespace of the functions' Deployments and Services",
  },
  identity: {
    type: "string",
    env: "F2S_IDENTITY",
    value: "NAME",
    description: "This replica's name in the Lease (default: host name and a random suffix)",
  },
  "lease-name": {
    type: "string",
    env: "F2S_LEASE_NAME",
    default: "f2s-leader",
    value: "NAME",
    description: "Name of the coordination.k8s.io Lease that elects the leader",
  },
  "lease-duration": {
    type: "string",
    env: "F2S_LEASE_DURATION",
    default: "15s",
    value: "DURATION",
    description: "How long a leader's lease lasts without renewal",
  },
  "renew-deadline": {
    type: "string",
    env: "F2S_RENEW_DEADLINE",
    default: "10s",
    value: "DURATION",
    description: "A leader that could not renew for this long stops acting",
  },
  "retry-period": {
    type: "string",
    env: "F2S_RETRY_PERIOD",
    default: "2s",
    value: "DURATION",
    description: "How often the leader renews and the others check",
  },
  resync: {
    type: "string",
    env: "F2S_RESYNC",
    default: "5m",
    value: "DURATION",
    description: "Re-list everything and correct what drifted this often (0: never)",
  },
  "public-url": {
    type: "string",
    env: "F2S_PUBLIC_URL",
    value: "URL",
    description: "External base URL for the invoke URL in Function status",
  },
  grace: {
    type: "string",
    env: "F2S_GRACE_MS",
    default: "10000",
    value: "MS",
    description: "Shutdown grace period for in-flight requests",
  },
};

const USAGE = "f2s serve [--config FILE] [--kubeconfig FILE] [--port PORT]";
const DESCRIPTION = "Runs the F2S control plane on Kubernetes: Function resources in --namespace " +
  "become Deployments and Services in --containers-namespace; invocations go to their pods.";

function durationOption(values: Record<string, unknown>, name: string): number {
  const ms = parseDuration(values[name]);
  if (typeof ms === "string") throw new UsageError(`--${name} ${ms}`);
  return ms;
}

export async function main(args: string[]): Promise<number> {
  const { values, help } = parseCommand(args, OPTIONS);
  if (help) {
    console.log(helpText(USAGE, DESCRIPTION, OPTIONS));
    return 0;
  }
  const port = intOption(values, "port", 0, 65535);
  const grace = intOption(values, "grace", 0, 3_600_000);
  const timings = {
    leaseDurationMs: durationOption(values, "lease-duration"),
    renewDeadlineMs: durationOption(values, "renew-deadline"),
    retryPeriodMs: durationOption(values, "retry-period"),
  };
  const badTimings = validateTimings(timings);
  if (badTimings) throw new UsageError(badTimings);
  const resyncMs = durationOption(values, "resync");
  const namespace = values.namespace as string;
  const containersNamespace = values["containers-namespace"] as string;
  const identity = (values.identity as string | undefined) ??
    `${Deno.hostname()}-${crypto.randomUUID().slice(0, 8)}`;
  const log = createLogger("serve", { identity });

  const fail = (message: string) => {
    console.error(`f2s serve: ${message}`);
    return 1;
  };

  let configPath = values.config as string | undefined;
  if (!configPath) {
    try {
      if (Deno.statSync(DEFAULT_CONFIG).isFile) configPath = DEFAULT_CONFIG;
    } catch {
      // No file mounted: defaults plus environment variables.
    }
  }
  let config;
  try {
    config = await loadConfig(configPath);
  } catch (e) {
    if (e instanceof ConfigError) return fail(e.message);
    throw e;
  }
  if (config.debug) setLogLevel("debug");

  const selected = commandClient({
    kubeconfig: values.kubeconfig as string | undefined,
    context: values.context as string | undefined,
  });
  if (typeof selected === "string") return fail(selected);
  const { connection, client } = selected;
  const events = createEventLog();
  const metrics = createMetrics();

  let leaderCallbacks = { started: () => {}, stopped: () => {} };
  const leader = createLeaderElection({
    client,
    namespace,
    name: values["lease-name"] as string,
    identity,
    ...timings,
    onStartedLeading: () => leaderCallbacks.started(),
    onStoppedLeading: () => leaderCallbacks.stopped(),
  });
  const isLeader = leader.isLeader;
  // The other replicas' load, for the local scaling source; a report older than the lease
  // duration is from a replica that is gone or cut off from the API.
  const peers = createPeerLoads({ staleMs: timings.leaseDurationMs });

  let store, runtime;
  try {
    store = await createKubeStore({ client, namespace, events, resyncMs });
    runtime = await createKubeRuntime({
      client,
      namespace: containersNamespace,
      events,
      isLeader,
      resyncMs,
    });
  } catch (e) {
    store?.close();
    client.close();
    return fail(explainStartError(e, connection.server, namespace, containersNamespace));
  }
  const kubeEvents = startKubeEvents({
    client,
    namespace,
    events,
    resource: (name) => store.resource(name),
    identity,
    isLeader,
  });
  const auth = await createAuth(config.auth);
  const platform = createPlatform({
    config,
    store,
    runtime,
    events,
    metrics,
    auth,
    ui: createUiHandler(),
    isLeader,
    peers,
    // Which schedule ticks were fired: on a Lease beside the leader's, written by CAS.
    scheduleTicks: createKubeTicks({
      client,
      namespace,
      name: `${values["lease-name"]}-schedules`,
      log: createLogger("schedules", { identity }),
    }),
    // Per replica (the pod name in a cluster): replicas on one machine must not share it.
    asyncPath: `${Deno.env.get("TMPDIR") ?? "/tmp"}/f2s-async-${
      identity.replace(/[^A-Za-z0-9._-]/g, "_")
    }/async.db`,
    ready: () => {
      if (leader.apiReachable()) return { ready: true };
      const silentFor = Math.round((Date.now() - leader.lastContact()) / 1000);
      return {
        ready: false,
        reason: `no answer from the Kubernetes API at ${connection.server} for ${silentFor}s ` +
          `(renew deadline ${timings.renewDeadlineMs / 1000}s)`,
      };
    },
  });
  const operator = startOperator({
    client,
    namespace,
    store,
    runtime,
    events,
    isLeader,
    publicUrl: (values["public-url"] as string | undefined) ?? "",
  });
  const ignored = startIgnoredFunctions({ client, namespace, isLeader });
  leaderCallbacks = {
    started: () => {
      ignored.sweep();
      events.record("leader.elected", `${identity} is the leader`, { data: { identity } });
      operator.onStartedLeading();
    },
    stopped: () => events.record("leader.lost", `${identity} is no longer the leader`),
  };
  let server: Http1Server;
  try {
    server = listen(values.host as string, port, platform.handler, log, config.maxConnections);
  } catch (e) {
    ignored.stop();
    operator.stop();
    await platform.shutdown(0);
    client.close();
    return fail(`cannot listen on ${values.host}:${port}: ${(e as Error).message}`);
  }
  const load = startLoadExchange({
    client,
    namespace,
    name: `${values["lease-name"]}-load`,
    identity,
    tracker: platform.tracker,
    peers,
    isLeader,
    staleMs: timings.leaseDurationMs,
  });
  // Compete for leadership only once this replica can serve.
  try {
    await load.start();
    await leader.start();
  } catch (e) {
    await load.stop();
    ignored.stop();
    operator.stop();
    await server.shutdown();
    await platform.shutdown(0);
    client.close();
    return fail(explainStartError(e, connection.server, namespace, containersNamespace));
  }
  const bound = server.addr.port;
  log.info("listening", {
    port: bound,
    host: values.host,
    runtime: "kubernetes",
    api: connection.server,
    credentials: connection.source,
    namespace,
    containersNamespace,
  });
  console.log(
    `F2S serve listening on http://${values.host}:${bound} (cluster ${connection.server})`,
  );

  const signal = await untilShutdownSignal();
  log.info("shutting down", { signal, inflight: platform.dispatcher.inflight() });
  // Stop accepting; hand leadership over at once; then let in-flight requests finish.
  const closed = server.shutdown();
  ignored.stop();
  operator.stop();
  await leader.stop();
  await platform.shutdown(grace);
  await load.stop();
  kubeEvents.stop();
  await closed;
  client.close();
  log.info("stopped");
  return 0;
}

/** Start-up failures in words an operator can act on. */
function explainStartError(
  e: unknown,
  server: string,
  namespace: string,
  containersNamespace: string,
): string {
  if (e instanceof KubeError) {
    if (e.status === 404 && e.path.includes("/functions")) {
      return "the Function resource is not installed in the cluster " +
        "(kubectl apply -f crds/functions.f2s.opensight.ch.yaml, or install the Helm chart)";
    }
    if (e.status === 401) return `the Kubernetes API at ${server} did not accept the credentials`;
    if (e.status === 403) {
      return `not allowed: ${e.serverMessage} (F2S needs the RBAC rules of the Helm chart in ` +
        `namespaces ${namespace} and ${containersNamespace})`;
    }
    return `Kubernetes API error: ${e.message}`;
  }
  // The client's and the credential plugins' errors say where and as whom F2S connected.
  return (e as Error).message;
}
