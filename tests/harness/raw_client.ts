/**
 * The client side of raw-bytes server tests (tests/common/http1_*_test.ts): read what the
 * server sends until it closes, and close a connection that may already be closed.
 */

/** Everything read until the server closes (or the read fails), as text. */
export async function readToEnd(conn: Deno.Conn): Promise<string> {
  let text = "";
  const buf = new Uint8Array(4096);
  for (;;) {
    const n = await conn.read(buf).catch(() => null);
    if (n === null) return text;
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
}

/** Closes `conn` unless a time-out closed it first. */
export function closeQuietly(conn: Deno.Conn) {
  try {
    conn.close();
  } catch {
    // closed already
  }
}
