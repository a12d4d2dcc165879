/**
 * The `f2s` program: one binary for the control plane (`serve`, `dev`), the sidecar inside
 * every function image (`fizzlet`) and the client (`fn …`). Each subcommand is loaded only
 * when used, so the fizzlet does not pay for the control plane's dependencies.
 */

import { UsageError } from "./common/cli.ts";

type Command = { summary: string; load: () => Promise<{ main(args: string[]): Promise<number> }> };

const COMMANDS: Record<string, Command> = {
  serve: {
    summary: "Run the control plane on Kubernetes (API, dispatcher, operator)",
    load: () => import("./control/cli/serve.ts"),
  },
  dev: {
    summary: "Run the whole platform on this machine from a folder of Function manifests",
    load: () => import("./control/cli/dev.ts"),
  },
  fizzlet: {
    summary: "Run the sidecar that serves one function instance (port 9092)",
    load: () => import("./fizzlet/main.ts"),
  },
  cleanup: {
    summary: "Before uninstalling: stop the control plane, remove its Deployments and finalizers",
    load: () => import("./control/cli/cleanup.ts"),
  },
  fn: {
    summary:
      "Manage and invoke functions on a running control plane (list, get, apply, delete, invoke)",
    load: () => import("./control/cli/fn.ts"),
  },
};

function usage(): string {
  const rows = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return `F2S, Function-as-a-Service for Kubernetes\n\nUsage: f2s <command> [options]\n\nCommands:\n${
    rows.join("\n")
  }\n\nRun "f2s <command> --help" for the options of a command.\n`;
}

export async function run(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    console.log(usage());
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`f2s: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  try {
    const mod = await command.load();
    return await mod.main(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`f2s ${name}: ${e.message}\nRun "f2s ${name} --help" for usage.`);
      return 2;
    }
    throw e;
  }
}

if (import.meta.main) {
  Deno.exit(await run(Deno.args));
}
