/**
 * HTTP load for benchmarks: runs wrk (Debian package `wrk`, installed by tests/deps/nginx.sh)
 * when it is on PATH, else a bounded Deno load loop, and returns throughput and latency
 * percentiles in one shape either way. Every run is bounded by its duration.
 */

export interface LoadOptions {
  /** Concurrent connections (default 50). */
  connections?: number;
  /** Measured time in seconds (default 5). */
  seconds?: number;
  /** Unmeasured warm-up before, in seconds (default 1). */
  warmup?: number;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  /** Force the Deno loop even when wrk exists. */
  tool?: "wrk" | "deno";
}

export interface LoadResult {
  tool: "wrk" | "deno";
  requests: number;
  /** Requests per second. */
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** Non-2xx/3xx answers plus socket errors. */
  errors: number;
}

let wrkPath: string | null | undefined;

/** Path of wrk, or null when it is not installed. */
export async function findWrk(): Promise<string | null> {
  if (wrkPath !== undefined) return wrkPath;
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      const path = `${dir}/wrk`;
      if ((await Deno.stat(path)).isFile) return wrkPath = path;
    } catch {
      // Not in this folder.
    }
  }
  return wrkPath = null;
}

/** Runs load against `url` and returns what it measured. */
export async function load(url: string, options: LoadOptions = {}): Promise<LoadResult> {
  const wrk = options.tool === "deno" ? null : await findWrk();
  if (options.warmup ?? 1) {
    await (wrk
      ? runWrk(wrk, url, options, options.warmup ?? 1)
      : runDeno(url, options, options.warmup ?? 1));
  }
  const seconds = options.seconds ?? 5;
  return wrk ? await runWrk(wrk, url, options, seconds) : await runDeno(url, options, seconds);
}

function luaString(s: string): string {
  return JSON.stringify(s); // JSON string escapes are valid Lua escapes for this use.
}

async function runWrk(
  wrk: string,
  url: string,
  options: LoadOptions,
  seconds: number,
): Promise<LoadResult> {
  const connections = options.connections ?? 50;
  const args = ["-t1", `-c${connections}`, `-d${seconds}s`, "--latency", "--timeout", "10s"];
  let script: string | undefined;
  if (options.method || options.body || options.headers) {
    script = await Deno.makeTempFile({ prefix: "f2s-wrk-", suffix: ".lua" });
    const lines = [`wrk.method = ${luaString(options.method ?? "GET")}`];
    if (options.body !== undefined) lines.push(`wrk.body = ${luaString(options.body)}`);
    for (const [k, v] of Object.entries(options.headers ?? {})) {
      lines.push(`wrk.headers[${luaString(k)}] = ${luaString(v)}`);
    }
    await Deno.writeTextFile(script, lines.join("\n") + "\n");
    args.push("-s", script);
  }
  try {
    const out = await new Deno.Command(wrk, { args: [...args, url], stdin: "null" }).output();
    const text = new TextDecoder().decode(out.stdout);
    if (!out.success) throw new Error(`wrk failed: ${new TextDecoder().decode(out.stderr)}`);
    return parseWrk(text);
  } finally {
    if (script) await Deno.remove(script);
  }
}

function toMs(value: string, unit: string): number {
  const n = Number(value);
  return unit === "us" ? n / 1000 : unit === "s" ? n * 1000 : unit === "m" ? n * 60_000 : n;
}

/** Reads wrk's --latency report. */
export function parseWrk(text: string): LoadResult {
  const pct = (p: string) => {
    const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, "m").exec(text);
    if (!m) throw new Error(`wrk output has no ${p}% line:\n${text}`);
    return toMs(m[1], m[2]);
  };
  const requests = Number(/(\d+) requests in/.exec(text)?.[1] ?? NaN);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1] ?? NaN);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const socketErrors = socket ? socket.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  return {
    tool: "wrk",
    requests,
    rps,
    p50Ms: pct("50"),
    p99Ms: pct("99"),
    errors: non2xx + socketErrors,
  };
}

async function runDeno(url: string, options: LoadOptions, seconds: number): Promise<LoadResult> {
  const connections = options.connections ?? 50;
  const end = performance.now() + seconds * 1000;
  const latencies: number[] = [];
  let errors = 0;
  const client = Deno.createHttpClient({ poolMaxIdlePerHost: connections });
  const worker = async () => {
    while (performance.now() < end) {
      const t = performance.now();
      try {
        const res = await fetch(url, {
          method: options.method ?? "GET",
          headers: options.headers,
          body: options.body,
          client,
          signal: AbortSignal.timeout(10_000),
        });
        await res.arrayBuffer();
        if (res.status >= 400) errors++;
        latencies.push(performance.now() - t);
      } catch {
        errors++;
      }
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: connections }, worker));
  const elapsed = (performance.now() - started) / 1000;
  client.close();
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  return {
    tool: "deno",
    requests: latencies.length,
    rps: latencies.length / elapsed,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    errors,
  };
}

/** The middle one of `values` by `by` (the upper of the two middle ones when they are even). */
function mid<T>(values: T[], by: (v: T) => number): T {
  return [...values].sort((a, b) => by(a) - by(b))[Math.floor(values.length / 2)];
}

/** The median of `values`, as `medianOf` takes it. */
export function median(values: number[]): number {
  return mid(values, (v) => v);
}

/** The run with the median throughput, and the median of each latency figure. */
export function medianOf(runs: LoadResult[]): LoadResult {
  const base = mid(runs, (r) => r.rps);
  return {
    ...base,
    p50Ms: mid(runs, (r) => r.p50Ms).p50Ms,
    p99Ms: mid(runs, (r) => r.p99Ms).p99Ms,
  };
}
