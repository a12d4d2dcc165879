/**
 * `f2s fizzlet`: the sidecar inside every function image. Parses the options, starts the
 * server (fizzlet/server.ts) and turns SIGTERM/SIGINT into a graceful stop with exit 0.
 */

import { UsageError } from "../common/cli.ts";
import { createLogger } from "../common/log.ts";
import { HELP, parseOptions } from "./options.ts";
import { ConfigError } from "../common/config_util.ts";
import { startFizzlet } from "./server.ts";
import { followParent } from "./follow_parent.ts";

export async function main(args: string[]): Promise<number> {
  const parsed = parseOptions(args);
  if (parsed.help) {
    console.log(HELP);
    return 0;
  }
  const log = createLogger("fizzlet");
  let fizzlet;
  try {
    fizzlet = await startFizzlet(parsed.options, log);
  } catch (e) {
    if (e instanceof ConfigError) throw new UsageError(e.message);
    log.error("could not start", { error: e });
    return 1;
  }
  if (Deno.pid === 1) {
    // Orphans of the function's processes are re-parented to PID 1, and Deno only waits for
    // the processes it started itself: they would stay zombies.
    log.warn(
      "running as PID 1: processes the function leaves behind are not reaped; " +
        "run the fizzlet under an init such as tini (the example images do)",
    );
  }
  const stopped = new Promise<void>((resolve) => {
    const onSignal = (signal: Deno.Signal) => () => {
      log.info("signal received", { signal });
      fizzlet.stop().then(resolve);
    };
    for (const signal of ["SIGTERM", "SIGINT"] as const) {
      Deno.addSignalListener(signal, onSignal(signal));
    }
    // Only now: the SIGTERM of a parent's death must find the listener above.
    const parent = Number(Deno.env.get("F2S_PARENT_PID"));
    if (Number.isInteger(parent) && parent > 0 && followParent(parent) === "gone") {
      log.warn("the process that started the fizzlet is gone; stopping", { parentPid: parent });
      fizzlet.stop().then(resolve);
    }
  });
  await stopped;
  return 0;
}
