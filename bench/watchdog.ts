/**
 * OpenFaaS of-watchdog for the benchmarks, the reference F2S's fizzlet is compared with.
 *
 * Which binary runs, in order: the real of-watchdog built from the vendored source archive in
 * ../shared/peers (`go build -mod=vendor`, offline), then from its Go module, then
 * bench/gowatchdog (the same http and streaming modes on Go's net/http). Builds are cached in
 * ${F2S_CACHE:-~/.cache/f2s}; the report names the one that ran.
 *
 * The real one always binds its metrics on :8081, so only one may run at a time: `start`
 * refuses a second while one is running, and when :8081 is taken by something else on this
 * host, the stand-in runs instead and says why.
 */

import { freePort } from "../common/self.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const CACHE = Deno.env.get("F2S_CACHE") ?? `${Deno.env.get("HOME")}/.cache/f2s`;
/** The source archive (MIT), relative to the repository's parent (../shared/peers/README.md). */
const ARCHIVE = Deno.env.get("F2S_OF_WATCHDOG_ARCHIVE") ??
  `${ROOT}../shared/peers/of-watchdog-9bdadb1.tar.gz`;
const ARCHIVE_COMMIT = "9bdadb1e8c68";
const OF_WATCHDOG_MODULE = "github.com/openfaas/of-watchdog";
/** Pinned commit (its tags are not semver, so Go needs the commit). */
const OF_WATCHDOG_VERSION = "a265b19f6e058c8bd8a2adb4e601b9783a87b452";
const METRICS_PORT = 8081;

export interface WatchdogBinary {
  path: string;
  /** "of-watchdog" for the real one, "watchdog*" for the stand-in. */
  label: string;
  /** Real of-watchdog: binds :8081 and so runs one at a time. */
  real: boolean;
  /** Which one ran and why (printed with the figures). */
  note: string;
}

export interface RunningWatchdog {
  port: number;
  stop(): Promise<void>;
}

export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function run(cmd: string, args: string[], env: Record<string, string>, cwd?: string) {
  const out = await new Deno.Command(cmd, {
    args,
    env: { GOTOOLCHAIN: "local", CGO_ENABLED: "0", ...env },
    cwd,
    stdin: "null",
    signal: AbortSignal.timeout(300_000),
  }).output();
  const text = new TextDecoder().decode(out.stderr).trim();
  return { ok: out.success, error: text.split("\n").slice(-2).join(" ") };
}

function portTaken(port: number): boolean {
  try {
    Deno.listen({ hostname: "0.0.0.0", port }).close();
    return false;
  } catch {
    return true;
  }
}

async function fromArchive(): Promise<string | string[]> {
  const dir = `${CACHE}/of-watchdog-src-${ARCHIVE_COMMIT}`;
  const binary = `${dir}/of-watchdog`;
  if (await exists(binary)) return binary;
  if (!(await exists(ARCHIVE))) return [`no archive at ${ARCHIVE}`];
  const work = await Deno.makeTempDir({ prefix: "f2s-of-watchdog-" });
  try {
    const untar = await run("tar", ["xzf", ARCHIVE, "-C", work], {});
    if (!untar.ok) return [`could not unpack ${ARCHIVE}: ${untar.error}`];
    await Deno.mkdir(dir, { recursive: true });
    const built = await run(
      "go",
      ["build", "-mod=vendor", "-o", binary, "."],
      {},
      `${work}/of-watchdog`,
    );
    return built.ok ? binary : [`go build -mod=vendor failed: ${built.error}`];
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}

async function fromModule(): Promise<string | string[]> {
  const dir = `${CACHE}/of-watchdog-${OF_WATCHDOG_VERSION.slice(0, 12)}`;
  const binary = `${dir}/of-watchdog`;
  const failed = `${dir}/.unavailable`;
  if (await exists(binary)) return binary;
  const failedAt = await Deno.stat(failed).then((s) => s.mtime?.getTime() ?? 0, () => 0);
  // A failure is remembered for a day, so each run does not wait on the module proxy again.
  if (Date.now() - failedAt < 86_400_000) return [await Deno.readTextFile(failed)];
  await Deno.mkdir(dir, { recursive: true });
  const r = await run("go", ["install", `${OF_WATCHDOG_MODULE}@${OF_WATCHDOG_VERSION}`], {
    GOBIN: dir,
  });
  if (r.ok && await exists(binary)) return binary;
  await Deno.writeTextFile(failed, r.error);
  return [r.error];
}

async function standIn(): Promise<string> {
  const source = await Deno.readFile(`${ROOT}bench/gowatchdog/main.go`);
  const hash = Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", source)))
    .slice(0, 6).map((b) => b.toString(16).padStart(2, "0")).join("");
  const path = `${CACHE}/gowatchdog-${hash}/gowatchdog`;
  if (!(await exists(path))) {
    const r = await run("go", ["build", "-o", path, "."], {}, `${ROOT}bench/gowatchdog`);
    if (!r.ok) throw new Error(`could not build bench/gowatchdog: ${r.error}`);
  }
  return path;
}

/** The binary to compare with (see the top comment), built when needed. */
export async function ensureWatchdog(): Promise<WatchdogBinary> {
  const why: string[] = [];
  if (portTaken(METRICS_PORT)) {
    why.push(
      `port ${METRICS_PORT}, which the real of-watchdog always binds, is taken on this host`,
    );
  } else {
    for (const attempt of [fromArchive, fromModule]) {
      const got = await attempt();
      if (typeof got === "string") {
        return {
          path: got,
          label: "of-watchdog",
          real: true,
          note: `of-watchdog: the real one (${got})`,
        };
      }
      why.push(...got);
    }
  }
  return {
    path: await standIn(),
    label: "watchdog*",
    real: false,
    note: `* the real of-watchdog did not run (${why.join("; ")}); bench/gowatchdog stands in: ` +
      "the same http and streaming modes on Go's net/http.",
  };
}

let running = false;

/**
 * Starts one watchdog with `env` (mode, upstream_url or fprocess …) on a free port and waits
 * until it listens; the caller must `stop()` it (in a finally) before starting another.
 */
export async function startWatchdog(
  bin: WatchdogBinary,
  env: Record<string, string>,
  cwd?: string,
): Promise<RunningWatchdog> {
  if (bin.real && running) throw new Error("one of-watchdog at a time: stop the other first");
  const port = freePort();
  // Its own session and process group (`detached`: setsid before exec), so stopping it also
  // stops what it started: the stand-in's http-mode fprocess (`sleep 3600`) outlived it holding
  // the stderr pipe, and the bench never exited. Not the `setsid` program as well: run by a
  // group leader it forks, the watchdog lands outside the group and holds the pipe forever.
  const child = new Deno.Command(bin.path, {
    env: { exec_timeout: "30s", ...env, port: String(port) },
    cwd,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    detached: true,
  }).spawn();
  running = true;
  let stopped: Promise<void> | undefined;
  const stop = () =>
    stopped ??= (async () => {
      try {
        Deno.kill(-child.pid, "SIGKILL");
      } catch {
        try {
          child.kill("SIGKILL");
        } catch {
          // Already gone.
        }
      }
      await child.status;
      running = false;
    })();
  // Its log goes nowhere, but the pipe must be drained so it never blocks on it.
  const stderr = new Response(child.stderr).text().catch(() => "");
  try {
    const end = Date.now() + 20_000;
    while (true) {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
        break;
      } catch {
        const status = await Promise.race([
          child.status,
          new Promise<undefined>((r) => setTimeout(() => r(undefined), 50)),
        ]);
        if (status || Date.now() > end) {
          await stop();
          throw new Error(
            `${bin.label} (${env.mode}) did not listen on ${port}: ${(await stderr).slice(-500)}`,
          );
        }
      }
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return { port, stop };
}
