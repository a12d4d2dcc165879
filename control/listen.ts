/**
 * The HTTP listener both control-plane commands (`f2s dev`, `f2s serve`) run: the platform's
 * handler on one port, a JSON 500 for a handler that throws, and the wait for the signal
 * that starts a graceful shutdown.
 */

import type { Logger } from "../common/log.ts";
import { type Http1Server, serveHttp1 } from "../common/http1_server.ts";
import { errorAnswer } from "../common/protocol.ts";
import type { Handler } from "./api/server.ts";

/**
 * Serves `handler` on host:port (0 picks a free port); throws when it cannot listen.
 * `maxConnections` 0 leaves the cap at the server's default (common/open_files.ts).
 */
export function listen(
  host: string,
  port: number,
  handler: Handler,
  log: Logger,
  maxConnections = 0,
): Http1Server {
  return serveHttp1({
    hostname: host,
    port,
    maxConnections: maxConnections || undefined,
    log,
    onError: (e) => {
      log.error("request handler failed", { error: e });
      return errorAnswer(500, "internal error");
    },
  }, handler);
}

/** Resolves with the first SIGINT or SIGTERM: the start of a graceful shutdown. */
export function untilShutdownSignal(): Promise<Deno.Signal> {
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  return new Promise((resolve) => {
    for (const s of signals) Deno.addSignalListener(s, () => resolve(s));
  });
}
