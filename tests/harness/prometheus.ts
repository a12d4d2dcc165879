/**
 * Starts Debian's `prometheus` (installed by tests/deps/prometheus.sh) for tests: a temporary
 * storage folder, a free loopback port, the given scrape targets at the given interval, and
 * `stop()` that ends the process and removes everything it wrote.
 */

import { freePort } from "../../common/self.ts";

export interface PrometheusOptions {
  /** host:port of every endpoint to scrape (path /metrics). */
  targets: string[];
  /** Default "1s". */
  scrapeInterval?: string;
  /** How long start-up may take (ms); default 30 s. */
  timeoutMs?: number;
}

export interface PrometheusServer {
  /** Base URL, e.g. http://127.0.0.1:40123 (what `prometheus.url` in the config takes). */
  url: string;
  /** Runs an instant query and returns its vector result (throws on an API error). */
  query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]>;
  /** Resolves once every target has been scraped successfully. */
  waitForTargetsUp(timeoutMs?: number): Promise<void>;
  /** The process's output so far, for failure messages. */
  output(): string;
  stop(): Promise<void>;
}

export async function startPrometheus(options: PrometheusOptions): Promise<PrometheusServer> {
  // Another process can take the free port before Prometheus binds it: try a few ports.
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(options);
    } catch (e) {
      lastError = e;
      if (!String(e).includes("address already in use")) throw e;
    }
  }
  throw lastError;
}

async function startOnce(options: PrometheusOptions): Promise<PrometheusServer> {
  const dir = await Deno.makeTempDir({ prefix: "f2s-prometheus-" });
  const interval = options.scrapeInterval ?? "1s";
  const config = [
    "global:",
    `  scrape_interval: ${interval}`,
    `  scrape_timeout: ${interval}`,
    `  evaluation_interval: ${interval}`,
    "scrape_configs:",
    "  - job_name: f2s",
    "    metrics_path: /metrics",
    "    static_configs:",
    `      - targets: [${options.targets.map((t) => JSON.stringify(t)).join(", ")}]`,
    "",
  ].join("\n");
  await Deno.writeTextFile(`${dir}/prometheus.yml`, config);
  const port = freePort();
  const url = `http://127.0.0.1:${port}`;
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("prometheus", {
      args: [
        `--config.file=${dir}/prometheus.yml`,
        `--storage.tsdb.path=${dir}/data`,
        `--web.listen-address=127.0.0.1:${port}`,
        "--storage.tsdb.retention.time=1h",
        "--log.level=warn",
      ],
      cwd: dir,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw new Error(
      `cannot run prometheus (install it with tests/deps/prometheus.sh): ${(e as Error).message}`,
    );
  }
  let output = "";
  const keep = (stream: ReadableStream<Uint8Array>) =>
    stream.pipeThrough(new TextDecoderStream()).pipeTo(
      new WritableStream({
        write(chunk) {
          // The tail is what explains a failure; keep it bounded.
          output = (output + chunk).slice(-64_000);
        },
      }),
    ).catch(() => {});
  const drained = Promise.all([keep(child.stdout), keep(child.stderr)]);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });

  let stopped: Promise<void> | undefined;
  const stop = () => {
    if (stopped) return stopped;
    stopped = (async () => {
      if (!exited) {
        try {
          child.kill("SIGTERM");
        } catch {
          // already gone
        }
      }
      const killer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // gone
        }
      }, 10_000);
      await status;
      clearTimeout(killer);
      await drained;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    })();
    return stopped;
  };

  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  try {
    while (true) {
      if (exited) throw new Error(`prometheus exited during start-up:\n${output}`);
      if (Date.now() > deadline) throw new Error(`prometheus was not ready in time:\n${output}`);
      try {
        const res = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1000) });
        await res.body?.cancel();
        if (res.ok) break;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (e) {
    await stop();
    throw e;
  }

  async function query(expr: string) {
    const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = await res.json();
    if (body.status !== "success") throw new Error(`query ${expr} failed: ${body.error}`);
    return body.data.result;
  }

  return {
    url,
    query,
    async waitForTargetsUp(timeoutMs = 15_000) {
      const until = Date.now() + timeoutMs;
      let last = "";
      while (Date.now() < until) {
        const res = await fetch(`${url}/api/v1/targets`);
        const body = await res.json();
        const active: { health: string; lastError: string }[] = body.data?.activeTargets ?? [];
        last = JSON.stringify(active.map((t) => [t.health, t.lastError]));
        if (active.length === options.targets.length && active.every((t) => t.health === "up")) {
          return;
        }
        await new Promise((r) => setTimeout(r, 200));
      }
      throw new Error(`prometheus targets not up within ${timeoutMs} ms: ${last}`);
    },
    output: () => output,
    stop,
  };
}
