/**
 * The fizzlet's life: options and their errors, health/readiness answers, and SIGTERM
 * draining in-flight requests (in both modes) before exiting 0 and stopping its app.
 */

import { assert, assertEquals, assertMatch } from "../harness/assert.ts";
import {
  alive,
  eventually,
  EXAMPLES,
  freePort,
  functionDir,
  pidsIn,
  startFizzlet,
} from "./helpers.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

async function runFizzlet(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}main.ts`, "fizzlet", ...args],
    env,
    stdin: "null",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

Deno.test("fizzlet: bad options exit 2 naming the option; --help lists every option", async () => {
  const badMode = await runFizzlet(["--mode", "sideways"]);
  assertEquals(badMode.code, 2);
  assertMatch(badMode.stderr, /--mode must be auto, proxy or command/);
  const badEnv = await runFizzlet([], { F2S_FIZZLET_PORT: "http" });
  assertEquals(badEnv.code, 2);
  assertMatch(badEnv.stderr, /--port must be an integer/);
  const empty = await functionDir({});
  try {
    const noScript = await runFizzlet(["--mode", "command", "--dir", empty, "--port", "0"]);
    assertEquals(noScript.code, 2);
    assertMatch(noScript.stderr, /start\.sh/);
  } finally {
    await Deno.remove(empty, { recursive: true });
  }
  const help = await runFizzlet(["--help"]);
  assertEquals(help.code, 0);
  for (
    const option of [
      "--port",
      "--app-port",
      "--dir",
      "--mode",
      "--timeout",
      "--max-inflight",
      "--queue",
      "--grace",
      "--host",
      "--app-command",
    ]
  ) {
    assert(help.stdout.includes(option), `help lists ${option}`);
  }
});

Deno.test("fizzlet: SIGTERM lets in-flight scripts finish, refuses new work, exits 0", async () => {
  const dir = await functionDir({ "start.sh": "#!/bin/sh\nsleep 1.5\necho finished\n" });
  const f = await startFizzlet({ dir, removeOnFailure: [dir], args: ["--grace", "10s"] });
  try {
    const inflight = fetch(`${f.url}/`, { method: "POST" });
    await eventually(
      async () => (await (await fetch(`${f.url}/f2s/health`)).json()).inflight === 1,
      5000,
      "the request to be in flight",
    );
    Deno.kill(f.pid, "SIGTERM");
    await f.waitForLog((l) => l.msg === "shutting down");
    // The listener is closed: a new connection is refused.
    let refused = false;
    try {
      const r = await fetch(`${f.url}/f2s/health`);
      await r.body?.cancel();
    } catch {
      refused = true;
    }
    assert(refused, "new connections are refused while draining");
    const res = await inflight;
    assertEquals(res.status, 200);
    assertEquals(await res.text(), "finished\n");
    assertEquals((await f.exited).code, 0);
  } finally {
    await f.kill();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fizzlet: SIGTERM in proxy mode drains a slow request, then stops the app", async () => {
  const f = await startFizzlet({
    dir: `${EXAMPLES}/nodejs`,
    args: ["--app-port", String(freePort()), "--app-command", "node server.js"],
  });
  try {
    const app = await f.waitForLog((l) => l.msg === "app started");
    await f.waitForLog((l) => l.msg === "mode changed" && l.mode === "proxy");
    const slow = fetch(`${f.url}/slow?ms=1200`);
    await new Promise((r) => setTimeout(r, 300));
    Deno.kill(f.pid, "SIGTERM");
    const res = await slow;
    assertEquals(res.status, 200);
    assertEquals((await res.json()).slept, 1200);
    assertEquals((await f.exited).code, 0);
    assert(!alive(app.pid as number), "the app stopped with the fizzlet");
  } finally {
    await f.kill();
  }
});

Deno.test("fizzlet: started for a parent (F2S_PARENT_PID) that is no longer its parent, it stops its app and exits 0", async () => {
  // The test runner is its parent, not pid 1: as if the process that started it had died
  // before the fizzlet could ask to follow it.
  const appPort = freePort();
  const f = await startFizzlet({
    dir: `${EXAMPLES}/nodejs`,
    args: ["--app-port", String(appPort), "--app-command", "node server.js"],
    env: { F2S_PARENT_PID: "1" },
  });
  try {
    await f.waitForLog((l) =>
      l.msg === "the process that started the fizzlet is gone; stopping" && l.parentPid === 1
    );
    assertEquals((await f.exited).code, 0);
    // Whether or not its app had started by then, none is left serving.
    const left = await Deno.connect({ hostname: "127.0.0.1", port: appPort }).then(
      (c) => (c.close(), true),
      () => false,
    );
    assert(!left, "no app outlives it");
  } finally {
    await f.kill();
  }
});

Deno.test("fizzlet: past the grace period running scripts are killed and it still exits 0", async () => {
  const dir = await functionDir({ "start.sh": "#!/bin/sh\nsleep 60\n" });
  const f = await startFizzlet({ dir, removeOnFailure: [dir], args: ["--grace", "500ms"] });
  try {
    const stuck = fetch(`${f.url}/`, { method: "POST" }).then(
      async (r) => ({ status: r.status, body: await r.text() }),
      () => ({ status: 0, body: "" }),
    );
    await eventually(
      async () => (await (await fetch(`${f.url}/f2s/health`)).json()).inflight === 1,
      5000,
      "the request to be in flight",
    );
    const started = Date.now();
    Deno.kill(f.pid, "SIGTERM");
    assertEquals((await f.exited).code, 0);
    assert(Date.now() - started < 5000, "the fizzlet does not wait for the script");
    const answer = await stuck;
    assert(answer.status === 503 || answer.status === 0, JSON.stringify(answer));
    await f.waitForLog((l) => l.msg === "grace period over; aborting requests still running");
  } finally {
    await f.kill();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fizzlet: processes the app started outside its session stop with it", async () => {
  const pids = await Deno.makeTempDir({ prefix: "f2s-pids-" });
  const dir = await functionDir({
    "server.js": 'require("node:http").createServer((q, s) => s.end("ok"))' +
      '.listen(Number(process.env.PORT), "127.0.0.1");',
  });
  const command = [
    // A worker in a new session, and a double-forked daemon: no group kill reaches them.
    `setsid sh -c 'echo $$ > ${pids}/worker; exec sleep 300' > /dev/null 2>&1 &`,
    `(setsid sh -c 'echo $$ > ${pids}/daemon; exec sleep 300' > /dev/null 2>&1 &)`,
    "exec node server.js",
  ].join("\n");
  const f = await startFizzlet({
    dir,
    args: ["--app-port", String(freePort()), "--app-command", command],
    removeOnFailure: [dir, pids],
  });
  let left: number[] = [];
  try {
    await f.waitForLog((l) => l.msg === "mode changed" && l.mode === "proxy");
    assertEquals(await (await fetch(f.url)).text(), "ok");
    left = await pidsIn(pids, ["worker", "daemon"]);
    assert(left.every(alive), "the app's processes run");
    assertEquals(await f.stop(), 0);
    await eventually(() => !left.some(alive), 3000, "the app's processes to stop with it");
  } finally {
    for (const p of left) if (alive(p)) Deno.kill(p, "SIGKILL");
    await f.kill();
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(pids, { recursive: true });
  }
});
