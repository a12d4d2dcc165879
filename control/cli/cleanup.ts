/**
 * `f2s cleanup`: stops the control plane and removes what it made and its finalizers, so
 * that uninstalling F2S (the Helm chart runs this as its pre-delete hook, while F2S's RBAC
 * still exists) leaves no namespace stuck in Terminating. See control/kube/uninstall.ts.
 */

import { helpText, type OptionTable, parseCommand, UsageError } from "../../common/cli.ts";
import { parseDuration } from "../../common/duration.ts";
import { createLogger } from "../../common/log.ts";
import { commandClient, KubeError } from "../kube/client.ts";
import { cleanup, CleanupError } from "../kube/uninstall.ts";
import { OPTIONS as SERVE } from "./serve.ts";

// Reaching the cluster and finding F2S's objects: exactly as `f2s serve` does.
const OPTIONS: OptionTable = {
  kubeconfig: SERVE.kubeconfig,
  context: SERVE.context,
  namespace: SERVE.namespace,
  "containers-namespace": SERVE["containers-namespace"],
  "control-plane": {
    type: "string",
    default: "f2s",
    value: "NAME",
    description: 'The control plane\'s Deployment, scaled to zero first ("": leave it)',
  },
  "lease-name": SERVE["lease-name"],
  wait: {
    type: "string",
    default: "90s",
    value: "DURATION",
    description: "How long the leader may take to let go of the Lease",
  },
};

const USAGE = "f2s cleanup [--namespace NS] [--containers-namespace NS] [--kubeconfig FILE]";
const DESCRIPTION = "Before uninstalling F2S: scales the control plane to zero, waits until no " +
  "replica leads, deletes the functions' Deployments and Services and removes F2S's finalizer " +
  "from every Function (the Function resources stay).";

export async function main(args: string[]): Promise<number> {
  const { values, help } = parseCommand(args, OPTIONS);
  if (help) {
    console.log(helpText(USAGE, DESCRIPTION, OPTIONS));
    return 0;
  }
  const waitMs = parseDuration(values.wait);
  if (typeof waitMs === "string") throw new UsageError(`--wait ${waitMs}`);
  const fail = (message: string) => {
    console.error(`f2s cleanup: ${message}`);
    return 1;
  };
  const selected = commandClient({
    kubeconfig: values.kubeconfig as string | undefined,
    context: values.context as string | undefined,
  });
  if (typeof selected === "string") return fail(selected);
  const { connection, client } = selected;
  try {
    const result = await cleanup({
      client,
      namespace: values.namespace as string,
      containersNamespace: values["containers-namespace"] as string,
      controlPlane: values["control-plane"] as string,
      leaseName: values["lease-name"] as string,
      waitMs,
      log: createLogger("cleanup"),
    });
    console.log(
      `f2s cleanup: ${result.deleted.length} objects deleted, finalizer removed from ` +
        `${result.finalizersRemoved.length} Functions`,
    );
    return 0;
  } catch (e) {
    if (e instanceof CleanupError || e instanceof KubeError) return fail(e.message);
    return fail(`cannot reach the Kubernetes API at ${connection.server}: ${(e as Error).message}`);
  } finally {
    client.close();
  }
}
