/**
 * Command-line parsing shared by every subcommand: options with environment fallbacks,
 * `--help` text generated from the same table, and errors that name the option.
 */

import { parseArgs } from "node:util";

export interface OptionSpec {
  type: "string" | "boolean";
  /** Environment variable consulted when the option is not given. */
  env?: string;
  default?: string | boolean;
  short?: string;
  description: string;
  /** Shown in help instead of "value", e.g. "PORT". */
  value?: string;
  multiple?: boolean;
}

export type OptionTable = Record<string, OptionSpec>;

export class UsageError extends Error {}

export interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
  help: boolean;
}

/** Parses `args` against `table`; unknown options raise a UsageError naming them. */
export function parseCommand(args: string[], table: OptionTable): Parsed {
  const options: Record<
    string,
    { type: "string" | "boolean"; short?: string; multiple?: boolean }
  > = {
    help: { type: "boolean", short: "h" },
  };
  for (const [name, spec] of Object.entries(table)) {
    options[name] = { type: spec.type };
    if (spec.short) options[name].short = spec.short;
    if (spec.multiple) options[name].multiple = true;
  }
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const values: Parsed["values"] = {};
  for (const [name, spec] of Object.entries(table)) {
    let v = parsed.values[name] as string | boolean | string[] | undefined;
    if (v === undefined && spec.env) {
      const fromEnv = Deno.env.get(spec.env);
      if (fromEnv !== undefined && fromEnv !== "") {
        v = spec.type === "boolean"
          ? ["1", "true", "yes"].includes(fromEnv.toLowerCase())
          : fromEnv;
      }
    }
    values[name] = v ?? spec.default;
  }
  return { values, positionals: parsed.positionals, help: parsed.values.help === true };
}

/** Help text: usage line, description and one line per option. */
export function helpText(usage: string, description: string, table: OptionTable): string {
  const rows = Object.entries(table).map(([name, spec]) => {
    const flag = `--${name}${spec.type === "string" ? ` ${spec.value ?? "VALUE"}` : ""}`;
    const extra = [
      spec.default !== undefined && spec.default !== false ? `default ${spec.default}` : "",
      spec.env ? `env ${spec.env}` : "",
    ].filter(Boolean).join(", ");
    return `  ${flag.padEnd(28)} ${spec.description}${extra ? ` (${extra})` : ""}`;
  });
  return `Usage: ${usage}\n\n${description}\n\nOptions:\n${rows.join("\n")}\n  ${
    "--help".padEnd(28)
  } Show this help\n`;
}

/** Integer option value or a UsageError naming the option. */
export function intOption(
  values: Parsed["values"],
  name: string,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const raw = values[name];
  const n = Number(raw);
  if (typeof raw !== "string" || raw.trim() === "" || !Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be an integer between ${min} and ${max}, got "${raw}"`);
  }
  return n;
}
