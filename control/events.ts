/**
 * Recent platform events (function applied, instance ready, scaled, errors) in a bounded
 * ring, served at `GET /events` and written to the log. Each event is plain data.
 */

import { createLogger } from "../common/log.ts";

export interface PlatformEvent {
  time: string;
  /** e.g. "function.applied", "instance.ready", "scaling.decision", "kafka.error" */
  type: string;
  function?: string;
  message: string;
  data?: Record<string, unknown>;
}

export interface EventLog {
  record(
    type: string,
    message: string,
    fields?: { function?: string; data?: Record<string, unknown> },
  ): void;
  /** Newest last; filtered by function and/or type prefix when given. */
  list(filter?: { function?: string; type?: string; limit?: number }): PlatformEvent[];
}

export function createEventLog(capacity = 1000, now: () => Date = () => new Date()): EventLog {
  const ring: PlatformEvent[] = [];
  const log = createLogger("events");
  return {
    record(type, message, fields = {}) {
      const event: PlatformEvent = { time: now().toISOString(), type, message, ...fields };
      ring.push(event);
      if (ring.length > capacity) ring.splice(0, ring.length - capacity);
      log.debug(message, { type, function: fields.function, ...fields.data });
    },
    list(filter = {}) {
      let out = ring;
      if (filter.function) out = out.filter((e) => e.function === filter.function);
      if (filter.type) out = out.filter((e) => e.type.startsWith(filter.type!));
      return out.slice(-(filter.limit ?? 200));
    },
  };
}
