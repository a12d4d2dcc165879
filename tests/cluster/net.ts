/**
 * Pod networking for the test cluster, done the way a bridge CNI plugin does it with
 * iproute2: one bridge per cluster holding the node's gateway address, and per pod a
 * network namespace joined to the bridge by a veth pair. Every name carries the cluster's
 * prefix, so a sweep by prefix removes whatever a crashed run left behind.
 */

export interface ClusterNet {
  /** Bridge device on the host, e.g. "f2sbr3". */
  bridge: string;
  /** Prefix of every netns ("f2s3-") and host-side veth ("f2s3v") of this cluster. */
  prefix: string;
  /** The node's pod range, e.g. "10.244.3.0/24". */
  podCidr: string;
  /** The bridge's address: the node's IP and the pods' default gateway. */
  gateway: string;
}

export interface PodNet {
  netns: string;
  hostVeth: string;
  ip: string;
}

/** Names and addresses of cluster slot `slot` (0..99). */
export function clusterNet(slot: number): ClusterNet {
  return {
    bridge: `f2sbr${slot}`,
    prefix: `f2s${slot}`,
    podCidr: `10.244.${slot}.0/24`,
    gateway: `10.244.${slot}.1`,
  };
}

/** Runs `ip args…`; throws with the command and ip's message on failure. */
export async function ip(args: string[], allowFailure = false): Promise<string> {
  const out = await new Deno.Command("ip", { args, stdin: "null" }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success && !allowFailure) {
    const err = new TextDecoder().decode(out.stderr).trim();
    throw new Error(`ip ${args.join(" ")}: ${err}`);
  }
  return text;
}

/** Creates the bridge with the gateway address (replacing a leftover of the same name). */
export async function createBridge(net: ClusterNet): Promise<void> {
  await ip(["link", "del", net.bridge], true);
  await ip(["link", "add", net.bridge, "type", "bridge"]);
  await ip(["addr", "add", `${net.gateway}/24`, "dev", net.bridge]);
  await ip(["link", "set", net.bridge, "up"]);
}

/** The netns and host veth names of pod number `n` (a per-node counter). */
export function podNetNames(net: ClusterNet, n: number): { netns: string; hostVeth: string } {
  const id = n.toString(36);
  // Interface names are at most 15 bytes: "f2s99v" leaves 9 for the counter.
  return { netns: `${net.prefix}-${id}`, hostVeth: `${net.prefix}v${id}` };
}

/**
 * Creates the pod's namespace with `eth0` (address `podIp`, default route via the gateway)
 * and `lo` up, its veth peer attached to the bridge. Undoes its own work when a step fails.
 */
export async function createPodNet(
  net: ClusterNet,
  names: { netns: string; hostVeth: string },
  podIp: string,
): Promise<PodNet> {
  const { netns, hostVeth } = names;
  await ip(["netns", "add", netns]);
  try {
    await ip(["link", "add", hostVeth, "type", "veth", "peer", "name", "eth0", "netns", netns]);
    await ip(["link", "set", hostVeth, "master", net.bridge, "up"]);
    await ip(["-n", netns, "addr", "add", `${podIp}/24`, "dev", "eth0"]);
    await ip(["-n", netns, "link", "set", "lo", "up"]);
    await ip(["-n", netns, "link", "set", "eth0", "up"]);
    await ip(["-n", netns, "route", "add", "default", "via", net.gateway]);
  } catch (e) {
    await deletePodNet({ netns, hostVeth, ip: podIp });
    throw e;
  }
  return { netns, hostVeth, ip: podIp };
}

/** Pids of processes whose network namespace is `netns`. */
export async function netnsPids(netns: string): Promise<number[]> {
  const text = await ip(["netns", "pids", netns], true);
  return text.split("\n").map(Number).filter((n) => Number.isInteger(n) && n > 1);
}

/** Kills whatever still runs in the namespace, then removes it and the host veth. */
export async function deletePodNet(pod: PodNet): Promise<void> {
  for (const pid of await netnsPids(pod.netns)) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // Exited meanwhile.
    }
  }
  await ip(["link", "del", pod.hostVeth], true);
  await ip(["netns", "del", pod.netns], true);
}

async function clusterNamespaces(net: ClusterNet): Promise<string[]> {
  return (await ip(["netns", "list"], true)).split("\n")
    .map((line) => line.split(" ")[0])
    .filter((name) => name.startsWith(`${net.prefix}-`));
}

/** Host links of cluster `net`: its veths and its bridge. */
async function clusterLinks(net: ClusterNet): Promise<string[]> {
  return (await ip(["-o", "link", "show"], true)).split("\n")
    .map((line) => line.split(": ")[1]?.split("@")[0])
    .filter((name): name is string =>
      !!name && (name.startsWith(`${net.prefix}v`) || name === net.bridge)
    );
}

/**
 * Removes everything of cluster `net`: processes inside its namespaces, the namespaces,
 * the host veths and the bridge. Safe to run when nothing is there.
 */
export async function sweepClusterNet(net: ClusterNet): Promise<void> {
  const namespaces = await clusterNamespaces(net);
  for (const netns of namespaces) {
    for (const pid of await netnsPids(netns)) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // Exited meanwhile.
      }
    }
  }
  // Let killed processes release the namespaces before they go.
  if (namespaces.length) await new Promise((r) => setTimeout(r, 100));
  for (const netns of namespaces) await ip(["netns", "del", netns], true);
  for (const link of await clusterLinks(net)) await ip(["link", "del", link], true);
}

/** Names of netns and links of cluster `net` still present (empty after a sweep). */
export async function leftovers(net: ClusterNet): Promise<string[]> {
  const namespaces = await clusterNamespaces(net);
  const links = await clusterLinks(net);
  return [...namespaces.map((n) => `netns ${n}`), ...links.map((l) => `link ${l}`)];
}

/** Slots that have any netns or link on this machine (from names like f2s3-…, f2sbr3). */
export async function slotsWithNet(): Promise<Set<number>> {
  const names = [
    ...(await ip(["netns", "list"], true)).split("\n").map((line) => line.split(" ")[0]),
    ...(await ip(["-o", "link", "show"], true)).split("\n")
      .map((line) => line.split(": ")[1]?.split("@")[0] ?? ""),
  ];
  const slots = new Set<number>();
  for (const name of names) {
    const m = name.match(/^f2s(?:br(\d+)$|(\d+)[-v])/);
    if (m) slots.add(Number(m[1] ?? m[2]));
  }
  return slots;
}
