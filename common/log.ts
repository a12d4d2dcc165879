/**
 * Structured logging: one JSON object per line on stderr, with level, component and
 * whatever context the caller adds (function, request id, ...). stdout stays free for
 * command output such as `f2s fn list`.
 *
 * Secrets never go through here on purpose: callers log names and ids, never values of
 * credentials. `redact` exists for the few places that log configuration.
 */

export type Level = "debug" | "info" | "warn" | "error";

const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

let threshold: Level = parseLevel(Deno.env.get("F2S_LOG_LEVEL")) ?? "info";

function parseLevel(value: string | undefined): Level | undefined {
  return value && value in ORDER ? value as Level : undefined;
}

/** Sets the lowest level that is written (the config's `debug: true` lowers it to debug). */
export function setLogLevel(level: Level): void {
  threshold = level;
}

export type Fields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  /** A logger that adds `fields` to every line, e.g. the function name. */
  with(fields: Fields): Logger;
}

const encoder = new TextEncoder();

function write(level: Level, component: string, base: Fields, msg: string, fields?: Fields) {
  if (ORDER[level] < ORDER[threshold]) return;
  const line: Fields = { time: new Date().toISOString(), level, component, msg, ...base };
  if (fields) {
    for (const [k, v] of Object.entries(fields)) {
      line[k] = v instanceof Error ? v.message : v;
    }
  }
  try {
    Deno.stderr.writeSync(encoder.encode(JSON.stringify(line) + "\n"));
  } catch {
    // stderr closed (parent gone): nothing sensible left to do with a log line.
  }
}

/** A logger for one component ("fizzlet", "dispatcher", "api", ...). */
export function createLogger(component: string, base: Fields = {}): Logger {
  return {
    debug: (msg, fields) => write("debug", component, base, msg, fields),
    info: (msg, fields) => write("info", component, base, msg, fields),
    warn: (msg, fields) => write("warn", component, base, msg, fields),
    error: (msg, fields) => write("error", component, base, msg, fields),
    with: (fields) => createLogger(component, { ...base, ...fields }),
  };
}
