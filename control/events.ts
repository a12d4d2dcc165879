/**
 * Recent platform events (function applied, instance ready, scaled, errors) in a bounded
 * ring, served at `GET /events` and written to the log. Each event is plain data.
 */

import { type Clock, realClock } from "../common/clock.ts";
import { createLogger } from "../common/log.ts";
import type { EventRecorder } from "../dispatcher/needs.ts";

export interface PlatformEvent {
  time: string;
  /** e.g. "function.applied", "instance.ready", "scaling.decision", "kafka.error" */
  type: string;
  function?: string;
  message: string;
  data?: Record<string, unknown>;
}

/** The dispatcher's recorder (dispatcher/needs.ts), readable and subscribable here. */
export interface EventLog extends EventRecorder {
  /** Newest last; filtered by function and/or type prefix when given. */
  list(filter?: { function?: string; type?: string; limit?: number }): PlatformEvent[];
  /** Calls `listener` with every event recorded from now on (e.g. to write Kubernetes Events). */
  subscribe(listener: (event: PlatformEvent) => void): () => void;
}

export function createEventLog(capacity = 1000, clock: Clock = realClock): EventLog {
  const ring: PlatformEvent[] = [];
  const log = createLogger("events");
  const listeners = new Set<(event: PlatformEvent) => void>();
  return {
    record(type, message, fields = {}) {
      const event: PlatformEvent = {
        time: new Date(clock.now()).toISOString(),
        type,
        message,
        ...fields,
      };
      ring.push(event);
      if (ring.length > capacity) ring.splice(0, ring.length - capacity);
      log.debug(message, { type, function: fields.function, ...fields.data });
      for (const l of listeners) {
        try {
          l(event);
        } catch (e) {
          log.error("event listener failed", { type, error: e });
        }
      }
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    list(filter = {}) {
      let out = ring;
      if (filter.function) out = out.filter((e) => e.function === filter.function);
      if (filter.type) out = out.filter((e) => e.type.startsWith(filter.type!));
      return out.slice(-(filter.limit ?? 200));
    },
  };
}
