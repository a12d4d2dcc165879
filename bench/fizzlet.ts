/**
 * `deno task bench fizzlet [--seconds N] [--connections N] [--rounds N] [--only proxy|command]`:
 * what the fizzlet costs, as ratios against references measured in the same run.
 *
 * Proxy mode: throughput and p50/p99 of GET through the fizzlet in front of examples/nodejs,
 * against the app hit directly, nginx (Debian package) proxying the same app, and
 * of-watchdog in http mode. Command mode: time per request above running start.sh
 * directly, beside of-watchdog's fork (streaming) mode on the same script: file mode, stdin
 * mode and of-watchdog take turns for `--rounds` rounds (3) at 1 and at 8 connections, and the
 * table shows each one's medians, the throughput ratio its median round.
 *
 * The of-watchdog binary comes from bench/watchdog.ts (the real one from its source archive when
 * it builds, else a stand-in; the report says which), one at a time.
 */

import { parseArgs } from "node:util";
import { load, type LoadResult, median, medianOf } from "./load.ts";
import { ensureWatchdog, exists, startWatchdog } from "./watchdog.ts";

const ROOT = new URL("../", import.meta.url).pathname;

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function waitForPort(port: number, what: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`${what} did not listen on port ${port} within ${timeoutMs}ms`);
}

async function which(name: string): Promise<string | null> {
  for (const dir of [...(Deno.env.get("PATH") ?? "").split(":"), "/usr/sbin", "/sbin"]) {
    if (await exists(`${dir}/${name}`)) return `${dir}/${name}`;
  }
  return null;
}

export async function run(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      seconds: { type: "string", default: "5" },
      connections: { type: "string", default: "50" },
      rounds: { type: "string", default: "3" },
      only: { type: "string" },
    },
  });
  const only = values.only;
  if (only !== undefined && only !== "proxy" && only !== "command") {
    throw new Error(`--only must be proxy or command, got "${only}"`);
  }
  const seconds = Number(values.seconds);
  const connections = Number(values.connections);
  const rounds = Number(values.rounds);
  const work = await Deno.makeTempDir({ prefix: "f2s-bench-fizzlet-" });
  const children: Deno.ChildProcess[] = [];
  const spawn = (
    cmd: string,
    cmdArgs: string[],
    env: Record<string, string> = {},
    cwd?: string,
  ) => {
    const child = new Deno.Command(cmd, {
      args: cmdArgs,
      env,
      cwd,
      stdin: "null",
      stdout: "null",
      stderr: "null",
      detached: true,
    }).spawn();
    children.push(child);
    return child;
  };
  const deno = Deno.execPath();
  try {
    const watchdog = await ensureWatchdog();
    /** A fizzlet with these options on a free port, once it listens. */
    const fizzlet = async (what: string, options: string[]) => {
      const port = freePort();
      const args = ["run", "-A", `${ROOT}main.ts`, "fizzlet", "--port", String(port), ...options];
      spawn(deno, args, { F2S_LOG_LEVEL: "warn" });
      await waitForPort(port, what);
      return port;
    };
    const proxyPart = async () => {
      const nginx = await which("nginx");
      const appPort = freePort();
      spawn("node", ["server.js"], { PORT: String(appPort) }, `${ROOT}examples/nodejs`);
      await waitForPort(appPort, "examples/nodejs");

      const fizzletPort = await fizzlet("fizzlet", [
        "--mode",
        "proxy",
        "--app-port",
        String(appPort),
        "--dir",
        work,
      ]);

      let nginxPort: number | undefined;
      if (nginx) {
        nginxPort = freePort();
        await Deno.mkdir(`${work}/nginx/logs`, { recursive: true });
        await Deno.writeTextFile(
          `${work}/nginx/nginx.conf`,
          `worker_processes 1;
  daemon off;
  pid ${work}/nginx/nginx.pid;
  error_log ${work}/nginx/logs/error.log warn;
  events { worker_connections 4096; }
  http {
    access_log off;
    client_body_temp_path ${work}/nginx/body;
    proxy_temp_path ${work}/nginx/proxy;
    upstream app { server 127.0.0.1:${appPort}; keepalive 256; }
    server {
      listen 127.0.0.1:${nginxPort};
      location / {
        proxy_pass http://app;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      }
    }
  }
  `,
        );
        spawn(nginx, ["-p", `${work}/nginx`, "-c", `${work}/nginx/nginx.conf`]);
        await waitForPort(nginxPort, "nginx");
      }

      const opts = { connections, seconds };
      const path = "/bench?x=1";
      console.log(
        `proxy mode: GET ${path} on examples/nodejs, ${connections} connections, ${seconds}s each`,
      );
      const rows: [string, LoadResult][] = [];
      rows.push(["app direct", await load(`http://127.0.0.1:${appPort}${path}`, opts)]);
      rows.push(["fizzlet", await load(`http://127.0.0.1:${fizzletPort}${path}`, opts)]);
      if (nginxPort) rows.push(["nginx", await load(`http://127.0.0.1:${nginxPort}${path}`, opts)]);
      // One of-watchdog at a time (it binds :8081): each is stopped before the next starts.
      const httpWatchdog = await startWatchdog(watchdog, {
        mode: "http",
        upstream_url: `http://127.0.0.1:${appPort}`,
        fprocess: "sleep 3600",
      });
      try {
        rows.push([
          `${watchdog.label} http`,
          await load(`http://127.0.0.1:${httpWatchdog.port}${path}`, opts),
        ]);
      } finally {
        await httpWatchdog.stop();
      }
      printTable(rows);
      const byName = new Map(rows);
      const f = byName.get("fizzlet")!;
      for (const [name, r] of rows.slice(2)) {
        console.log(
          `fizzlet vs ${name}: throughput ${ratio(f.rps, r.rps)}, p50 ${
            ratio(f.p50Ms, r.p50Ms)
          }, ` +
            `p99 ${ratio(f.p99Ms, r.p99Ms)}`,
        );
      }
      if (!nginx) console.log("nginx not installed: run tests/deps/nginx.sh for that comparison");
    };
    const commandPart = async () => {
      // Command mode: one trivial script, measured directly and through each server.
      const fnDir = `${work}/fn`;
      await Deno.mkdir(fnDir);
      await Deno.writeTextFile(`${fnDir}/start.sh`, "#!/bin/sh\necho '{\"ok\":true}'\n", {
        mode: 0o755,
      });
      const direct = await timeScript(`${fnDir}/start.sh`, seconds);
      const commandFizzlet = (input: string) =>
        fizzlet(`fizzlet (command mode, --input ${input})`, [
          "--mode",
          "command",
          "--input",
          input,
          "--dir",
          fnDir,
          "--queue",
          "1000",
        ]);
      const cmdPort = await commandFizzlet("file");
      const stdinPort = await commandFizzlet("stdin");
      const post = {
        method: "POST",
        body: '{"name":"bench"}',
        headers: { "content-type": "application/json" },
        seconds,
      };
      const fork = await startWatchdog(watchdog, {
        mode: "streaming",
        fprocess: `${fnDir}/start.sh /dev/stdin`,
      }, fnDir);
      const cmdRows: [string, LoadResult][] = [];
      /** Each round's throughput ratio to of-watchdog's, by target and connections. */
      const roundRatios = new Map<string, number[]>();
      try {
        for (const connections of [1, 8]) {
          // The three take turns, round after round (as in bench e2e and dispatcher): this
          // machine's load drifts, and alternating spreads the drift over all of them.
          const targets: [string, number][] = [
            [`fizzlet command, ${connections} conn`, cmdPort],
            [`fizzlet stdin, ${connections} conn`, stdinPort],
            [`${watchdog.label} fork, ${connections} conn`, fork.port],
          ];
          const runs = targets.map((): LoadResult[] => []);
          for (let round = 0; round < rounds; round++) {
            for (const [i, [, port]] of targets.entries()) {
              runs[i].push(await load(`http://127.0.0.1:${port}/`, { ...post, connections }));
            }
          }
          for (const [i, [name]] of targets.entries()) {
            cmdRows.push([name, medianOf(runs[i])]);
            roundRatios.set(name, runs[i].map((r, n) => r.rps / runs[2][n].rps));
          }
        }
      } finally {
        await fork.stop();
      }
      console.log(
        `\ncommand mode: trivial start.sh; run directly (sh loop) it takes ${
          direct.toFixed(2)
        } ms;` +
          ` ${seconds} s each, ${rounds} alternating rounds; medians`,
      );
      printTable(cmdRows);
      const slots = 2 * navigator.hardwareConcurrency;
      console.log(
        `what runs: every target runs the same start.sh (echo '{"ok":true}') once per request (POST of 16 bytes of ` +
          `JSON).\n  fizzlet command: start.sh <input.json in a request folder>, started by ` +
          `posix_spawn (own session; --start spawn, the default), stdout/stderr through pipes read at ` +
          `its exit, at most ${slots} at once (--max-inflight default, 2 x CPUs; the rest queue).\n  fizzlet stdin: ` +
          `start.sh /dev/stdin started the same way, the body written into its stdin pipe before it starts ` +
          `(received whole), stdout answered whole when it ends within 20 ms, else streamed; same ${slots} ` +
          `slots.\n  ${watchdog.label} fork: mode=streaming, fprocess="start.sh ` +
          `/dev/stdin", fork/exec per request, body piped in, no limit on concurrent scripts.`,
      );
      const at = new Map(cmdRows);
      const wd = (c: number) => at.get(`${watchdog.label} fork, ${c} conn`)!;
      /** A target's ratio in each round, and their median (the headline). */
      const rounded = (name: string) => {
        const each = roundRatios.get(name)!;
        return `${median(each).toFixed(2)}x (rounds ${each.map((r) => r.toFixed(2)).join(", ")})`;
      };
      for (const kind of ["command", "stdin"]) {
        const fz = (c: number) => at.get(`fizzlet ${kind}, ${c} conn`)!;
        console.log(
          `fizzlet ${kind}: overhead above running start.sh directly (p50, 1 conn, medians) ` +
            `${(fz(1).p50Ms - direct).toFixed(2)} ms vs ${watchdog.label} fork ${
              (wd(1).p50Ms - direct).toFixed(2)
            } ms; throughput vs ${watchdog.label} fork (median round): 1 conn ` +
            `${rounded(`fizzlet ${kind}, 1 conn`)}, 8 conn ${rounded(`fizzlet ${kind}, 8 conn`)} ` +
            `(goal ≥ 1.0)`,
        );
      }
    };
    if (only !== "command") await proxyPart();
    if (only !== "proxy") await commandPart();
    console.log(`\n${watchdog.note}`);
  } finally {
    for (const child of children) {
      try {
        Deno.kill(-child.pid, "SIGKILL");
      } catch {
        // Already gone.
      }
      await child.status;
    }
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}

/** Mean ms of one run of `script` when a shell runs it in a loop for about `seconds`. */
async function timeScript(script: string, seconds: number): Promise<number> {
  const runs = 200;
  let total = 0;
  let count = 0;
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    const t = performance.now();
    const out = await new Deno.Command("sh", {
      args: [
        "-c",
        `i=0; while [ $i -lt ${runs} ]; do "${script}" /dev/null >/dev/null; i=$((i+1)); done`,
      ],
      stdin: "null",
    }).output();
    if (!out.success) throw new Error(`${script} failed when run directly`);
    total += performance.now() - t;
    count += runs;
  }
  return total / count;
}

function ratio(a: number, b: number): string {
  return `${(a / b).toFixed(2)}x`;
}

function printTable(rows: [string, LoadResult][]): void {
  const ref = rows[0][1];
  console.log(
    `${"target".padEnd(26)}${"req/s".padStart(10)}${"p50 ms".padStart(10)}${
      "p99 ms".padStart(10)
    }` +
      `${"rps/ref".padStart(9)}${"p50/ref".padStart(9)}${"p99/ref".padStart(9)}${
        "errors".padStart(8)
      }`,
  );
  for (const [name, r] of rows) {
    console.log(
      `${name.padEnd(26)}${r.rps.toFixed(0).padStart(10)}${r.p50Ms.toFixed(2).padStart(10)}` +
        `${r.p99Ms.toFixed(2).padStart(10)}${ratio(r.rps, ref.rps).padStart(9)}` +
        `${ratio(r.p50Ms, ref.p50Ms).padStart(9)}${ratio(r.p99Ms, ref.p99Ms).padStart(9)}` +
        `${String(r.errors).padStart(8)}`,
    );
  }
  console.log(`(load: ${ref.tool}; ratios against the first row)`);
}
