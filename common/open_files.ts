/**
 * The default cap on a server's open connections, from the process's open-files limit:
 * a connection that is proxied holds two descriptors (the client's and the upstream's), so
 * half the soft RLIMIT_NOFILE, at most 10000 (and 10000 when the limit cannot be read,
 * e.g. off Linux). Past the cap a server answers 503 instead of failing to accept.
 */

export const MAX_CONNECTIONS_CEILING = 10_000;
/** Never below this, however low the limit: a server must still serve its health checks. */
const FLOOR = 16;

/** The soft open-files limit of this process, or undefined when unknown. */
export function openFilesLimit(): number | undefined {
  try {
    const limits = Deno.readTextFileSync("/proc/self/limits");
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(limits);
    if (!m) return undefined;
    return m[1] === "unlimited" ? Infinity : Number(m[1]);
  } catch {
    return undefined;
  }
}

export function defaultMaxConnections(): number {
  const limit = openFilesLimit();
  if (limit === undefined) return MAX_CONNECTIONS_CEILING;
  return Math.max(FLOOR, Math.min(MAX_CONNECTIONS_CEILING, Math.floor(limit / 2)));
}
