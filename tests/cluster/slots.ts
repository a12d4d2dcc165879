/**
 * Cluster slots: each running test cluster owns one numbered slot, which gives it its work
 * folder (<root>/slot-N), its loopback ports and its network names (net.ts). A slot whose
 * owner process is gone is stale: whatever it left (processes from its pid file, network
 * namespaces, links, files) is removed before the slot is used again, or by `cluster.sh down`.
 */

import { clusterNet, slotsWithNet, sweepClusterNet } from "./net.ts";
import { isAlive, processStart, type ProcRecord, readPidFile, stopProcess } from "./procs.ts";

export const MAX_SLOTS = 50;
const PORT_BASE = 24_000;
/** A slot folder without owner.json is taken to be starting for this long. */
const CLAIM_GRACE_MS = 60_000;

export function defaultRoot(): string {
  return Deno.env.get("F2S_CLUSTER_ROOT") ?? "/tmp/f2s-cluster";
}

export interface SlotPorts {
  etcd: number;
  etcdPeer: number;
  apiserver: number;
  controllerManager: number;
  scheduler: number;
}

/** Loopback ports of slot `slot`: below the ephemeral range, ten per slot. */
export function slotPorts(slot: number): SlotPorts {
  const base = PORT_BASE + slot * 10;
  return {
    etcd: base,
    etcdPeer: base + 1,
    apiserver: base + 2,
    controllerManager: base + 3,
    scheduler: base + 4,
  };
}

export interface Owner extends ProcRecord {
  /** Started by `cluster.sh up`: lives until `cluster.sh down`, owned by its API server. */
  persistent: boolean;
}

export const slotDir = (root: string, slot: number) => `${root}/slot-${slot}`;

export function readOwner(dir: string): Owner | undefined {
  try {
    return JSON.parse(Deno.readTextFileSync(`${dir}/owner.json`));
  } catch {
    return undefined;
  }
}

export function writeOwner(dir: string, owner: Owner): void {
  Deno.writeTextFileSync(`${dir}/owner.json.tmp`, JSON.stringify(owner));
  Deno.renameSync(`${dir}/owner.json.tmp`, `${dir}/owner.json`);
}

/** Whether the slot folder `dir` belongs to a live cluster (or one still starting). */
export function slotAlive(dir: string): boolean {
  const owner = readOwner(dir);
  if (owner) return isAlive(owner);
  try {
    const age = Date.now() - (Deno.statSync(dir).mtime?.getTime() ?? 0);
    return age < CLAIM_GRACE_MS;
  } catch {
    return false;
  }
}

function portsFree(ports: SlotPorts): boolean {
  for (const port of Object.values(ports)) {
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
    } catch {
      return false;
    }
  }
  return true;
}

/** The order components stop in: the kubelet (it stops the pods) first, etcd last. */
const STOP_ORDER = [
  "kubelet",
  "kube-controller-manager",
  "kube-scheduler",
  "kube-apiserver",
  "etcd",
];

/**
 * Stops everything slot `slot` started (as recorded in its pid file), removes its network
 * namespaces, links and bridge, and deletes its folder. Works for a live cluster and for
 * the remains of a crashed one alike.
 */
export async function teardownSlot(root: string, slot: number): Promise<void> {
  const dir = slotDir(root, slot);
  const records = readPidFile(`${dir}/pids`).filter(isAlive);
  const rank = (r: ProcRecord) => {
    const i = STOP_ORDER.indexOf(r.name);
    return i < 0 ? STOP_ORDER.length : i;
  };
  // The kubelet gets time to stop its pods gracefully; the rest stop in order.
  for (const name of STOP_ORDER) {
    const group = records.filter((r) => r.name === name);
    await Promise.all(group.map((r) => stopProcess(r, name === "kubelet" ? 20_000 : 10_000)));
  }
  await Promise.all(
    records.filter((r) => rank(r) === STOP_ORDER.length).map((r) => stopProcess(r, 2_000)),
  );
  await sweepClusterNet(clusterNet(slot));
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

/**
 * Removes stale slots under `root`, and network leftovers of slots that have no folder
 * at all (a run that died after deleting its folder, or a deleted root).
 */
export async function cleanupStale(root: string): Promise<number[]> {
  const cleaned: number[] = [];
  const withNet = await slotsWithNet();
  for (let slot = 0; slot < MAX_SLOTS; slot++) {
    const dir = slotDir(root, slot);
    let exists = true;
    try {
      Deno.statSync(dir);
    } catch {
      exists = false;
    }
    if (exists && slotAlive(dir)) continue;
    if (exists) {
      await teardownSlot(root, slot);
      cleaned.push(slot);
    } else if (withNet.has(slot)) {
      await sweepClusterNet(clusterNet(slot));
    }
  }
  return cleaned;
}

/**
 * Claims a slot (the given one, or the first free) for the current process or, with
 * `persistent`, for a process recorded later with `writeOwner`. Stale slots are cleaned
 * on the way.
 */
export async function claimSlot(
  root: string,
  wanted?: number,
): Promise<{ slot: number; dir: string; ports: SlotPorts }> {
  await Deno.mkdir(root, { recursive: true });
  const candidates = wanted === undefined ? [...Array(MAX_SLOTS).keys()] : [wanted];
  for (const slot of candidates) {
    const dir = slotDir(root, slot);
    try {
      Deno.mkdirSync(dir);
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
      if (slotAlive(dir)) continue;
      await teardownSlot(root, slot);
      try {
        Deno.mkdirSync(dir);
      } catch {
        continue; // Another run claimed it meanwhile.
      }
    }
    writeOwner(dir, {
      pid: Deno.pid,
      start: processStart(Deno.pid) ?? "0",
      name: "owner",
      persistent: false,
    });
    const ports = slotPorts(slot);
    if (!portsFree(ports)) {
      await Deno.remove(dir, { recursive: true });
      continue;
    }
    return { slot, dir, ports };
  }
  throw new Error(
    wanted === undefined
      ? `no free test cluster slot under ${root} (${MAX_SLOTS} in use or their ports busy)`
      : `test cluster slot ${wanted} under ${root} is in use or its ports are busy`,
  );
}

/** Live persistent clusters (started by `cluster.sh up`) under `root`. */
export function persistentSlots(root: string): number[] {
  const slots: number[] = [];
  for (let slot = 0; slot < MAX_SLOTS; slot++) {
    const owner = readOwner(slotDir(root, slot));
    if (owner?.persistent && isAlive(owner)) slots.push(slot);
  }
  return slots;
}
