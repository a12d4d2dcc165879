/**
 * `cluster.sh`'s commands: start a persistent test cluster, print its environment, show
 * what runs, and tear it down together with the remains of crashed runs.
 *
 *   deno run -A tests/cluster/cli.ts up [--slot N] [--images IMAGE=DIR,...]
 *   deno run -A tests/cluster/cli.ts env|kubeconfig|status|down [--slot N]
 */

import { parseArgs } from "node:util";
import { parseImageMap } from "./images.ts";
import { slotKubeconfig, startCluster, stopSlot } from "./harness.ts";
import { clusterNet, leftovers } from "./net.ts";
import { isAlive, readPidFile } from "./procs.ts";
import { cleanupStale, defaultRoot, persistentSlots, slotPorts } from "./slots.ts";
import { binDir } from "./binaries.ts";

const USAGE = `Usage: bash tests/cluster/cluster.sh <command> [--slot N]

Commands:
  up          start a cluster that runs until "down"; prints its KUBECONFIG
  env         print export lines (KUBECONFIG, PATH with kubectl and helm) for a running cluster
  kubeconfig  print the admin kubeconfig of a running cluster
  status      list running clusters and their processes
  down        stop running clusters (or --slot N) and remove leftovers of crashed runs

Options:
  --slot N             the cluster slot (default: up takes the first free one)
  --images IMG=DIR,..  extra image → function folder mappings for the kubelet (up)
`;

function pickSlot(root: string, slot: string | undefined): number {
  if (slot !== undefined) return Number(slot);
  const running = persistentSlots(root);
  if (running.length === 0) throw new Error("no test cluster is running (start one with up)");
  if (running.length > 1) {
    throw new Error(`several clusters run (slots ${running.join(", ")}): pick one with --slot`);
  }
  return running[0];
}

async function main(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { slot: { type: "string" }, images: { type: "string" }, help: { type: "boolean" } },
    allowPositionals: true,
  });
  const command = positionals[0];
  if (values.help || !command) {
    console.log(USAGE);
    return values.help ? 0 : 2;
  }
  const root = defaultRoot();
  switch (command) {
    case "up": {
      const cluster = await startCluster({
        persistent: true,
        slot: values.slot === undefined ? undefined : Number(values.slot),
        images: parseImageMap(values.images ?? ""),
      });
      cluster.client.close();
      console.error(
        `test cluster up in ${(cluster.timings.total / 1000).toFixed(1)}s ` +
          `(slot ${cluster.slot}, ${cluster.server}, pods in ${cluster.podCidr})`,
      );
      console.log(`export KUBECONFIG=${cluster.kubeconfig}`);
      console.log(`export PATH=${cluster.binDir}:$PATH`);
      return 0;
    }
    case "env": {
      const slot = pickSlot(root, values.slot);
      const kubeconfig = slotKubeconfig(slot, root);
      if (!kubeconfig) throw new Error(`no test cluster runs in slot ${slot}`);
      console.log(`export KUBECONFIG=${kubeconfig}`);
      console.log(`export PATH=${await binDir()}:$PATH`);
      return 0;
    }
    case "kubeconfig": {
      const kubeconfig = slotKubeconfig(pickSlot(root, values.slot), root);
      if (!kubeconfig) throw new Error("no test cluster runs in that slot");
      console.log(await Deno.readTextFile(kubeconfig));
      return 0;
    }
    case "status": {
      const slots = persistentSlots(root);
      if (!slots.length) console.log("no persistent test cluster runs");
      for (const slot of slots) {
        const procs = readPidFile(`${root}/slot-${slot}/pids`).filter(isAlive);
        console.log(
          `slot ${slot}: https://127.0.0.1:${slotPorts(slot).apiserver}, ` +
            `pods in ${clusterNet(slot).podCidr}`,
        );
        for (const p of procs) console.log(`  ${String(p.pid).padStart(7)}  ${p.name}`);
      }
      return 0;
    }
    case "down": {
      const slots = values.slot !== undefined ? [Number(values.slot)] : persistentSlots(root);
      for (const slot of slots) {
        await stopSlot(slot, root);
        const left = await leftovers(clusterNet(slot));
        if (left.length) throw new Error(`slot ${slot} left behind: ${left.join(", ")}`);
        console.error(`stopped the test cluster in slot ${slot}`);
      }
      const stale = await cleanupStale(root);
      if (stale.length) {
        console.error(`removed leftovers of crashed runs: slots ${stale.join(", ")}`);
      }
      return 0;
    }
    default:
      console.error(`unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    console.error(`cluster: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
