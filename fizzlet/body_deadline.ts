/**
 * Reads a request body within a deadline. Command mode reads the whole body before a request
 * may take one of its few slots, so a client that sends one byte a second holds no slot; the
 * deadline keeps it from holding a folder and a connection for ever either.
 */

export type BodyOutcome = "done" | "timeout" | "aborted";

/**
 * Passes every chunk of `body` to `sink` until the end, `timeoutMs` passing (the stream is
 * cancelled: "timeout") or `signal` aborting ("aborted"). Errors of the stream or the sink
 * other than those are thrown.
 */
export async function readBodyWithin(
  body: ReadableStream<Uint8Array> | Uint8Array | null,
  timeoutMs: number,
  signal: AbortSignal,
  sink: (chunk: Uint8Array) => void | Promise<void>,
): Promise<BodyOutcome> {
  if (body === null) return "done";
  if (signal.aborted) return "aborted";
  if (body instanceof Uint8Array) {
    // Received whole already (small bodies are): no stream to read, nothing to wait for.
    await sink(body);
    return "done";
  }
  const reader = body.getReader();
  let outcome = "done" as BodyOutcome;
  const stop = (why: BodyOutcome) => {
    if (outcome !== "done") return;
    outcome = why;
    // A pending read then ends at once (done, or an error), whatever the client does.
    reader.cancel().catch(() => {});
  };
  const timer = setTimeout(() => stop("timeout"), timeoutMs);
  const onAbort = () => stop("aborted");
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    while (outcome === "done") {
      const { done, value } = await reader.read();
      if (done || outcome !== "done") break;
      await sink(value);
    }
  } catch (e) {
    if (outcome === "done") throw e;
  } finally {
    clearTimeout(timer);
    signal.removeEventListener("abort", onAbort);
  }
  return outcome;
}
