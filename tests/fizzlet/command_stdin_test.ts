/**
 * Streaming command mode (`--input stdin`) with real scripts: 1 GiB through `cat` with the
 * fizzlet's memory flat, a script that answers before it reads, one that exits without
 * reading, failures before and after the first byte, the timeout to the first byte and the
 * maximum duration of a streaming answer.
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
