/**
 * How to start another `f2s` subcommand as a child process: the compiled binary runs
 * itself, `deno run main.ts` runs Deno on the same main module with the same permissions.
 */

const MAIN = new URL("../main.ts", import.meta.url);

/** The argv that runs `f2s <args…>`. */
export function selfCommand(args: string[]): string[] {
  const exe = Deno.execPath();
  const isDeno = /(^|\/)deno(\.exe)?$/.test(exe);
  if (!isDeno) return [exe, ...args];
  return [
    exe,
    "run",
    "-A",
    "--no-prompt",
    MAIN.protocol === "file:" ? MAIN.pathname : MAIN.href,
    ...args,
  ];
}

/** A free TCP port on the loopback interface (the OS picks it; we release it at once). */
export function freePort(hostname = "127.0.0.1"): number {
  const listener = Deno.listen({ hostname, port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}
