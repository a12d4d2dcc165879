/**
 * Runs the `f2s` command line (`deno run main.ts …`) as a child process, as a user would,
 * and returns its exit code and output. It gets its own empty config folder unless a test
 * passes one, so a login stored on the host never leaks into a test (nor the reverse).
 */

const ROOT = new URL("../../", import.meta.url).pathname;

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runF2s(
  args: string[],
  options: { env?: Record<string, string>; stdin?: string; cwd?: string } = {},
): Promise<CliResult> {
  const config = options.env?.XDG_CONFIG_HOME ? undefined : await Deno.makeTempDir();
  try {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${ROOT}main.ts`, ...args],
      env: { NO_COLOR: "1", ...(config ? { XDG_CONFIG_HOME: config } : {}), ...options.env },
      cwd: options.cwd,
      stdin: options.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    if (options.stdin !== undefined) {
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode(options.stdin));
      await writer.close();
    }
    const out = await child.output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  } finally {
    if (config) await Deno.remove(config, { recursive: true });
  }
}
