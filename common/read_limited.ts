/**
 * Reads a byte stream whole, up to a limit: request bodies the API parses, sign-in bodies,
 * a command-mode script's output. Past the limit it stops reading and cancels the stream
 * rather than holding more in memory.
 */

/** The stream's bytes in one array, or null (stream cancelled) once they exceed `limit`. */
export async function readUpTo(
  stream: ReadableStream<Uint8Array>,
  limit: number,
): Promise<Uint8Array<ArrayBuffer> | null> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  // Leaving the loop early (past the limit, or on an error) cancels the stream.
  for await (const chunk of stream) {
    size += chunk.byteLength;
    if (size > limit) return null;
    chunks.push(chunk);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.byteLength;
  }
  return all;
}
