/**
 * The Kafka triggers alone in a process of their own, so a test can kill -9 it in the
 * middle of a message (the "control plane crashed before committing" case). Reads a
 * config.yaml through the control plane's own parser, forwards invocations to a function
 * server, prints "ready" once its consumer group is joined, and stops cleanly on SIGTERM.
 *
 *   deno run -A tests/kafka/trigger_process.ts CONFIG.yaml FUNCTION_SERVER_URL
 */

import { loadConfig } from "../../control/config.ts";
import { createEventLog } from "../../control/events.ts";
import { startKafkaTriggers } from "../../control/kafka/triggers.ts";
import { forwardingInvoke, testFunction } from "./helpers.ts";

const [configPath, functionUrl] = Deno.args;
const config = await loadConfig(configPath, {});
const triggers = await startKafkaTriggers({
  config: config.kafka,
  // Every reference names a function of the same name on the function server.
  resolve: (ref) => testFunction(ref),
  invoke: forwardingInvoke(functionUrl),
  events: createEventLog(),
  clientId: `trigger-process-${Deno.pid}`,
});

const stop = async () => {
  await triggers.stop();
  Deno.exit(0);
};
Deno.addSignalListener("SIGTERM", stop);

while (!triggers.health().connected) await new Promise((r) => setTimeout(r, 50));
console.log("ready");
