/**
 * `f2s dev`: the whole platform on one machine, no cluster. Functions come from YAML
 * manifests in a folder (watched live), instances run as local processes under the
 * fizzlet, and the API, invocations and metrics share one port.
 */

import { resolve } from "node:path";
import {
  helpText,
  intOption,
  type OptionTable,
  parseCommand,
  UsageError,
} from "../../common/cli.ts";
import { createLogger, setLogLevel } from "../../common/log.ts";
import { createAuth } from "../auth/auth.ts";
import { ConfigError, loadConfig } from "../config.ts";
import { createEventLog } from "../events.ts";
import { createMetrics } from "../metrics.ts";
import { listen, untilShutdownSignal } from "../listen.ts";
import { createPlatform } from "../platform.ts";
import { createLocalRuntime } from "../runtime/local.ts";
import { createPortPool, parsePortRange, type PortRange } from "../runtime/ports.ts";
import { createFolderStore } from "../store/folder.ts";
import { createUiHandler } from "../ui.ts";

const OPTIONS: OptionTable = {
  functions: {
    type: "string",
    env: "F2S_FUNCTIONS_DIR",
    default: "functions",
    value: "DIR",
    description: "Folder of Function manifests (*.yaml), watched for changes",
  },
  port: {
    type: "string",
    env: "F2S_PORT",
    default: "8080",
    value: "PORT",
    description: "Port for API and invocations (0: any free port)",
  },
  host: {
    type: "string",
    env: "F2S_HOST",
    default: "127.0.0.1",
    value: "ADDR",
    description: "Address to listen on",
  },
  config: {
    type: "string",
    env: "F2S_CONFIG",
    value: "FILE",
    description: "config.yaml (seed format); defaults when not given",
  },
  images: {
    type: "string",
    env: "F2S_IMAGE_DIRS",
    value: "DIRS",
    description:
      "Comma-separated folders where an image's function folder is looked up by name (default: the functions folder)",
  },
  "instance-ports": {
    type: "string",
    env: "F2S_INSTANCE_PORTS",
    value: "FROM-TO",
    description:
      "Ports instances may use (two each: fizzlet and app), e.g. 30000-30999 (default: any free port)",
  },
  grace: {
    type: "string",
    env: "F2S_GRACE_MS",
    default: "10000",
    value: "MS",
    description: "Shutdown grace period for in-flight requests",
  },
};

const USAGE = "f2s dev [--functions DIR] [--port PORT] [--config FILE] [--instance-ports FROM-TO]";
const DESCRIPTION =
  "Runs the whole F2S platform on this machine: functions from a folder of manifests run as local processes under the fizzlet.";

export async function main(args: string[]): Promise<number> {
  const { values, help } = parseCommand(args, OPTIONS);
  if (help) {
    console.log(helpText(USAGE, DESCRIPTION, OPTIONS));
    return 0;
  }
  const port = intOption(values, "port", 0, 65535);
  const grace = intOption(values, "grace", 0, 3_600_000);
  let portRange: PortRange | undefined;
  if (typeof values["instance-ports"] === "string") {
    const parsed = parsePortRange(values["instance-ports"]);
    if (typeof parsed === "string") throw new UsageError(`--instance-ports ${parsed}`);
    portRange = parsed;
  }
  const log = createLogger("dev");
  let config;
  try {
    config = await loadConfig(values.config as string | undefined);
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`f2s dev: ${e.message}`);
      return 1;
    }
    throw e;
  }
  if (config.debug) setLogLevel("debug");

  const dir = resolve(values.functions as string);
  const imageDirs = values.images
    ? (values.images as string).split(",").map((d) => resolve(d.trim()))
    : [dir];
  const events = createEventLog();
  const metrics = createMetrics();
  const runtime = createLocalRuntime({
    imageDirs,
    events,
    gracePeriodMs: grace,
    ports: createPortPool(portRange),
  });
  const store = await createFolderStore({ dir, events, imageDirs, check: runtime.check });
  const auth = await createAuth(config.auth);
  const platform = createPlatform({
    config,
    store,
    runtime,
    events,
    metrics,
    auth,
    ui: createUiHandler(),
    asyncPath: resolve(dir, ".f2s", "async.db"),
  });

  const server = listen(values.host as string, port, platform.handler, log, config.maxConnections);
  const bound = server.addr.port;
  log.info("listening", { port: bound, host: values.host, functions: dir, runtime: "local" });
  console.log(`F2S dev listening on http://${values.host}:${bound} (functions from ${dir})`);

  const signal = await untilShutdownSignal();
  log.info("shutting down", { signal, inflight: platform.dispatcher.inflight() });
  // Stop accepting first; requests already in flight keep their connection.
  const closed = server.shutdown();
  await platform.shutdown(grace);
  await closed;
  log.info("stopped");
  return 0;
}
