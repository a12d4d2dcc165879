/**
 * Turns a child's output stream into log lines: split on newlines, each line cut to a
 * sane length so a process printing megabytes without a newline cannot exhaust memory or
 * flood the log with one giant line.
 */

export const MAX_LINE = 4096;

/** Calls `onLine` for every line of `stream` (the last one even without a newline). */
export async function forEachLine(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string, truncated: boolean) => void,
  maxLine = MAX_LINE,
): Promise<void> {
  const lines = lineSplitter(onLine, maxLine);
  for await (const chunk of stream) lines.push(chunk);
  lines.end();
}

/**
 * forEachLine for bytes at hand: `push` each chunk as it comes, `end` after the last
 * (calls `onLine` for an unfinished last line).
 */
export function lineSplitter(
  onLine: (line: string, truncated: boolean) => void,
  maxLine = MAX_LINE,
): { push(chunk: Uint8Array): void; end(): void } {
  const decoder = new TextDecoder();
  let pending = "";
  let dropping = false;
  const emit = (line: string, truncated: boolean) => {
    if (line.endsWith("\r")) line = line.slice(0, -1);
    onLine(line, truncated);
  };
  return {
    push(chunk) {
      pending += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (dropping) dropping = false;
        else emit(line, false);
      }
      if (pending.length > maxLine) {
        // Report the head once and skip the rest of this line.
        if (!dropping) emit(pending.slice(0, maxLine), true);
        dropping = true;
        pending = "";
      }
    },
    end() {
      pending += decoder.decode();
      if (pending !== "" && !dropping) emit(pending, false);
    },
  };
}

/** Keeps the last `max` characters written to it (the tail of a script's stderr). */
export function createTail(max: number): { push(text: string): void; text(): string } {
  let buffer = "";
  return {
    push(text) {
      buffer += text;
      if (buffer.length > 2 * max) buffer = buffer.slice(-max);
    },
    text: () => buffer.slice(-max),
  };
}
