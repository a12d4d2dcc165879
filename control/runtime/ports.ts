/**
 * Ports for `f2s dev`'s instances (each takes two: its fizzlet's and its app's). By default
 * any free port; with `--instance-ports FROM-TO` only ports of that range, for people
 * behind a host firewall or running several platforms side by side. A port is held while
 * its instance lives and is checked free (bindable) before it is handed out.
 */

import { freePort } from "../../common/self.ts";

export interface PortRange {
  from: number;
  to: number;
}

export interface PortPool {
  /** A free port, or undefined when the range has none left. */
  take(): number | undefined;
  release(port: number): void;
  readonly range?: PortRange;
}

/** "FROM-TO" → a range of at least two ports, or the reason it is not one. */
export function parsePortRange(text: string): PortRange | string {
  const m = /^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$/.exec(text);
  if (!m) return `"${text}" is not FROM-TO (e.g. 30000-30999)`;
  const from = Number(m[1]);
  const to = Number(m[2]);
  if (from < 1024 || to > 65535) return `"${text}" must lie within 1024-65535`;
  if (to - from < 1) return `"${text}" must hold at least two ports (each instance takes two)`;
  return { from, to };
}

/** `anyFree` picks a free port when there is no range (injectable for tests). */
export function createPortPool(range?: PortRange, anyFree: () => number = freePort): PortPool {
  const held = new Set<number>();
  let next = range?.from ?? 0;
  return {
    range,
    take() {
      if (!range) {
        // The kernel may pick a port again that is held but not yet bound (an app still
        // starting): the instance's fizzlet and app, or two instances, would then share it.
        for (let i = 0; i < 100; i++) {
          const port = anyFree();
          if (held.has(port)) continue;
          held.add(port);
          return port;
        }
        return undefined;
      }
      const size = range.to - range.from + 1;
      for (let i = 0; i < size; i++) {
        const port = next;
        next = next >= range.to ? range.from : next + 1;
        if (held.has(port) || !bindable(port)) continue;
        held.add(port);
        return port;
      }
      return undefined;
    },
    release(port) {
      held.delete(port);
    },
  };
}

function bindable(port: number): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return true;
  } catch {
    return false;
  }
}
