/**
 * Streaming command mode (`--input stdin`) with real scripts: 1 GiB through `cat` with the
 * fizzlet's memory flat, a script that answers before it reads, one that exits without
 * reading, failures before and after the first byte, the timeout to the first byte and the
 * maximum duration of a streaming answer. A body received whole goes into the pipe before the
 * start, and a run that ends soon is answered whole: with a length, its stderr logged, a
 * failure after output still cut; what runs on, outgrows the pipe, or leaves something
 * holding it still streams.
 */

import { Buffer } from "node:buffer";
import http from "node:http";
import { assert, assertEquals, assertMatch } from "../harness/assert.ts";
import {
  alive,
  eventually,
  functionDir,
  GiB,
  MEMORY_LIMIT,
  peakMemory,
  type RunningFizzlet,
  sendChunks,
  startFizzlet,
} from "./helpers.ts";

async function stdinFizzlet(script: string[], args: string[] = []): Promise<RunningFizzlet> {
  const dir = await functionDir({ "start.sh": ["#!/bin/sh", ...script].join("\n") });
  const f = await startFizzlet({
    dir,
    removeOnFailure: [dir],
    args: ["--mode", "command", "--input", "stdin", ...args],
  });
  dirs.set(f, dir);
  return f;
}

/** Each fizzlet's function folder, removed when it is stopped. */
const dirs = new WeakMap<RunningFizzlet, string>();

/**
 * POSTs `total` bytes (made chunk by chunk) and counts the answer's bytes as they come back,
 * both at once: node:http, which neither holds the upload nor waits for its end to read.
 */
function roundTrip(
  url: string,
  total: number,
): Promise<{ status: number; received: number; complete: boolean }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: "POST",
      headers: { "content-type": "application/octet-stream", "transfer-encoding": "chunked" },
    }, (res) => {
      let received = 0;
      res.on("data", (d: Buffer) => received += d.length);
      res.on("end", () => resolve({ status: res.statusCode ?? 0, received, complete: true }));
      res.on("error", () => resolve({ status: res.statusCode ?? 0, received, complete: false }));
      res.on("aborted", () => resolve({ status: res.statusCode ?? 0, received, complete: false }));
    });
    req.on("error", reject);
    sendChunks(req, total);
  });
}

/**
 * POSTs `body` with a Content-Length (so the fizzlet has it whole before the script starts)
 * and reads the answer: its status, framing headers, text, whether it ended normally, and
 * when its first byte came (ms after the request was sent).
 */
function postWhole(url: string, body: string): Promise<{
  status: number;
  length?: string;
  chunked: boolean;
  text: string;
  complete: boolean;
  firstByteMs: number;
}> {
  return new Promise((resolve, reject) => {
    const sent = Date.now();
    const req = http.request(url, {
      method: "POST",
      headers: { "content-type": "text/plain", "content-length": String(Buffer.byteLength(body)) },
    }, (res) => {
      let text = "";
      let firstByteMs = -1;
      const done = (complete: boolean) =>
        resolve({
          status: res.statusCode ?? 0,
          length: res.headers["content-length"],
          chunked: res.headers["transfer-encoding"] === "chunked",
          text,
          complete,
          firstByteMs,
        });
      res.on("data", (d: Buffer) => {
        if (firstByteMs < 0) firstByteMs = Date.now() - sent;
        text += d.toString("latin1");
      });
      res.on("end", () => done(true));
      res.on("error", () => done(false));
      res.on("aborted", () => done(false));
    });
    req.on("error", reject);
    // A fizzlet that never answers fails the test rather than hanging it.
    req.setTimeout(30_000, () => req.destroy(new Error("no answer within 30 s")));
    req.end(body);
  });
}

async function stopAndClean(f: RunningFizzlet) {
  try {
    assertEquals(await f.stop(), 0);
  } finally {
    await Deno.remove(dirs.get(f)!, { recursive: true });
  }
}

Deno.test("command stdin: 1 GiB through cat streams both ways with flat memory", async () => {
  const f = await stdinFizzlet(["exec cat"]);
  try {
    const r = await roundTrip(`${f.url}/`, GiB);
    assertEquals(r.status, 200);
    assertEquals(r.received, GiB);
    assert(r.complete);
    const peak = await peakMemory(f.pid);
    console.log(`fizzlet peak memory after 1 GiB each way: ${peak >> 20} MiB`);
    assert(peak < MEMORY_LIMIT, `fizzlet peak memory ${peak >> 20} MiB after 1 GiB each way`);
  } finally {
    await stopAndClean(f);
  }
});

Deno.test("command stdin: a script that writes before reading answers while the body is still coming", async () => {
  const f = await stdinFizzlet(["echo started", "wc -c"]);
  try {
    // The body is larger than any pipe buffer: it flows only while the script reads it.
    const total = 8 * 1024 * 1024;
    const res = await fetch(`${f.url}/`, {
      method: "POST",
      body: new Uint8Array(total),
      headers: { "x-request-id": "writes-first" },
    });
    assertEquals(res.status, 200);
    assertEquals(res.headers.get("transfer-encoding"), "chunked");
    const text = await res.text();
    assertEquals(text.split("\n")[0], "started");
    assertEquals(Number(text.split("\n")[1].trim()), total);
  } finally {
    await stopAndClean(f);
  }
});

Deno.test("command stdin: a script that exits without reading its input answers, the rest of the body is dropped", async () => {
  const f = await stdinFizzlet(["echo 'did not read'"]);
  try {
    const r = await roundTrip(`${f.url}/`, 64 * 1024 * 1024);
    assertEquals(r.status, 200);
    assertEquals(r.received, "did not read\n".length);
    // The fizzlet still serves the next request.
    const again = await fetch(`${f.url}/`, { method: "POST", body: "x" });
    assertEquals(await again.text(), "did not read\n");
  } finally {
    await stopAndClean(f);
  }
});

Deno.test("command stdin: failing before the first byte is a 500 with stderr; after it, the answer is cut", async () => {
  const before = await stdinFizzlet(["cat >/dev/null", "echo 'the reason' >&2", "exit 4"]);
  try {
    const res = await fetch(`${before.url}/`, { method: "POST", body: "x" });
    assertEquals(res.status, 500);
    const body = await res.json();
    assertEquals(body.error, "start.sh failed");
    assertEquals(body.details.exitCode, 4);
    assertMatch(body.details.stderr, /the reason\n$/);
  } finally {
    await stopAndClean(before);
  }
  // Output first, then (later, so the answer's head is out) a failure: the client must not
  // take the truncated answer for a whole one.
  const after = await stdinFizzlet(["echo partial", "sleep 0.3", "exit 4"]);
  try {
    const r = await roundTrip(`${after.url}/`, 10);
    assertEquals(r.status, 200);
    assertEquals(r.complete, false);
  } finally {
    await stopAndClean(after);
  }
});

Deno.test("command stdin: no output before the timeout is a 504; a streaming answer runs past it until max-duration", async () => {
  const pids = await Deno.makeTempDir({ prefix: "f2s-pids-" });
  const silent = await stdinFizzlet([`echo $$ > ${pids}/silent`, "exec sleep 300"], [
    "--timeout",
    "500ms",
  ]);
  try {
    const res = await fetch(`${silent.url}/`, { method: "POST", body: "x" });
    assertEquals(res.status, 504);
    await res.body?.cancel();
    const pid = Number(await Deno.readTextFile(`${pids}/silent`));
    await eventually(() => !alive(pid), 5000, "the silent script is killed at the timeout");
  } finally {
    await stopAndClean(silent);
  }
  const ticking = await stdinFizzlet(
    ["while true; do echo tick; sleep 0.1; done"],
    ["--timeout", "500ms", "--max-duration", "2s"],
  );
  try {
    const started = Date.now();
    const r = await roundTrip(`${ticking.url}/`, 1);
    const took = Date.now() - started;
    assertEquals(r.status, 200);
    assertEquals(r.complete, false, "cut at max-duration, not ended normally");
    assert(took >= 1900, `streamed past the 500 ms timeout until max-duration (${took} ms)`);
    assert(took < 15_000, `cut at max-duration (${took} ms)`);
    assert(r.received > "tick\n".length * 5, `kept streaming (${r.received} bytes)`);
    await ticking.waitForLog((l) => l.msg === "script ran past its maximum duration; cut");
  } finally {
    await stopAndClean(ticking);
    await Deno.remove(pids, { recursive: true });
  }
});

Deno.test("command stdin: a body received whole goes in before the start; a short run answers whole", async () => {
  // Reads its input, writes to both streams, ends at once.
  const f = await stdinFizzlet(['cat; echo "said on $F2S_PATH" >&2']);
  try {
    const r = await postWhole(`${f.url}/here`, "hello");
    assertEquals([r.status, r.text, r.complete], [200, "hello", true]);
    assertEquals([r.length, r.chunked], ["5", false], "answered with its length");
    await f.waitForLog((l) => l.msg === "script stderr" && l.line === "said on /here");
    // An empty body is an empty, closed input.
    const empty = await postWhole(`${f.url}/`, "");
    assertEquals([empty.status, empty.text, empty.length], [200, "", "0"]);
  } finally {
    await stopAndClean(f);
  }
  // Writes, then fails at once: the answer it wrote is still cut, as when it streams.
  const failing = await stdinFizzlet(["echo partial", "echo 'the reason' >&2", "exit 4"]);
  try {
    const r = await postWhole(`${failing.url}/`, "x");
    assertEquals([r.status, r.text, r.complete], [200, "partial\n", false]);
    await failing.waitForLog((l) => l.msg === "script failed after writing; answer cut");
  } finally {
    await stopAndClean(failing);
  }
});

Deno.test("command stdin: what runs on, outgrows the pipe or leaves it held open still streams", async () => {
  // Its first line must not wait for its end.
  const slow = await stdinFizzlet(["echo first", "sleep 2", "echo second"]);
  try {
    const r = await postWhole(`${slow.url}/`, "x");
    assertEquals([r.status, r.text, r.complete, r.chunked], [200, "first\nsecond\n", true, true]);
    assert(r.firstByteMs < 1500, `the first line came ${r.firstByteMs} ms after the request`);
  } finally {
    await stopAndClean(slow);
  }
  // 1 MB of output from a 300 kB input: more than the pipes hold either way.
  const big = await stdinFizzlet(["cat >/dev/null", "head -c 1000000 /dev/zero | tr '\\0' a"]);
  try {
    const r = await postWhole(`${big.url}/`, "b".repeat(300_000));
    assertEquals([r.status, r.text.length, r.complete], [200, 1_000_000, true]);
    assertEquals(r.text, "a".repeat(1_000_000));
  } finally {
    await stopAndClean(big);
  }
  // The script ends at once, leaving a writer as fast as the fizzlet's reads on its stdout: the
  // answer streams (never read whole into memory) until max-duration cuts it and the writer.
  const endless = await stdinFizzlet(["yes &", "exit 0"], ["--max-duration", "1s"]);
  try {
    const started = Date.now();
    const r = await postWhole(`${endless.url}/`, "x");
    assertEquals([r.status, r.complete], [200, false]);
    assert(Date.now() - started < 10_000, "cut at max-duration");
    const peak = await peakMemory(endless.pid);
    assert(peak < MEMORY_LIMIT, `fizzlet peak memory ${peak >> 20} MiB`);
  } finally {
    await stopAndClean(endless);
  }
  // The script ends at once, but what it started holds its stdout and writes later.
  const held = await stdinFizzlet(["echo now", "(sleep 0.5; echo later) &"]);
  try {
    const r = await postWhole(`${held.url}/`, "x");
    assertEquals([r.status, r.text, r.complete], [200, "now\nlater\n", true]);
  } finally {
    await stopAndClean(held);
  }
});

for (const start of ["spawn", "shells"]) {
  const how = start === "spawn" ? "posix_spawn with pipes" : "Deno.Command and setsid";
  Deno.test(`command stdin: 80 at once each get their own answer (${how})`, async () => {
    // Each holds its slot a moment, so all 80 overlap.
    const f = await stdinFizzlet(["sleep 0.3", 'printf "%s:" "$F2S_PATH"', "cat"], [
      "--max-inflight",
      "100",
      "--start",
      start,
    ]);
    try {
      const answers = await Promise.all(Array.from({ length: 80 }, async (_, i) => {
        const res = await fetch(`${f.url}/r${i}`, { method: "POST", body: `body ${i}` });
        return [res.status, await res.text()];
      }));
      assertEquals(answers, Array.from({ length: 80 }, (_, i) => [200, `/r${i}:body ${i}`]));
    } finally {
      await stopAndClean(f);
    }
  });
}
