/**
 * Whether something accepts TCP connections on a local port: how the fizzlet learns that
 * the app is up (auto mode) and still reachable (readiness), without sending it a request.
 */

/** True if a TCP connection to 127.0.0.1:`port` opens within `timeoutMs`. */
export async function acceptsConnections(port: number, timeoutMs = 500): Promise<boolean> {
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port, signal });
    conn.close();
    return true;
  } catch {
    return false;
  }
}
