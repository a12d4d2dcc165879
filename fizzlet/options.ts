/**
 * The fizzlet's command line: the option table (with environment fallbacks, so an image can
 * be configured with env only) and its translation into validated settings.
 */

import { helpText, intOption, type OptionTable, parseCommand, UsageError } from "../common/cli.ts";
import { parseDuration } from "../common/duration.ts";
import { APP_PORT, FIZZLET_PORT } from "../common/protocol.ts";

export type ModeOption = "auto" | "proxy" | "command";
export type InputOption = "file" | "stdin";

export interface FizzletOptions {
  host: string;
  /** 0 picks a free port (printed in the first log line). */
  port: number;
  appPort: number;
  /** Absolute folder holding start.sh (command mode) and where the app command runs. */
  dir: string;
  mode: ModeOption;
  /** Shell command line that starts the app (proxy mode), run and supervised by the fizzlet. */
  appCommand?: string;
  /** Per request, in ms: until the app's response headers, or the script's exit. */
  timeout: number;
  /** Command mode: how long the whole request body may take to arrive, in ms (else 408). */
  bodyTimeout: number;
  /** Command mode: body to `input.json` + `start.sh input.json` (file), or streamed (stdin). */
  input: InputOption;
  /** Command mode with stdin: limit on a run whose answer has started streaming, in ms. */
  maxDuration: number;
  /**
   * Command mode: start.sh by posix_spawn (if it can), or as where it cannot: by long-lived
   * shells (file input) or Deno.Command through setsid (stdin input).
   */
  start: "spawn" | "shells";
  /** Requests served at once; 0 means the mode's default (see `effectiveMaxInflight`). */
  maxInflight: number;
  /** Requests that may wait for a free slot; beyond that they get 429. */
  queue: number;
  /** Time in-flight requests get to finish after SIGTERM, in ms. */
  grace: number;
  /** Open connections beyond this get 503; 0 means the default (common/open_files.ts). */
  maxConnections: number;
  /** A Unix socket to serve on as well (`f2s dev` reaches its fizzlets through it). */
  socket?: string;
}

export const OPTIONS: OptionTable = {
  host: {
    type: "string",
    env: "F2S_FIZZLET_HOST",
    default: "0.0.0.0",
    value: "ADDR",
    description: "Address to listen on",
  },
  port: {
    type: "string",
    env: "F2S_FIZZLET_PORT",
    default: String(FIZZLET_PORT),
    value: "PORT",
    description: 'Port to listen on (0 picks a free one, logged as "listening")',
  },
  socket: {
    type: "string",
    env: "F2S_FIZZLET_SOCKET",
    value: "PATH",
    description: "Also serve on this Unix socket (f2s dev uses it: cheaper than TCP)",
  },
  "app-port": {
    type: "string",
    env: "F2S_APP_PORT",
    default: String(APP_PORT),
    value: "PORT",
    description: "Port of the app in reverse-proxy mode",
  },
  dir: {
    type: "string",
    env: "F2S_FUNCTION_DIR",
    value: "DIR",
    description: "Function folder (holds start.sh); default the working directory",
  },
  mode: {
    type: "string",
    env: "F2S_MODE",
    default: "auto",
    value: "auto|proxy|command",
    description: "auto: proxy when the app accepts connections, else start.sh",
  },
  "app-command": {
    type: "string",
    env: "F2S_APP_COMMAND",
    value: "CMD",
    description: "Start and supervise the app with this shell command (env PORT=app port)",
  },
  timeout: {
    type: "string",
    env: "F2S_TIMEOUT",
    default: "60s",
    value: "DURATION",
    description: "Per-request limit: app answer (proxy) or script run (command)",
  },
  "body-timeout": {
    type: "string",
    env: "F2S_BODY_TIMEOUT",
    default: "30s",
    value: "DURATION",
    description: "Command mode: time the whole request body may take to arrive (else 408)",
  },
  input: {
    type: "string",
    env: "F2S_INPUT",
    default: "file",
    value: "file|stdin",
    description:
      "Command mode: body in a file for start.sh (file), or piped to it, output streamed",
  },
  start: {
    type: "string",
    env: "F2S_START",
    default: "spawn",
    value: "spawn|shells",
    description:
      "Command mode: start.sh by posix_spawn, or as where FFI or glibc are missing: long-lived shells (file input), Deno.Command and setsid (stdin input)",
  },
  "max-duration": {
    type: "string",
    env: "F2S_MAX_DURATION",
    default: "0",
    value: "DURATION",
    description: "Command mode, stdin: limit once the answer streams (0: the --timeout)",
  },
  "max-inflight": {
    type: "string",
    env: "F2S_MAX_INFLIGHT",
    default: "0",
    value: "N",
    description: "Requests served at once (0: unlimited in proxy mode, 2 x CPUs in command mode)",
  },
  queue: {
    type: "string",
    env: "F2S_QUEUE",
    default: "100",
    value: "N",
    description: "Requests that may wait for a slot; more get 429 with Retry-After",
  },
  grace: {
    type: "string",
    env: "F2S_GRACE",
    default: "30s",
    value: "DURATION",
    description: "On SIGTERM, time in-flight requests get to finish",
  },
  "max-connections": {
    type: "string",
    env: "F2S_MAX_CONNECTIONS",
    default: "0",
    value: "N",
    description: "Open connections; more get 503 (0: half the open-files limit, at most 10000)",
  },
};

export const HELP = helpText(
  "f2s fizzlet [options]",
  "Serves one function instance: reverse proxy to an app on --app-port, or runs\n" +
    "start.sh per request (command mode). Health, readiness and metrics under /f2s/.",
  OPTIONS,
);

function durationOption(values: Record<string, unknown>, name: string, min: number): number {
  const ms = parseDuration(values[name]);
  if (typeof ms === "string") throw new UsageError(`--${name} ${ms}`);
  if (ms < min) throw new UsageError(`--${name} must be at least ${min}ms`);
  return ms;
}

/** Parses and checks the options; `help` is true when `--help` was given. */
export function parseOptions(
  args: string[],
): { help: true } | { help: false; options: FizzletOptions } {
  const parsed = parseCommand(args, OPTIONS);
  if (parsed.help) return { help: true };
  if (parsed.positionals.length > 0) {
    throw new UsageError(`unexpected argument "${parsed.positionals[0]}"`);
  }
  const v = parsed.values;
  const mode = v.mode as string;
  if (mode !== "auto" && mode !== "proxy" && mode !== "command") {
    throw new UsageError(`--mode must be auto, proxy or command, got "${mode}"`);
  }
  const input = v.input as string;
  if (input !== "file" && input !== "stdin") {
    throw new UsageError(`--input must be file or stdin, got "${input}"`);
  }
  const start = v.start as string;
  if (start !== "spawn" && start !== "shells") {
    throw new UsageError(`--start must be spawn or shells, got "${start}"`);
  }
  const appCommand = typeof v["app-command"] === "string" && v["app-command"].trim() !== ""
    ? v["app-command"]
    : undefined;
  if (appCommand && mode === "command") {
    throw new UsageError(
      "--app-command starts an app to proxy to; it cannot be used with --mode command",
    );
  }
  const dirRaw = typeof v.dir === "string" && v.dir !== "" ? v.dir : Deno.cwd();
  let dir: string;
  try {
    dir = Deno.realPathSync(dirRaw);
    if (!Deno.statSync(dir).isDirectory) throw new Error("not a directory");
  } catch (e) {
    throw new UsageError(`--dir "${dirRaw}" is not a readable folder: ${(e as Error).message}`);
  }
  const host = v.host as string;
  if (host.trim() === "") throw new UsageError("--host must not be empty");
  const port = intOption(v, "port", 0, 65535);
  const appPort = intOption(v, "app-port", 1, 65535);
  if (port === appPort) throw new UsageError(`--port and --app-port are both ${port}`);
  return {
    help: false,
    options: {
      host,
      port,
      appPort,
      dir,
      mode,
      appCommand,
      timeout: durationOption(v, "timeout", 1),
      bodyTimeout: durationOption(v, "body-timeout", 1),
      input,
      start,
      maxDuration: durationOption(v, "max-duration", 0),
      maxInflight: intOption(v, "max-inflight", 0, 100_000),
      queue: intOption(v, "queue", 0, 1_000_000),
      grace: durationOption(v, "grace", 0),
      maxConnections: intOption(v, "max-connections", 0, 1_000_000),
      socket: typeof v.socket === "string" && v.socket !== "" ? v.socket : undefined,
    },
  };
}

/** How many requests run at once in `mode` when --max-inflight is 0 (Infinity: no limit). */
export function effectiveMaxInflight(maxInflight: number, mode: "proxy" | "command"): number {
  if (maxInflight > 0) return maxInflight;
  return mode === "proxy" ? Infinity : 2 * navigator.hardwareConcurrency;
}
