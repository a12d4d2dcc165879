/**
 * Where tests/deps/cluster.sh put the control-plane binaries: a cache folder keyed by the
 * pinned versions and the build module, computed the same way as the script does
 * (sha256 of versions.env, build/go.mod and build/go.sum, first 12 hex digits).
 */

const HERE = new URL(".", import.meta.url).pathname;

export const BINARIES = [
  "etcd",
  "kube-apiserver",
  "kube-controller-manager",
  "kube-scheduler",
  "kubectl",
  "helm",
] as const;

export interface Versions {
  K8S_VERSION: string;
  ETCD_VERSION: string;
  HELM_VERSION: string;
}

export function readVersions(): Versions {
  const text = Deno.readTextFileSync(`${HERE}versions.env`);
  const values: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = line.match(/^([A-Z0-9_]+)=(.*)$/);
    if (m) values[m[1]] = m[2].trim();
  }
  return values as unknown as Versions;
}

export function cacheRoot(): string {
  return Deno.env.get("F2S_CACHE") ?? `${Deno.env.get("HOME") ?? "/root"}/.cache/f2s`;
}

/** The folder holding the binaries (F2S_CLUSTER_BIN overrides). */
export async function binDir(): Promise<string> {
  const override = Deno.env.get("F2S_CLUSTER_BIN");
  if (override) return override;
  const parts = ["versions.env", "build/go.mod", "build/go.sum"].map((f) =>
    Deno.readFileSync(`${HERE}${f}`)
  );
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    all.set(p, offset);
    offset += p.length;
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  const key = [...digest].map((b) => b.toString(16).padStart(2, "0")).join("").slice(0, 12);
  return `${cacheRoot()}/cluster/k8s-${readVersions().K8S_VERSION}-${key}/bin`;
}

/** The binaries folder, or an error saying how to build it when something is missing. */
export async function requireBinaries(): Promise<string> {
  const dir = await binDir();
  const missing = BINARIES.filter((b) => {
    try {
      return !Deno.statSync(`${dir}/${b}`).isFile;
    } catch {
      return true;
    }
  });
  if (missing.length) {
    throw new Error(
      `test cluster binaries missing in ${dir} (${missing.join(", ")}): ` +
        `run "bash tests/deps/cluster.sh" (builds them once, 12 to 20 minutes on 2 cores)`,
    );
  }
  return dir;
}

/** Seconds the last build took, as recorded by tests/deps/cluster.sh, if known. */
export async function buildSeconds(): Promise<Record<string, number>> {
  const dir = (await binDir()).replace(/\/bin$/, "");
  try {
    return JSON.parse(Deno.readTextFileSync(`${dir}/build-times.json`));
  } catch {
    return {};
  }
}
