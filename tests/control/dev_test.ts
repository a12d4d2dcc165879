// End to end through `f2s dev` with real processes: invocation, cold start from zero, live
// manifest changes, CRUD persisted across a restart, error statuses, drain and shutdown.
import { assert, assertEquals, assertMatch } from "../harness/assert.ts";
import { processesMatching, startDev, waitFor } from "../harness/dev.ts";
import { runF2s } from "../harness/cli.ts";
import { copy } from "../harness/files.ts";

const FIXTURES = new URL("./fixtures/", import.meta.url).pathname;

async function functionsDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "f2s-dev-test-" });
  await copy(`${FIXTURES}echo`, `${dir}/echo`);
  return dir;
}

function manifest(
  name: string,
  extra: {
    endpoint?: string;
    min?: number;
    env?: Record<string, string>;
    dir?: string;
    command?: string;
    timeouts?: Record<string, number>;
  } = {},
) {
  return {
    apiVersion: "f2s.opensight.ch/v1alpha1",
    kind: "Function",
    metadata: { name, namespace: "f2s" },
    spec: {
      endpoint: extra.endpoint ?? `/${name}`,
      method: "ANY",
      ...(extra.timeouts ? { timeouts: extra.timeouts } : {}),
    },
    target: {
      containerImage: `f2s-tests/${name}:latest`,
      minReplicas: extra.min ?? 1,
      maxReplicas: 2,
      ...(extra.env ? { env: extra.env } : {}),
      local: { dir: extra.dir ?? "./echo", command: extra.command ?? "node server.js" },
    },
  };
}

function yaml(m: ReturnType<typeof manifest>): string {
  return JSON.stringify(m); // JSON is valid YAML
}

async function json(res: Response) {
  const text = await res.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`not JSON (${res.status}): ${text}`);
  }
}

/** SIGKILL to each of `pids` that is still there. */
function killAll(pids: number[]) {
  for (const pid of pids) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
}

async function cleanup(dir: string, server?: { stop(): Promise<number> }) {
  if (server) await server.stop();
  await waitFor("no processes left in " + dir, () => processesMatching(dir).length === 0, 20_000);
  await Deno.remove(dir, { recursive: true });
}

Deno.test("invoke reaches the function with path suffix, query, headers and request id", async () => {
  const dir = await functionsDir();
  await Deno.writeTextFile(`${dir}/echo.yaml`, yaml(manifest("echo", { min: 1 })));
  const dev = await startDev({ functionsDir: dir });
  try {
    const res = await fetch(`${dev.url}/invoke/echo/items/7?x=1`, {
      method: "POST",
      headers: { "x-request-id": "test-req-1", "x-custom": "abc", "content-type": "text/plain" },
      body: "payload",
    });
    const body = await json(res);
    assertEquals(res.status, 200);
    assertEquals(body.method, "POST");
    assertEquals(body.path, "/items/7");
    assertEquals(body.query, { x: "1" });
    assertEquals(body.body, "payload");
    assertEquals(body.headers["x-custom"], "abc");
    assertEquals(body.headers["x-request-id"], "test-req-1");
    assertEquals(res.headers.get("x-request-id"), "test-req-1");
    // A request without an id gets one.
    const res2 = await fetch(`${dev.url}/invoke/echo`);
    await res2.body?.cancel();
    assertMatch(res2.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
  } finally {
    await cleanup(dir, dev);
  }
});

Deno.test("cold start from zero: the request is held until an instance is ready", async () => {
  const dir = await functionsDir();
  await Deno.writeTextFile(`${dir}/echo.yaml`, yaml(manifest("echo", { min: 0 })));
  const dev = await startDev({ functionsDir: dir });
  try {
    const fn = await json(await fetch(`${dev.url}/functions/echo`));
    assertEquals(fn.status.readyReplicas, 0);
    assertEquals(
      processesMatching(`${dir}/echo`).length,
      0,
      "nothing runs before the first request",
    );
    const started = performance.now();
    const res = await fetch(`${dev.url}/invoke/echo`);
    const body = await json(res);
    assertEquals(res.status, 200);
    assert(body.pid > 0);
    const elapsed = performance.now() - started;
    assert(elapsed < 30_000, `cold start took ${elapsed} ms`);
    const metrics = await (await fetch(`${dev.url}/metrics`)).text();
    assertMatch(metrics, /f2s_cold_starts_total\{function="echo"\} 1/);
    assertMatch(metrics, /f2s_cold_start_duration_seconds_count\{function="echo"\} 1/);
    assertMatch(metrics, /f2s_invocations_total\{function="echo",code="200"\} 1/);
    const events = await json(await fetch(`${dev.url}/events?function=echo`));
    assert(
      events.some((e: { type: string }) => e.type === "function.cold_start"),
      "cold start event recorded",
    );
  } finally {
    await cleanup(dir, dev);
  }
});

Deno.test("manifests added, changed and deleted in the folder take effect live", async () => {
  const dir = await functionsDir();
  const dev = await startDev({ functionsDir: dir });
  try {
    assertEquals((await fetch(`${dev.url}/invoke/live`)).status, 404);
    await Deno.writeTextFile(
      `${dir}/live.yaml`,
      yaml(manifest("live", { env: { GREETING: "first" } })),
    );
    const first = await waitFor("function live to answer", async () => {
      const r = await fetch(`${dev.url}/invoke/live`);
      const b = r.ok ? await r.json() : (await r.body?.cancel(), undefined);
      return b?.greeting === "first" ? b : undefined;
    });
    assertEquals(first.greeting, "first");
    await Deno.writeTextFile(
      `${dir}/live.yaml`,
      yaml(manifest("live", { env: { GREETING: "second" } })),
    );
    await waitFor("the change to roll out", async () => {
      const r = await fetch(`${dev.url}/invoke/live`);
      return r.ok && (await r.json()).greeting === "second";
    });
    await Deno.remove(`${dir}/live.yaml`);
    await waitFor("the function to disappear", async () => {
      const r = await fetch(`${dev.url}/functions/live`);
      await r.body?.cancel();
      return r.status === 404;
    });
    await waitFor("its processes to stop", () => processesMatching(`${dir}/echo`).length === 0);
  } finally {
    await cleanup(dir, dev);
  }
});

Deno.test("functions created through the API are written to the folder and survive a restart", async () => {
  const dir = await functionsDir();
  let dev = await startDev({ functionsDir: dir });
  try {
    // A dry run validates like a write but stores nothing.
    const dry = await fetch(`${dev.url}/functions?dryRun=true`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/yaml" },
      body: JSON.stringify(manifest("api-fn", { min: 0, dir: `${dir}/echo` })),
    });
    assertEquals(dry.status, 200);
    assertMatch(await dry.text(), /kind: Function[\s\S]*endpoint: \/api-fn/);
    assertEquals((await json(await fetch(`${dev.url}/functions`))).length, 0);
    const dryBad = await fetch(`${dev.url}/functions?dryRun=true`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...manifest("api-fn"), spec: { endpoint: "bad", method: "GET" } }),
    });
    assertEquals(dryBad.status, 400);
    assertEquals((await json(dryBad)).details[0].path, "spec.endpoint");

    const created = await fetch(`${dev.url}/functions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(manifest("api-fn", { min: 0, dir: `${dir}/echo` })),
    });
    assertEquals(created.status, 201, await created.clone().text());
    assertEquals(created.headers.get("location"), "/functions/api-fn");
    await created.body?.cancel();
    const onDisk = await Deno.readTextFile(`${dir}/api-fn.yaml`);
    assertMatch(onDisk, /endpoint: \/api-fn/);

    const updated = await fetch(`${dev.url}/functions/api-fn`, {
      method: "PUT",
      headers: { "content-type": "application/yaml" },
      body: yaml(manifest("api-fn", { min: 0, dir: `${dir}/echo`, endpoint: "/renamed" })),
    });
    assertEquals(updated.status, 200);
    await updated.body?.cancel();

    await dev.stop();
    dev = await startDev({ functionsDir: dir });
    const list = await json(await fetch(`${dev.url}/functions`));
    assertEquals(list.map((f: { metadata: { name: string } }) => f.metadata.name), ["api-fn"]);
    assertEquals(list[0].spec.endpoint, "/renamed");
    const res = await fetch(`${dev.url}/invoke/renamed/x`);
    assertEquals((await json(res)).path, "/x");

    const deleted = await fetch(`${dev.url}/functions/api-fn`, { method: "DELETE" });
    assertEquals(deleted.status, 204);
    await waitFor("the manifest file to be removed", async () => {
      try {
        await Deno.stat(`${dir}/api-fn.yaml`);
        return false;
      } catch {
        return true;
      }
    });
  } finally {
    await cleanup(dir, dev);
  }
});

Deno.test("every error status: 400, 404, 405, 409, 413, 415, 503, 504", async () => {
  const dir = await functionsDir();
  await Deno.writeTextFile(
    `${dir}/echo.yaml`,
    yaml(manifest("echo", { min: 1, timeouts: { httpTimeout: 400 } })),
  );
  const post = { ...manifest("get-only"), spec: { endpoint: "/get-only", method: "GET" } };
  await Deno.writeTextFile(`${dir}/get-only.yaml`, JSON.stringify(post));
  // An app that never listens: its instance never becomes ready.
  const neverReady = manifest("never-ready", { min: 0, command: "sleep 60" });
  await Deno.writeTextFile(`${dir}/never-ready.yaml`, yaml(neverReady));
  const dev = await startDev({
    functionsDir: dir,
    config: "f2s:\n  timeouts: { scaling_timeout: 800 }\n  max_manifest_bytes: 2048\n",
  });
  const send = (path: string, init?: RequestInit) => fetch(dev.url + path, init);
  try {
    // 400: every problem with its field path.
    let res = await send("/functions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ metadata: { name: "X" }, spec: { endpoint: "x" }, target: {} }),
    });
    const body = await json(res);
    assertEquals(res.status, 400);
    const paths = body.details.map((d: { path: string }) => d.path).sort();
    assertEquals(paths, ["metadata.name", "spec.endpoint", "spec.method", "target.containerImage"]);
    res = await send("/functions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{oops",
    });
    assertEquals(res.status, 400);
    assertMatch((await json(res)).error, /not valid JSON/);
    // 404s
    res = await send("/functions/nope");
    assertEquals(res.status, 404);
    assertMatch((await json(res)).error, /"nope" not found/);
    res = await send("/invoke/nope");
    assertEquals(res.status, 404);
    await res.body?.cancel();
    // 405: wrong method for the function
    res = await send("/invoke/get-only", { method: "POST", body: "x" });
    assertEquals(res.status, 405);
    assertEquals(res.headers.get("allow"), "GET");
    await res.body?.cancel();
    // 409: name taken, endpoint taken
    res = await send("/functions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(manifest("echo")),
    });
    assertEquals(res.status, 409);
    await res.body?.cancel();
    res = await send("/functions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(manifest("other", { endpoint: "/echo" })),
    });
    assertEquals(res.status, 409);
    assertMatch((await json(res)).error, /already used by function "echo"/);
    // 413 and 415
    res = await send("/functions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "x".repeat(5000),
    });
    assertEquals(res.status, 413);
    await res.body?.cancel();
    res = await send("/functions", {
      method: "POST",
      headers: { "content-type": "image/png" },
      body: "x",
    });
    assertEquals(res.status, 415);
    await res.body?.cancel();
    // The rejected writes left nothing behind.
    const names = (await json(await send("/functions"))).map((f: { metadata: { name: string } }) =>
      f.metadata.name
    ).sort();
    assertEquals(names, ["echo", "get-only", "never-ready"]);
    // 503: no instance becomes ready within scaling_timeout.
    res = await send("/invoke/never-ready");
    assertEquals(res.status, 503);
    assertMatch((await json(res)).error, /scaling_timeout \(800 ms\)/);
    // 504: the function is slower than its http_timeout.
    res = await send("/invoke/echo/slow?ms=3000");
    assertEquals(res.status, 504);
    assertMatch((await json(res)).error, /http_timeout \(400 ms\)/);
    // ...and the control plane is fine afterwards.
    res = await send("/invoke/echo");
    assertEquals(res.status, 200);
    await res.body?.cancel();
    const health = await json(await send("/health"));
    assertEquals(health.status, "ok");
  } finally {
    await cleanup(dir, dev);
  }
});

Deno.test("a request in flight finishes when its function is deleted; shutdown leaves no process", async () => {
  const dir = await functionsDir();
  await Deno.writeTextFile(`${dir}/echo.yaml`, yaml(manifest("echo", { min: 1 })));
  const dev = await startDev({ functionsDir: dir });
  try {
    await waitFor(
      "echo ready",
      async () => (await json(await fetch(`${dev.url}/functions/echo`))).status.readyReplicas === 1,
    );
    const slow = fetch(`${dev.url}/invoke/echo/slow?ms=1500`);
    await new Promise((r) => setTimeout(r, 300));
    const del = await fetch(`${dev.url}/functions/echo`, { method: "DELETE" });
    assertEquals(del.status, 204);
    const after = await fetch(`${dev.url}/invoke/echo`);
    assertEquals(after.status, 404, "no new requests after deletion");
    await after.body?.cancel();
    const res = await slow;
    const body = await res.text();
    // Seen once in a whole CI run (a 404): what f2s dev logged says which way it went.
    const logs = () => `${body}\nf2s dev's last log lines:\n${dev.logs().slice(-40).join("\n")}`;
    assertEquals(res.status, 200, `the in-flight request finished: ${logs()}`);
    assertEquals(JSON.parse(body).slept, 1500);
    await Deno.writeTextFile(`${dir}/echo.yaml`, yaml(manifest("echo", { min: 2 })));
    await waitFor(
      "two instances",
      async () => (await json(await fetch(`${dev.url}/functions/echo`))).status.readyReplicas === 2,
    );
    assert(processesMatching(`${dir}/echo`).length >= 2);
    // Shutdown with a request in flight: it completes, then every process is gone.
    const inflight = fetch(`${dev.url}/invoke/echo/slow?ms=1000`);
    await new Promise((r) => setTimeout(r, 200));
    const code = dev.stop("SIGINT");
    const res2 = await inflight;
    assertEquals(res2.status, 200);
    await res2.body?.cancel();
    assertEquals(await code, 0);
    assertEquals(processesMatching(`${dir}/echo`), [], "no orphan survives the control plane");
  } finally {
    await cleanup(dir, dev);
  }
});

Deno.test("f2s dev killed by SIGKILL: its instances and their apps stop within seconds", async () => {
  const dir = await functionsDir();
  await Deno.writeTextFile(`${dir}/echo.yaml`, yaml(manifest("echo", { min: 2 })));
  const dev = await startDev({ functionsDir: dir });
  try {
    await waitFor(
      "two echo instances",
      async () => (await json(await fetch(`${dev.url}/functions/echo`))).status.readyReplicas === 2,
    );
    const running = processesMatching(`${dir}/echo`);
    // Two fizzlets, each with its app (sh and node).
    assert(running.length >= 4, `instances run: ${running.join(", ")}`);
    // No drain, no stop of its instances: the kernel tells each fizzlet (PR_SET_PDEATHSIG).
    const killed = performance.now();
    await dev.stop("SIGKILL");
    await waitFor(
      "no instance outlives its killed control plane",
      () => processesMatching(`${dir}/echo`).length === 0,
      15_000,
    );
    console.log(`all gone ${((performance.now() - killed) / 1000).toFixed(2)} s after the kill`);
  } finally {
    killAll(processesMatching(`${dir}/echo`)); // survivors, should this test fail
    await cleanup(dir, dev);
  }
});

Deno.test("an instance's fizzlet killed by SIGKILL leaves no app behind; the instance comes back and serves", async () => {
  const dir = await functionsDir();
  await Deno.writeTextFile(`${dir}/echo.yaml`, yaml(manifest("echo", { min: 1 })));
  const dev = await startDev({ functionsDir: dir });
  const cmdline = (pid: number) => {
    try {
      return Deno.readTextFileSync(`/proc/${pid}/cmdline`).replaceAll("\0", " ");
    } catch {
      return "";
    }
  };
  try {
    await waitFor(
      "echo ready",
      async () => (await json(await fetch(`${dev.url}/functions/echo`))).status.readyReplicas === 1,
    );
    const before = processesMatching(`${dir}/echo`);
    const fizzlet = before.find((pid) => cmdline(pid).includes(" fizzlet "));
    const app = before.filter((pid) => pid !== fizzlet);
    assert(fizzlet !== undefined && app.length >= 1, `a fizzlet and its app: ${before}`);
    Deno.kill(fizzlet, "SIGKILL");
    // The app has a session of its own: only the control plane can clean up after the fizzlet.
    await waitFor(
      "the killed fizzlet's app gone",
      () => !processesMatching(`${dir}/echo`).some((pid) => app.includes(pid)),
      10_000,
    );
    await waitFor(
      "a log line on what was killed",
      () =>
        dev.logs().some((l) =>
          l.includes("killed what a gone instance left running") && l.includes('"echo-1"')
        ),
    );
    await waitFor(
      "echo ready again",
      async () => (await json(await fetch(`${dev.url}/functions/echo`))).status.readyReplicas === 1,
      20_000,
    );
    const res = await fetch(`${dev.url}/invoke/echo/after`);
    assertEquals(res.status, 200);
    assertEquals((await res.json()).path, "/after");
  } finally {
    await dev.stop();
    killAll(processesMatching(`${dir}/echo`)); // survivors, should this test fail
    await cleanup(dir, dev);
  }
});

Deno.test("f2s dev and a fizzlet killed together: the next f2s dev kills the app left; a live one's are spared", async () => {
  const dir = await functionsDir();
  const liveDir = await functionsDir();
  const emptyDir = await Deno.makeTempDir({ prefix: "f2s-dev-test-" });
  for (const d of [dir, liveDir]) {
    await Deno.writeTextFile(`${d}/echo.yaml`, yaml(manifest("echo", { min: 1 })));
  }
  const live = await startDev({ functionsDir: liveDir });
  const dev = await startDev({ functionsDir: dir });
  let next: Awaited<ReturnType<typeof startDev>> | undefined;
  const ready = (url: string) => async () =>
    (await json(await fetch(`${url}/functions/echo`))).status.readyReplicas === 1;
  try {
    await waitFor("echo ready under both", async () => await ready(dev.url)() && ready(live.url)());
    const liveBefore = processesMatching(`${liveDir}/echo`).sort();
    const before = processesMatching(`${dir}/echo`);
    const fizzlet = before.find((pid) =>
      Deno.readTextFileSync(`/proc/${pid}/cmdline`).includes("\0fizzlet\0")
    );
    const app = before.filter((pid) => pid !== fizzlet);
    assert(fizzlet !== undefined && app.length >= 1, `a fizzlet and its app: ${before}`);
    // What `pkill -9 -f f2s` does: the control plane and the fizzlet die at once, and neither
    // the fizzlet's stop nor the control plane's sweep after it runs. The control plane is
    // frozen first: the kernel would otherwise tell the fizzlet at once (follow_parent.ts),
    // and the control plane could see the fizzlet go.
    Deno.kill(dev.pid, "SIGSTOP");
    Deno.kill(fizzlet, "SIGKILL");
    Deno.kill(dev.pid, "SIGKILL");
    await dev.exited;
    await new Promise((r) => setTimeout(r, 500));
    const left = processesMatching(`${dir}/echo`);
    assert(app.every((pid) => left.includes(pid)), `the app runs on: ${app} vs ${left}`);

    next = await startDev({ functionsDir: emptyDir });
    await waitFor(
      "the app left behind killed",
      () => processesMatching(`${dir}/echo`).length === 0,
    );
    const line = next.logs().find((l) => l.includes("control planes that are gone left running"));
    assert(line, `a log line on what was killed: ${next.logs().join("\n")}`);
    assert(JSON.parse(line).killed >= app.length, line);
    // The control plane still running keeps its instance, which still serves.
    assertEquals(processesMatching(`${liveDir}/echo`).sort(), liveBefore);
    assertEquals((await fetch(`${live.url}/invoke/echo/still`)).status, 200);
  } finally {
    await next?.stop();
    killAll(processesMatching(`${dir}/echo`)); // survivors, should this test fail
    await cleanup(dir, dev);
    await cleanup(liveDir, live);
    await Deno.remove(emptyDir, { recursive: true });
  }
});

Deno.test("with auth on, functions get the caller's identity but never its credentials", async () => {
  const dir = await functionsDir();
  await Deno.writeTextFile(`${dir}/echo.yaml`, yaml(manifest("echo", { min: 1 })));
  const config = `f2s:
  auth:
    global_config: { type: basic }
    basic:
      - { username: ann, password: secret-pass, group: users }
    authorization:
      - group: users
        privileges: [functions:invoke, functions:list]
`;
  const dev = await startDev({ functionsDir: dir, config });
  try {
    // Anonymous callers learn nothing, not even whether an endpoint exists.
    for (const path of ["/invoke/echo", "/invoke/does-not-exist"]) {
      const res = await fetch(dev.url + path);
      assertEquals(res.status, 401);
      await res.body?.cancel();
    }
    const auth = `Basic ${btoa("ann:secret-pass")}`;
    const res = await fetch(`${dev.url}/invoke/echo`, {
      headers: { authorization: auth, "x-f2s-caller": "mallory" },
    });
    const body = await json(res);
    assertEquals(res.status, 200);
    assertEquals(body.headers.authorization, undefined);
    assertEquals(body.headers["x-f2s-caller"], "ann");
    assertEquals(body.headers["x-f2s-group"], "users");
    const missing = await fetch(`${dev.url}/invoke/does-not-exist`, {
      headers: { authorization: auth },
    });
    assertEquals(missing.status, 404);
    await missing.body?.cancel();
  } finally {
    await cleanup(dir, dev);
  }
});

Deno.test("a changed definition rolls out without a moment with no ready instance", async () => {
  const dir = await functionsDir();
  await Deno.writeTextFile(
    `${dir}/echo.yaml`,
    yaml(manifest("echo", { min: 1, env: { GREETING: "v1" } })),
  );
  const dev = await startDev({ functionsDir: dir });
  try {
    await waitFor(
      "v1 ready",
      async () => (await json(await fetch(`${dev.url}/functions/echo`))).status.readyReplicas === 1,
    );
    await Deno.writeTextFile(
      `${dir}/echo.yaml`,
      yaml(manifest("echo", { min: 1, env: { GREETING: "v2" } })),
    );
    // Until v2 answers, every answer comes from v1 straight away (never held for a cold start).
    const greetings = new Set<string>();
    await waitFor("v2 to answer", async () => {
      const started = performance.now();
      const body = await json(await fetch(`${dev.url}/invoke/echo`));
      assert(
        performance.now() - started < 1000,
        "a request was held: no ready instance during the rollout",
      );
      greetings.add(body.greeting);
      return body.greeting === "v2";
    }, 20_000);
    assertEquals([...greetings].sort(), ["v1", "v2"]);
    const events = await json(
      await fetch(`${dev.url}/events?function=echo&type=function.cold_start`),
    );
    assertEquals(events, []);
  } finally {
    await cleanup(dir, dev);
  }
});

Deno.test("a function that cannot start says why: refused at apply, held requests fail at once, status and f2s fn get show it", async () => {
  const dir = await functionsDir();
  // Written to the folder by hand, so no API check stops them: they load and then fail.
  const noFolder = manifest("no-folder", { min: 0, dir: `${dir}/does-not-exist` });
  await Deno.writeTextFile(`${dir}/no-folder.yaml`, yaml(noFolder));
  const crash = `node -e "console.error('boom: cannot find module x'); process.exit(3)"`;
  await Deno.writeTextFile(
    `${dir}/crashes.yaml`,
    yaml(manifest("crashes", { min: 0, command: crash })),
  );
  // The default scaling_timeout (45 s): "at once" must mean far less than that.
  const dev = await startDev({ functionsDir: dir });
  const send = (path: string, init?: RequestInit) => fetch(dev.url + path, init);
  try {
    // Apply: an image with no folder is refused, naming the field and the folders searched.
    const { local: _, ...target } = manifest("nowhere").target;
    let res = await send("/functions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...manifest("nowhere"), target }),
    });
    let body = await json(res);
    assertEquals(res.status, 400, JSON.stringify(body));
    assertEquals(body.details[0].path, "target.containerImage");
    assertMatch(body.details[0].message, new RegExp(`no local folder.*${dir}/nowhere`));
    assertMatch(body.error, /target\.containerImage/);
    res = await send("/functions/nowhere");
    assertEquals(res.status, 404);
    await res.body?.cancel();

    // A folder that is gone: the held request gets 503 with the reason at once.
    let started = Date.now();
    res = await send("/invoke/no-folder");
    body = await json(res);
    assertEquals(res.status, 503);
    assertEquals(body.details.reason, "NoLocalFolder");
    assertMatch(
      body.error,
      /could not start: target\.local\.dir ".*does-not-exist" does not exist/,
    );
    assert(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
    let condition = (await json(await send("/functions/no-folder"))).status.conditions[0];
    assertEquals([condition.type, condition.status, condition.reason], [
      "Ready",
      "False",
      "NoLocalFolder",
    ]);

    // An app that exits at start: the reason quotes its last output.
    started = Date.now();
    res = await send("/invoke/crashes");
    body = await json(res);
    assertEquals(res.status, 503, JSON.stringify(body));
    assertEquals(body.details.reason, "AppExited");
    assertMatch(body.error, /app exited \(code 3\).*boom: cannot find module x/);
    assert(Date.now() - started < 20_000, `took ${Date.now() - started} ms`);
    condition = (await json(await send("/functions/crashes"))).status.conditions[0];
    assertEquals(condition.reason, "AppExited");

    // `f2s fn apply` does not wait out its timeout for a function that cannot start.
    const file = `${dir}/../${crypto.randomUUID()}-crash-on-apply.yaml`;
    await Deno.writeTextFile(
      file,
      yaml(manifest("crash-on-apply", { min: 1, command: crash.replace("boom", "bang") })),
    );
    started = Date.now();
    const applied = await runF2s(["fn", "apply", "-f", file, "--url", dev.url]);
    await Deno.remove(file);
    assertEquals(applied.code, 1, applied.stderr);
    assertMatch(applied.stdout, /function\/crash-on-apply created/);
    assertMatch(applied.stderr, /crash-on-apply cannot start: AppExited: .*bang: cannot find/);
    assert(Date.now() - started < 30_000, `apply took ${Date.now() - started} ms`);
    // `f2s fn get` shows the condition; a healthy function reads Ready=True.
    const got = await runF2s(["fn", "get", "crashes", "--url", dev.url]);
    assertEquals(got.code, 0, got.stderr);
    assertMatch(got.stdout, /reason: AppExited/);
    assertMatch(got.stdout, /boom: cannot find module x/);
    await Deno.writeTextFile(`${dir}/echo.yaml`, yaml(manifest("echo", { min: 0 })));
    await waitFor("echo loaded", async () => {
      const r = await send("/functions/echo");
      await r.body?.cancel();
      return r.status === 200;
    });
    res = await send("/invoke/echo");
    assertEquals(res.status, 200);
    await res.body?.cancel();
    condition = (await json(await send("/functions/echo"))).status.conditions[0];
    assertEquals([condition.status, condition.reason], ["True", "InstancesReady"]);
  } finally {
    await cleanup(dir, dev);
  }
});

/** `count` consecutive ports that are free right now, from a random start. */
function freeRange(count: number): number {
  for (let attempt = 0; attempt < 100; attempt++) {
    const from = 20_000 + Math.floor(Math.random() * 30_000);
    const listeners: Deno.Listener[] = [];
    try {
      for (let p = from; p < from + count; p++) {
        listeners.push(Deno.listen({ hostname: "127.0.0.1", port: p }));
      }
      return from;
    } catch {
      // taken: try elsewhere
    } finally {
      for (const l of listeners) l.close();
    }
  }
  throw new Error(`no ${count} free consecutive ports found`);
}

Deno.test("--instance-ports: instances listen only in the range; a full range says so", async () => {
  const dir = await functionsDir();
  const from = freeRange(3);
  const to = from + 2;
  await Deno.writeTextFile(`${dir}/echo.yaml`, yaml(manifest("echo", { min: 0 })));
  await Deno.writeTextFile(`${dir}/second.yaml`, yaml(manifest("second", { min: 0 })));
  const dev = await startDev({ functionsDir: dir, args: ["--instance-ports", `${from}-${to}`] });
  const send = (path: string) => fetch(dev.url + path);
  try {
    let res = await send("/invoke/echo");
    assertEquals(res.status, 200);
    await res.body?.cancel();
    // Its fizzlet's port (from the event) and its app's (from its command line) are in range.
    const events = await json(await send("/events?type=instance.starting&function=echo"));
    const port = events[0].data.port;
    assert(port >= from && port <= to, `fizzlet port ${port} not in ${from}-${to}`);
    const appPorts = processesMatching(dir).flatMap((pid) => {
      const cmd = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0");
      const i = cmd.indexOf("--app-port");
      return i >= 0 ? [Number(cmd[i + 1])] : [];
    });
    assert(appPorts.length > 0, "an instance with --app-port");
    for (const p of appPorts) assert(p >= from && p <= to, `app port ${p} not in ${from}-${to}`);
    // One port left: the second function cannot get two, and says so at once.
    res = await send("/invoke/second");
    const body = await json(res);
    assertEquals(res.status, 503);
    assertEquals(body.details.reason, "NoFreePort");
    assertMatch(body.error, new RegExp(`--instance-ports ${from}-${to}`));
  } finally {
    await cleanup(dir, dev);
  }
  // A range that is not one is a usage error.
  const out = await runF2s(["dev", "--functions", dir, "--instance-ports", "9000"]);
  assertEquals(out.code, 2);
  assertMatch(out.stderr, /--instance-ports "9000" is not FROM-TO/);
});
