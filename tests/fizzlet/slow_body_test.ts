/**
 * Command mode against slow senders: a client that sends its body at one byte a second holds
 * no slot (the body is read before a slot is taken), so with --max-inflight 1 four of them do
 * not delay a normal request; and a body slower than --body-timeout gets 408, its folder gone.
 */

import { assert, assertEquals, assertMatch } from "../harness/assert.ts";
import { eventually, functionDir, startFizzlet } from "./helpers.ts";

const encoder = new TextEncoder();

/** A raw connection that sends a request head announcing 100 bytes, then one byte a second. */
async function slowSender(port: number): Promise<{ conn: Deno.TcpConn; stop(): void }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(encoder.encode(
    "POST / HTTP/1.1\r\nhost: fizzlet\r\ncontent-type: text/plain\r\ncontent-length: 100\r\n\r\n",
  ));
  const timer = setInterval(() => conn.write(encoder.encode("x")).catch(() => {}), 1000);
  return {
    conn,
    stop() {
      clearInterval(timer);
      try {
        conn.close();
      } catch {
        // Closed by the server already.
      }
    },
  };
}

/** Milliseconds a normal request takes; its answer is checked. */
async function timedRequest(url: string): Promise<number> {
  const started = performance.now();
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "text/plain" },
    body: "fast",
    signal: AbortSignal.timeout(10_000),
  });
  assertEquals([res.status, await res.text()], [200, "fast"]);
  return performance.now() - started;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

Deno.test("command: four 1-byte/s senders do not delay a normal request (max-inflight 1)", async () => {
  const dir = await functionDir({ "start.sh": '#!/bin/sh\ncat "$1"\n' });
  const f = await startFizzlet({
    dir,
    args: ["--mode", "command", "--max-inflight", "1"],
    removeOnFailure: [dir],
  });
  const senders: { stop(): void }[] = [];
  try {
    for (let i = 0; i < 3; i++) await timedRequest(f.url); // warm-up
    const baseline: number[] = [];
    for (let i = 0; i < 5; i++) baseline.push(await timedRequest(f.url));
    for (let i = 0; i < 4; i++) senders.push(await slowSender(f.port));
    // Every sender has sent its head and a byte or two: each is a request receiving its body.
    await new Promise((r) => setTimeout(r, 1500));
    const during: number[] = [];
    for (let i = 0; i < 5; i++) during.push(await timedRequest(f.url));
    const health = await (await fetch(`${f.url}/f2s/health`)).json();
    assertEquals([health.inflight, health.queued], [0, 0], "slow senders hold no slot");
    const [before, after] = [median(baseline), median(during)];
    console.log(
      `normal request: ${before.toFixed(1)} ms alone, ${after.toFixed(1)} ms beside 4 slow senders`,
    );
    assert(after - before <= 100, `delayed by ${(after - before).toFixed(1)} ms`);
  } finally {
    for (const s of senders) s.stop();
    assertEquals(await f.stop(), 0);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("command: a body slower than --body-timeout gets 408 and leaves no folder", async () => {
  const dir = await functionDir({ "start.sh": '#!/bin/sh\ncat "$1"\n' });
  const tmp = await Deno.makeTempDir({ prefix: "f2s-body-timeout-" });
  const f = await startFizzlet({
    dir,
    args: ["--mode", "command", "--body-timeout", "1s"],
    env: { TMPDIR: tmp },
    removeOnFailure: [dir, tmp],
  });
  let sender: { conn: Deno.TcpConn; stop(): void } | undefined;
  try {
    const started = performance.now();
    sender = await slowSender(f.port);
    let head = "";
    const buf = new Uint8Array(4096);
    while (!head.includes("\r\n\r\n")) {
      const n = await sender.conn.read(buf);
      if (n === null) break;
      head += new TextDecoder().decode(buf.subarray(0, n));
    }
    const took = performance.now() - started;
    assertMatch(head, /^HTTP\/1\.1 408 /);
    assert(took >= 900 && took < 5000, `408 after ${took.toFixed(0)} ms`);
    await f.waitForLog((l) => l.msg === "request body not received in time");
    // A normal request still works, and the slow request's folder is gone.
    const res = await fetch(f.url, { method: "POST", body: "ok" });
    assertEquals(await res.text(), "ok");
    // The script shells' folder (f2s-shell-*) stays while the fizzlet runs.
    await eventually(
      async () =>
        !(await Array.fromAsync(Deno.readDir(tmp))).some((e) => e.name.startsWith("f2s-request-")),
      3000,
      "request folders to be removed",
    );
    sender.stop();
    assertEquals(await f.stop(), 0);
    assertEquals(await Array.fromAsync(Deno.readDir(tmp)), [], "nothing left after the stop");
  } finally {
    sender?.stop();
    assertEquals(await f.stop(), 0);
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(tmp, { recursive: true });
  }
});
