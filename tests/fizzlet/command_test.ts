/**
 * Command-line mode with real scripts: failures, timeouts that must kill grandchildren,
 * invalid JSON, non-JSON bodies as files, per-request folders that disappear, and the
 * bounded queue answering 429.
 */

import { assert, assertEquals, assertMatch } from "../harness/assert.ts";
import {
  alive,
  eventually,
  functionDir,
  pidsIn,
  readyFolder,
  type RunningFizzlet,
  startFizzlet,
} from "./helpers.ts";
import { roomyShm } from "../../fizzlet/request_files.ts";

Deno.test("command: a failing script is a 500 with exit code and stderr tail", async () => {
  const dir = await functionDir({
    "start.sh": [
      "#!/bin/sh",
      'i=0; while [ $i -lt 300 ]; do echo "noise line $i" >&2; i=$((i+1)); done',
      "echo 'the real reason' >&2",
      "echo 'partial output'",
      "exit 7",
    ].join("\n"),
  });
  const f = await startFizzlet({ dir, removeOnFailure: [dir], args: ["--mode", "command"] });
  try {
    const res = await fetch(`${f.url}/`, { method: "POST", headers: { "x-request-id": "fail-1" } });
    assertEquals(res.status, 500);
    assertEquals(res.headers.get("content-type"), "application/json");
    const body = await res.json();
    assertEquals(body.error, "start.sh failed");
    assertEquals(body.details.exitCode, 7);
    assertMatch(body.details.stderr, /the real reason\n$/);
    assert(body.details.stderr.length <= 2000, "only the tail of stderr is returned");
    assert(!body.details.stderr.includes("noise line 0\n"), "the head of stderr is not returned");
    // Every stderr line is in the log with the request id.
    await f.waitForLog((l) => l.msg === "script failed" && l.requestId === "fail-1");
    const logged = f.logs().filter((l) => l.msg === "script stderr" && l.requestId === "fail-1");
    assertEquals(logged.length, 301);
  } finally {
    assertEquals(await f.stop(), 0);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("command: past the timeout the whole process group is killed and the answer is 504", async () => {
  const pids = await Deno.makeTempDir({ prefix: "f2s-pids-" });
  const dir = await functionDir({
    "start.sh": [
      "#!/bin/sh",
      // A grandchild that would outlive a naive kill of the script alone.
      `sh -c 'echo $$ > ${pids}/grandchild; exec sleep 300' &`,
      `echo $$ > ${pids}/script`,
      "sleep 300",
    ].join("\n"),
  });
  const f = await startFizzlet({
    dir,
    args: ["--timeout", "700ms"],
    removeOnFailure: [dir, pids],
  });
  try {
    const started = Date.now();
    const res = await fetch(`${f.url}/`, { method: "POST", body: "x" });
    assertEquals(res.status, 504);
    const body = await res.json();
    assertEquals(body.details.timeoutMs, 700);
    assert(Date.now() - started < 5000, "the 504 comes at the timeout");
    const script = Number(await Deno.readTextFile(`${pids}/script`));
    const grandchild = Number(await Deno.readTextFile(`${pids}/grandchild`));
    await eventually(() => !alive(script) && !alive(grandchild), 3000, "the script's group to die");
  } finally {
    assertEquals(await f.stop(), 0);
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(pids, { recursive: true });
  }
});

// Processes that left the script's process group and session: a process-group kill misses them.
const ESCAPEES = (pids: string) => [
  // A grandchild in a new session (setsid), still the script's child.
  `setsid sh -c 'echo $$ > ${pids}/setsid; exec sleep 300' &`,
  // A daemon: new session, double fork, so it is no longer the script's descendant at all.
  `(setsid sh -c 'echo $$ > ${pids}/daemon; exec sleep 300' > /dev/null 2>&1 &)`,
];
// A new session with the request's variables cleared, and one with a made-up marker: found
// while the script still runs.
const CLEARED = (pids: string) => [
  `setsid env -i sh -c 'echo $$ > ${pids}/clean; exec sleep 300' > /dev/null 2>&1 &`,
  `F2S_REQUEST_DIR=/made-up setsid sh -c 'echo $$ > ${pids}/forged; exec sleep 300' >&- 2>&- &`,
];

/**
 * Runs `script(pids)` as start.sh under a fizzlet with `args`, then `check`; afterwards every
 * process that wrote its pid into the pids folder is killed, whatever `check` found.
 */
async function withScript(
  script: (pids: string) => string[],
  args: string[],
  check: (f: RunningFizzlet, pids: string) => Promise<void>,
): Promise<void> {
  const pids = await Deno.makeTempDir({ prefix: "f2s-pids-" });
  const dir = await functionDir({ "start.sh": ["#!/bin/sh", ...script(pids)].join("\n") });
  const f = await startFizzlet({ dir, args, removeOnFailure: [dir, pids] });
  try {
    await check(f, pids);
  } finally {
    for (const entry of Deno.readDirSync(pids)) {
      const pid = Number(Deno.readTextFileSync(`${pids}/${entry.name}`));
      if (pid > 0 && alive(pid)) Deno.kill(pid, "SIGKILL");
    }
    assertEquals(await f.stop(), 0);
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(pids, { recursive: true });
  }
}

Deno.test("command: past the timeout processes that left the session (setsid) are killed too", () =>
  withScript(
    (pids) => [...ESCAPEES(pids), ...CLEARED(pids), `echo $$ > ${pids}/script`, "sleep 300"],
    ["--timeout", "1s"],
    async (f, pids) => {
      const res = await fetch(`${f.url}/`, { method: "POST", body: "x" });
      assertEquals(res.status, 504);
      await res.body?.cancel();
      const all = await pidsIn(pids, ["script", "setsid", "daemon", "clean", "forged"]);
      await eventually(() => !all.some(alive), 3000, "every process of the request to die");
    },
  ));

Deno.test("command: after a normal exit processes that left the session are killed too", () =>
  withScript(
    (pids) => [
      ...ESCAPEES(pids),
      // Waits until every escapee has written its pid, then answers.
      `while [ ! -s ${pids}/setsid ] || [ ! -s ${pids}/daemon ]; do sleep 0.05; done`,
      "echo done",
    ],
    [],
    async (f, pids) => {
      const started = Date.now();
      const res = await fetch(`${f.url}/`, { method: "POST", body: "x" });
      assertEquals([res.status, await res.text()], [200, "done\n"]);
      // The setsid grandchild holds the script's stdout: the answer does not wait long for it.
      assert(Date.now() - started < 900, `answer took ${Date.now() - started} ms`);
      const all = await pidsIn(pids, ["setsid", "daemon"]);
      await eventually(() => !all.some(alive), 3000, "every leftover process to die");
    },
  ));

Deno.test("command stdin: after a normal exit what the script left running is killed too", () =>
  withScript(
    (pids) => [
      // Both let go of the script's stdout (a holder would keep the streamed answer open).
      `sh -c 'echo $$ > ${pids}/background; exec sleep 300' > /dev/null 2>&1 &`,
      `(setsid sh -c 'echo $$ > ${pids}/daemon; exec sleep 300' > /dev/null 2>&1 &)`,
      `while [ ! -s ${pids}/background ] || [ ! -s ${pids}/daemon ]; do sleep 0.05; done`,
      "echo done",
    ],
    ["--input", "stdin"],
    async (f, pids) => {
      const res = await fetch(`${f.url}/`, { method: "POST", body: "x" });
      assertEquals([res.status, await res.text()], [200, "done\n"]);
      const all = await pidsIn(pids, ["background", "daemon"]);
      await eventually(() => !all.some(alive), 3000, "every leftover process to die");
    },
  ));

Deno.test("command: killing one request's processes leaves a concurrent request alone", () =>
  withScript(
    (pids) => [
      `if [ "$F2S_PATH" = /victim ]; then echo $$ > ${pids}/victim; exec sleep 300; fi`,
      // The survivor starts after the victim, so the victim's sweep looks at its processes.
      `sleep 1 & echo $! > ${pids}/survivor; wait $!; echo survived`,
    ],
    [],
    async (f, pids) => {
      const victim = new AbortController();
      const first = fetch(`${f.url}/victim`, { method: "POST", signal: victim.signal })
        .catch(() => undefined);
      await pidsIn(pids, ["victim"]);
      const second = fetch(`${f.url}/survivor`, { method: "POST" });
      const [survivor] = await pidsIn(pids, ["survivor"]);
      victim.abort(); // client gone: the victim's processes are swept now
      await first;
      const [gone] = await pidsIn(pids, ["victim"]);
      await eventually(() => !alive(gone), 3000, "the victim's script to die");
      assert(alive(survivor), "the other request's process still runs");
      const res = await second;
      assertEquals([res.status, await res.text()], [200, "survived\n"]);
    },
  ));

Deno.test("command: bodies become files, invalid JSON is a 400, folders are removed", async () => {
  const dir = await functionDir({
    "start.sh": [
      "#!/bin/sh",
      // Proves the body is a file in a private folder and reports where that folder was.
      'printf \'{"file":"%s","dir":"%s","args":%s,"size":%s,"mode":"%s"}\' \\',
      '  "$(basename "$1")" "$F2S_REQUEST_DIR" "$#" "$(wc -c < "$1")" \\',
      '  "$(stat -c %a "$F2S_REQUEST_DIR")"',
    ].join("\n"),
  });
  const f = await startFizzlet({ dir, removeOnFailure: [dir] });
  try {
    const bad = await fetch(`${f.url}/`, {
      method: "POST",
      headers: { "content-type": "application/json; charset=utf-8" },
      body: '{"name": "Ada",',
    });
    assertEquals(bad.status, 400);
    const error = await bad.json();
    assertEquals(error.error, "request body is not valid JSON");
    assert(typeof error.details === "string" && error.details.length > 0, "names the parse error");

    const binary = new Uint8Array(300_000).map((_, i) => i % 251);
    const bin = await fetch(`${f.url}/`, {
      method: "POST",
      headers: { "content-type": "application/octet-stream" },
      body: binary,
    });
    const b = await bin.json();
    assertEquals(b.file, "input.bin");
    assertEquals(b.args, 1);
    assertEquals(b.size, 300_000);
    assertEquals(b.mode, "700");

    const text = await fetch(`${f.url}/`, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: "--help; rm -rf / $(whoami)",
    });
    const t = await text.json();
    assertEquals(t.file, "input.txt");
    assertEquals(t.size, 26);

    const json = await fetch(`${f.url}/`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"ok":true}',
    });
    const j = await json.json();
    assertEquals(j.file, "input.json");
    for (const folder of [b.dir, t.dir, j.dir]) {
      assert(folder.length > 0);
      await eventually(
        async () => {
          try {
            await Deno.stat(folder);
            return false;
          } catch {
            return true;
          }
        },
        3000,
        `${folder} to be removed`,
      );
    }
    assert(new Set([b.dir, t.dir, j.dir]).size === 3, "every request has its own folder");
  } finally {
    assertEquals(await f.stop(), 0);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("command: the next JSON request's folder is made while a script runs, private, taken by that request alone and removed at stop", async () => {
  if (!roomyShm()) return; // made ahead only in memory (/dev/shm)
  const dir = await functionDir({
    "start.sh": [
      "#!/bin/sh",
      'printf \'{"dir":"%s","file":"%s","input":%s}\' "$F2S_REQUEST_DIR" "$(basename "$1")" \\',
      '  "$(cat "$1" | od -An -tx1 | tr -d " \\n" | sed \'s/.*/"&"/\')"',
    ].join("\n"),
  });
  const f = await startFizzlet({ dir, removeOnFailure: [dir] });
  const spareFolder = () => readyFolder(f.pid);
  const hex = (text: string) =>
    Array.from(new TextEncoder().encode(text), (b) => b.toString(16).padStart(2, "0")).join("");
  const post = async (body: string, type = "application/json") => {
    const res = await fetch(`${f.url}/`, {
      method: "POST",
      headers: { "content-type": type },
      body,
    });
    return { status: res.status, body: await res.json() };
  };
  const gone = async (folder: string) => await Deno.stat(folder).then(() => false, () => true);
  try {
    const first = await post('{"n":1}');
    assertEquals(first.body.input, hex('{"n":1}'));
    const spare = await spareFolder();
    assert(spare !== undefined, "a folder is ready for the next request");
    assert(spare !== first.body.dir, "not the folder of the request that ran");
    assertEquals((await Deno.stat(spare)).mode! & 0o777, 0o700);
    const made = await Deno.stat(`${spare}/input.json`);
    assertEquals([made.size, made.mode! & 0o777], [0, 0o600]);

    // Another type writes its own file: the folder stays for the next JSON request.
    const text = await post("plain words", "text/plain");
    assertEquals([text.body.file, text.body.input], ["input.txt", hex("plain words")]);
    assert(text.body.dir !== spare);
    assertEquals(await spareFolder(), spare);

    // A JSON request takes it, with exactly its body in input.json and nothing else left there.
    const second = await post('{"n":2,"s":"ünïcode"}');
    assertEquals(second.body.dir, spare);
    assertEquals([second.body.file, second.body.input], [
      "input.json",
      hex('{"n":2,"s":"ünïcode"}'),
    ]);
    await eventually(() => gone(spare), 3000, `${spare} to be removed after its request`);
    const next = await spareFolder();
    assert(next !== undefined && next !== spare, "the next one is a new folder");

    // Invalid JSON: a 400, and the folder it took goes with it.
    const bad = await post('{"n":');
    assertEquals(bad.status, 400);
    await eventually(() => gone(next), 3000, `${next} to be removed after the 400`);
    assertEquals(await spareFolder(), undefined, "none is made until a script runs again");

    await post("{}");
    const last = await spareFolder();
    assert(last !== undefined);
    assertEquals(await f.stop(), 0);
    assert(await gone(last), "the folder made ahead is removed at stop");
  } finally {
    await f.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("command: the folders a killed fizzlet left are removed by the next one to start; a running one's stay", async () => {
  if (!roomyShm()) return; // the folder made ahead is in /dev/shm only
  const dir = await functionDir({ "start.sh": '#!/bin/sh\necho "$F2S_REQUEST_DIR"\n' });
  const spareOf = async (pid: number): Promise<string> => {
    const folder = await readyFolder(pid);
    if (!folder) throw new Error(`fizzlet ${pid} keeps no folder ready`);
    return folder;
  };
  const exists = (path: string) => Deno.stat(path).then(() => true, () => false);
  const started: RunningFizzlet[] = [];
  const start = async () => {
    const f = await startFizzlet({ dir });
    started.push(f);
    const ran = await fetch(`${f.url}/`, { method: "POST", body: "{}" });
    assertEquals(ran.status, 200);
    // Named after its fizzlet: pid, then start time.
    assertMatch(await ran.text(), new RegExp(`^/dev/shm/f2s-request-${f.pid}-\\d+-`));
    return { f, spare: await spareOf(f.pid) };
  };
  try {
    const killed = await start();
    const running = await start();
    await killed.f.kill(); // SIGKILL: it removes nothing
    assert(await exists(killed.spare), "a killed fizzlet's folder stays behind");
    const next = await start();
    const log = await next.f.waitForLog((l) =>
      l.msg === "removed the request folders of fizzlets gone"
    );
    assert((log.removed as number) >= 1);
    assert(!(await exists(killed.spare)), "removed by the next fizzlet");
    assert(await exists(running.spare), "a running fizzlet's folder is not touched");
    assert(await exists(next.spare));
  } finally {
    for (const f of started) {
      await f.stop();
      await f.kill();
    }
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("command: beyond max-inflight plus the queue, requests get 429 with Retry-After", async () => {
  const dir = await functionDir({ "start.sh": "#!/bin/sh\nsleep 1\necho done\n" });
  const f = await startFizzlet({
    dir,
    removeOnFailure: [dir],
    args: ["--max-inflight", "1", "--queue", "2"],
  });
  try {
    const results = await Promise.all(
      Array.from({ length: 6 }, async () => {
        const res = await fetch(`${f.url}/`, { method: "POST" });
        return {
          status: res.status,
          retryAfter: res.headers.get("retry-after"),
          body: await res.text(),
        };
      }),
    );
    const ok = results.filter((r) => r.status === 200);
    const refused = results.filter((r) => r.status === 429);
    assertEquals(ok.length, 3, JSON.stringify(results));
    assertEquals(refused.length, 3, JSON.stringify(results));
    for (const r of ok) assertEquals(r.body, "done\n");
    for (const r of refused) {
      assertEquals(r.retryAfter, "1");
      assertEquals(JSON.parse(r.body).error, "too many requests");
    }
    const metrics = await (await fetch(`${f.url}/f2s/metrics`)).text();
    assert(metrics.includes('f2s_fizzlet_requests_total{code="429"} 3'), metrics);
  } finally {
    assertEquals(await f.stop(), 0);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("command: a request waiting in the queue at shutdown gets 503 marked not delivered", async () => {
  const dir = await functionDir({ "start.sh": "#!/bin/sh\nsleep 5\necho done\n" });
  const f = await startFizzlet({
    dir,
    removeOnFailure: [dir],
    args: ["--max-inflight", "1", "--queue", "2", "--grace", "300ms"],
  });
  const health = async () => await (await fetch(`${f.url}/f2s/health`)).json();
  try {
    const running = fetch(`${f.url}/`, { method: "POST" });
    await eventually(async () => (await health()).inflight === 1, 5000, "one running request");
    const waiting = fetch(`${f.url}/`, { method: "POST" });
    await eventually(async () => (await health()).queued === 1, 5000, "one queued request");
    const stopped = f.stop();
    const answer = await waiting;
    assertEquals(answer.status, 503);
    assertEquals(answer.headers.get("retry-after"), "1");
    assertEquals(answer.headers.get("x-f2s-not-delivered"), "1");
    assertEquals((await answer.json()).error, "fizzlet is shutting down");
    await (await running).body?.cancel();
    assertEquals(await stopped, 0);
  } finally {
    await f.kill();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("command: hostile path, query and content type reach the script verbatim, never as shell code", async () => {
  const marker = await Deno.makeTempDir({ prefix: "f2s-injection-" });
  const dir = await functionDir({
    "start.sh": '#!/bin/sh\nprintf "%s|%s|%s" "$F2S_PATH" "$F2S_QUERY" "$F2S_CONTENT_TYPE"\n',
  });
  const f = await startFizzlet({ dir, removeOnFailure: [dir, marker] });
  try {
    const evil = `'$(touch ${marker}/a)\`touch ${marker}/b\`;touch ${marker}/c`;
    const type = `text/plain; x="${evil}"`;
    // Raw bytes on the wire, so no client normalises the target.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: f.port });
    const target = `/p'$(id)\`id\`;x?q='${encodeURIComponent(evil)}'$HOME`;
    await conn.write(new TextEncoder().encode(
      `POST ${target} HTTP/1.1\r\nhost: x\r\ncontent-type: ${type}\r\ncontent-length: 2\r\n` +
        "connection: close\r\n\r\nhi",
    ));
    const answer = await new Response(conn.readable).text();
    const body = answer.slice(answer.indexOf("\r\n\r\n") + 4);
    const url = new URL(target, "http://x");
    assertEquals(body, `${url.pathname}|${url.search.slice(1)}|${type}`);
    assertEquals([...Deno.readDirSync(marker)], [], "nothing in the values ran");
  } finally {
    assertEquals(await f.stop(), 0);
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(marker, { recursive: true });
  }
});

// The shells are the fallback where posix_spawn through FFI is not available (--start shells);
// a spawned script's parent is the fizzlet itself, which any script of the same user can kill.
Deno.test("command (--start shells): a script that kills the shell that started it fails alone; the next request runs", async () => {
  const marker = await Deno.makeTempDir({ prefix: "f2s-inject-" });
  const dir = await functionDir({
    "start.sh": [
      "#!/bin/sh",
      'if [ "$F2S_PATH" = /kill ]; then kill -9 $PPID; sleep 0.2; exit 0; fi',
      // A forged answer line in the shell's pipe must not answer for a later request, and a
      // command written into its input must not run.
      'if [ "$F2S_PATH" = /forge ]; then echo "x 1.0 $$ 0" > /proc/$PPID/fd/1; fi',
      `if [ "$F2S_PATH" = /inject ]; then echo "true; touch ${marker}/ran" > /proc/$PPID/fd/0; fi`,
      // The shell's command file sits beside the script's stdout: rewritten, it must not run.
      'if [ "$F2S_PATH" = /rewrite ]; then',
      `  echo "touch ${marker}/rewritten" > "$(dirname "$(readlink /proc/$$/fd/1)")/job" &&`,
      "  echo rewrote && exit 0",
      "fi",
      "echo ok",
    ].join("\n"),
  });
  const f = await startFizzlet({
    dir,
    removeOnFailure: [dir, marker],
    args: ["--max-inflight", "1", "--start", "shells"],
  });
  try {
    const killed = await fetch(`${f.url}/kill`, { method: "POST" });
    assertEquals(killed.status, 500);
    assertEquals((await killed.json()).error, "start.sh could not be run");
    const rewrite = await fetch(`${f.url}/rewrite`, { method: "POST" });
    assertEquals([rewrite.status, await rewrite.text()], [200, "rewrote\n"]);
    for (const path of ["/forge", "/after", "/inject", "/after", "/after"]) {
      const res = await fetch(`${f.url}${path}`, { method: "POST" });
      assertEquals([res.status, await res.text()], [200, "ok\n"], path);
    }
    assertEquals([...Deno.readDirSync(marker)], [], "the written commands did not run");
  } finally {
    assertEquals(await f.stop(), 0);
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(marker, { recursive: true });
  }
});

Deno.test("command: stdout past 64 MiB is a 500, never read into memory; small bodies get a folder in memory", async () => {
  const dir = await functionDir({
    "start.sh": [
      "#!/bin/sh",
      'if [ "$F2S_PATH" = /big ]; then head -c 67108865 /dev/zero; exit 0; fi',
      'if [ "$F2S_PATH" = /flood ]; then cat /dev/zero; fi',
      'if [ "$F2S_PATH" = /flood-stderr ]; then cat /dev/zero >&2; fi',
      'printf "%s" "$F2S_REQUEST_DIR"',
    ].join("\n"),
  });
  const tmp = await Deno.makeTempDir({ prefix: "f2s-output-" });
  const f = await startFizzlet({ dir, env: { TMPDIR: tmp }, removeOnFailure: [dir, tmp] });
  try {
    const big = await fetch(`${f.url}/big`, { method: "POST" });
    assertEquals(big.status, 500);
    assertEquals((await big.json()).error, "start.sh wrote more than the output limit");
    const rss = Number(
      /VmHWM:\s+(\d+)/.exec(await Deno.readTextFile(`/proc/${f.pid}/status`))?.[1] ?? 0,
    );
    console.log(`fizzlet peak memory: ${rss} kB`);
    // A script that never stops writing (to stdout or stderr) is stopped near the limit, long
    // before its timeout (60 s by default).
    for (const path of ["/flood", "/flood-stderr"]) {
      const started = performance.now();
      const flood = await fetch(`${f.url}${path}`, { method: "POST" });
      assertEquals(flood.status, 500, path);
      assertEquals((await flood.json()).error, "start.sh wrote more than the output limit");
      const seconds = (performance.now() - started) / 1000;
      console.log(`${path} stopped after ${seconds.toFixed(2)} s`);
      assert(seconds < 20, `${path} stopped after ${seconds.toFixed(1)} s`);
    }
    // About 55 MiB at rest; holding the output would add 64 MiB.
    assert(rss < 100 * 1024, `the fizzlet's peak memory stayed below 100 MiB: ${rss} kB`);

    const small = await (await fetch(`${f.url}/`, { method: "POST", body: "x" })).text();
    // In memory when /dev/shm is large enough to hold script output too (not a container's
    // default 64 MiB), else in TMPDIR.
    const shm = roomyShm();
    assert(small.startsWith(shm ? "/dev/shm/f2s-request-" : `${tmp}/f2s-request-`), small);
    // A body of unknown length (chunked, streamed) goes to disk: it could be larger than memory
    // allows. (A small one the server has received whole is known to be small.)
    const chunk = new Uint8Array(64 * 1024).fill(120);
    const chunked = await (await fetch(`${f.url}/`, {
      method: "POST",
      body: ReadableStream.from(Array.from({ length: 32 }, () => chunk)),
    })).text();
    assert(chunked.startsWith(`${tmp}/f2s-request-`), chunked);
  } finally {
    assertEquals(await f.stop(), 0);
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("command: a request cut short kills its shell; the 504 has the stderr tail and the next request runs", async () => {
  const dir = await functionDir({
    "start.sh": [
      "#!/bin/sh",
      'if [ "$F2S_PATH" = /slow ]; then echo "slow started" >&2; exec sleep 300; fi',
      "echo ok",
    ].join("\n"),
  });
  const f = await startFizzlet({
    dir,
    removeOnFailure: [dir],
    args: ["--max-inflight", "1", "--timeout", "500ms"],
  });
  try {
    for (let round = 0; round < 2; round++) {
      const slow = await fetch(`${f.url}/slow`, { method: "POST" });
      assertEquals(slow.status, 504);
      assertEquals((await slow.json()).details.stderr, "slow started\n");
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`${f.url}/after`, { method: "POST" });
        assertEquals([res.status, await res.text()], [200, "ok\n"], `round ${round}, ${i}`);
      }
    }
  } finally {
    assertEquals(await f.stop(), 0);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("command: a spawned script's output goes to pipes; one that puts FIFOs in place of its shell's files blocks neither the fizzlet nor later requests", async () => {
  // Spawned (the default), stdout and stderr are pipes: there is no file to put anything in
  // place of, nor one in the request folder.
  const spawned = await functionDir({
    "start.sh": [
      "#!/bin/sh",
      'echo "$(readlink /proc/$$/fd/1) $(readlink /proc/$$/fd/2)"',
      'ls -A "$F2S_REQUEST_DIR"',
    ].join("\n"),
  });
  const s = await startFizzlet({ dir: spawned, removeOnFailure: [spawned] });
  try {
    const res = await fetch(`${s.url}/`, {
      method: "POST",
      body: "{}",
      headers: { "content-type": "application/json" },
    });
    assertEquals(res.status, 200);
    assertMatch(await res.text(), /^pipe:\[\d+\] pipe:\[\d+\]\ninput\.json\n$/);
  } finally {
    assertEquals(await s.stop(), 0);
    await Deno.remove(spawned, { recursive: true });
  }

  const dir = await functionDir({
    "start.sh": [
      "#!/bin/sh",
      'd="$(dirname "$(readlink /proc/$$/fd/1)")"',
      // An open of a FIFO without a peer blocks: the fizzlet must never open these.
      'if [ "$F2S_PATH" = /job ]; then rm -f "$d/job" "$d/stderr"; mkfifo "$d/job" "$d/stderr"; fi',
      'if [ "$F2S_PATH" = /stdout ]; then rm -f "$d/stdout"; mkfifo "$d/stdout"; fi',
      'if [ "$F2S_PATH" = /link ]; then rm -f "$d/job"; ln -s /dev/zero "$d/job"; fi',
      "echo ok",
    ].join("\n"),
  });
  const f = await startFizzlet({
    dir,
    removeOnFailure: [dir],
    args: ["--max-inflight", "1", "--start", "shells"],
  });
  const post = async (path: string) => {
    const res = await fetch(`${f.url}${path}`, {
      method: "POST",
      signal: AbortSignal.timeout(10_000),
    });
    return [res.status, await res.text()];
  };
  try {
    assertEquals(await post("/job"), [200, "ok\n"]);
    assertEquals(await post("/after"), [200, "ok\n"]);
    const [status, body] = await post("/stdout");
    assertEquals(status, 500);
    assertEquals(JSON.parse(String(body)).error, "start.sh output could not be read");
    assertEquals(await post("/after"), [200, "ok\n"]);
    assertEquals(await post("/link"), [200, "ok\n"]);
    assertEquals(await post("/after"), [200, "ok\n"]);
  } finally {
    assertEquals(await f.stop(), 0);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("command: start.sh without #!, or not executable, runs with sh (spawned and in shells)", async () => {
  for (const start of ["spawn", "shells"]) {
    for (
      const [kind, text, mode] of [
        ["no #!", 'echo "no-shebang $# $(basename "$1")"\n', 0o755],
        ["not executable", '#!/bin/sh\necho "plain $# $(basename "$1")"\n', 0o644],
      ] as const
    ) {
      const dir = await functionDir({});
      await Deno.writeTextFile(`${dir}/start.sh`, text, { mode });
      await Deno.chmod(`${dir}/start.sh`, mode);
      const f = await startFizzlet({
        dir,
        removeOnFailure: [dir],
        args: ["--mode", "command", "--start", start],
      });
      try {
        const res = await fetch(`${f.url}/`, { method: "POST", body: "{}" });
        const want = kind === "no #!" ? "no-shebang 1 input.txt\n" : "plain 1 input.txt\n";
        assertEquals([res.status, await res.text()], [200, want], `${start}, ${kind}`);
      } finally {
        assertEquals(await f.stop(), 0);
        await Deno.remove(dir, { recursive: true });
      }
    }
  }
});

Deno.test("command: the answer is what the script wrote before it exited, read as it ran when it ran long", async () => {
  const dir = await functionDir({
    "start.sh": [
      "#!/bin/sh",
      // Ends at once, leaving behind a process that holds stdout and writes later.
      'if [ "$F2S_PATH" = /held ]; then echo now; (sleep 3; echo late) & exit 0; fi',
      // Runs past the first wait, more than a pipe holds written before and after a pause.
      'if [ "$F2S_PATH" = /long ]; then head -c 200000 /dev/zero | tr "\\0" a; sleep 0.2; echo; echo end; echo done >&2; exit 0; fi',
    ].join("\n"),
  });
  const f = await startFizzlet({ dir, removeOnFailure: [dir] });
  try {
    const started = performance.now();
    const held = await fetch(`${f.url}/held`, { method: "POST" });
    assertEquals([held.status, await held.text()], [200, "now\n"]);
    const ms = performance.now() - started;
    assert(ms < 2000, `answered at the script's exit, not its leftover's (${ms.toFixed(0)} ms)`);
    const long = await fetch(`${f.url}/long`, { method: "POST" });
    assertEquals([long.status, await long.text()], [200, "a".repeat(200_000) + "\nend\n"]);
    await f.waitForLog((l) => l.msg === "script stderr" && l.line === "done");
  } finally {
    assertEquals(await f.stop(), 0);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("command: a 3 MiB answer and 300 kB of stderr arrive whole (read in chunks off the loop)", async () => {
  const dir = await functionDir({
    "start.sh": [
      "#!/bin/sh",
      // 3 MiB of numbered lines on stdout, 300 kB of lines on stderr, then exit 0 or 3.
      "awk 'BEGIN { for (i = 0; i < 3 * 1024 * 1024 / 16; i++) printf \"line %010d\\n\", i }'",
      'awk \'BEGIN { for (i = 0; i < 30000; i++) printf "err %05d\\n", i > "/dev/stderr" }\'',
      '[ "$F2S_PATH" = /fail ] && exit 3',
      "exit 0",
    ].join("\n"),
  });
  const f = await startFizzlet({ dir, removeOnFailure: [dir], args: ["--mode", "command"] });
  try {
    const ok = await fetch(`${f.url}/`, { method: "POST" });
    assertEquals(ok.status, 200);
    const text = await ok.text();
    assertEquals(text.length, 3 * 1024 * 1024);
    assertEquals(text.slice(0, 16), "line 0000000000\n");
    assertEquals(text.slice(-16), `line ${String(3 * 1024 * 1024 / 16 - 1).padStart(10, "0")}\n`);
    const failed = await fetch(`${f.url}/fail`, { method: "POST" });
    assertEquals(failed.status, 500);
    const details = (await failed.json()).details;
    assertEquals(details.exitCode, 3);
    assert(String(details.stderr).endsWith("err 29999\n"), "the tail of stderr");
    await eventually(
      () =>
        f.logs().filter((l) => l.msg === "script stderr" && l.line === "err 29999").length === 2,
      5000,
      "both runs' last stderr line logged",
    );
  } finally {
    assertEquals(await f.stop(), 0);
    await Deno.remove(dir, { recursive: true });
  }
});

// Mount namespaces need root (CAP_SYS_ADMIN); CI runs as root, elsewhere this test is skipped.
const canUnshare = (() => {
  try {
    return new Deno.Command("unshare", { args: ["-m", "true"], stderr: "null" }).outputSync()
      .success;
  } catch {
    return false;
  }
})();

Deno.test({
  name:
    "command: with a container's small /dev/shm (64 MiB), request folders and output go to TMPDIR",
  ignore: !canUnshare,
  fn: async () => {
    const dir = await functionDir({ "start.sh": '#!/bin/sh\nprintf "%s" "$F2S_REQUEST_DIR"\n' });
    const tmp = await Deno.makeTempDir({ prefix: "f2s-smallshm-" });
    const f = await startFizzlet({
      dir,
      env: { TMPDIR: tmp },
      removeOnFailure: [dir, tmp],
      // A private mount namespace with a 64 MiB tmpfs on /dev/shm, as in a default pod.
      wrap: [
        "unshare",
        "-m",
        "--",
        "sh",
        "-c",
        'mount -t tmpfs -o size=64m tmpfs /dev/shm && exec "$@"',
        "sh",
      ],
    });
    try {
      // The host's /dev/shm (large) is still listed below the small one mounted over it.
      const res = await fetch(`${f.url}/`, { method: "POST", body: "x" });
      const folder = await res.text();
      assertEquals(res.status, 200);
      assert(folder.startsWith(`${tmp}/f2s-request-`), folder);
    } finally {
      assertEquals(await f.stop(), 0);
      await Deno.remove(dir, { recursive: true });
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
