// `f2s fn` as a newcomer meets it: one clear line and a documented exit code for a missing
// file, a control plane that is down, a URL that is not F2S; `f2s fn login` signs in once in
// token mode and the next commands use the stored URL and token.
import { assert, assertEquals, assertMatch } from "../harness/assert.ts";
import { runF2s } from "../harness/cli.ts";
import { startDev } from "../harness/dev.ts";

/** One line on stderr, no stack trace. */
function oneLine(stderr: string) {
  const lines = stderr.trim().split("\n");
  assertEquals(lines.length, 1, `expected one line, got:\n${stderr}`);
  assert(!/^\s+at /m.test(stderr) && !stderr.includes("error: Uncaught"), stderr);
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

Deno.test("f2s fn: a missing file, a server that is down, a URL that is not F2S: one line each", async () => {
  let out = await runF2s(["fn", "apply", "-f", "missing.yaml", "--url", "http://127.0.0.1:1"]);
  assertEquals(out.code, 4);
  oneLine(out.stderr);
  assertMatch(out.stderr, /^f2s fn apply: cannot read missing\.yaml: no such file/);

  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/bad.yaml`, "kind: Function\nmetadata: [unclosed\n");
    out = await runF2s(["fn", "apply", "-f", `${dir}/bad.yaml`, "--url", "http://127.0.0.1:1"]);
    assertEquals(out.code, 4);
    oneLine(out.stderr);
    assertMatch(out.stderr, /is not valid YAML/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }

  const down = `http://127.0.0.1:${freePort()}`;
  out = await runF2s(["fn", "list", "--url", down]);
  assertEquals(out.code, 3);
  oneLine(out.stderr);
  assertMatch(
    out.stderr,
    /cannot reach the control plane at .*connection refused.*--url or F2S_URL/,
  );

  // Another web server: an HTML page is not dumped, the user learns the URL is wrong.
  const other = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () =>
      new Response("<html><body><h1>Not Found</h1>" + "x".repeat(2000) + "</body></html>", {
        status: 404,
        headers: { "content-type": "text/html" },
      }),
  );
  try {
    const url = `http://127.0.0.1:${other.addr.port}`;
    for (const args of [["list"], ["get", "x"], ["delete", "x"], ["invoke", "/x"]]) {
      out = await runF2s(["fn", ...args, "--url", url]);
      assertEquals(out.code, 3, `${args}: ${out.stderr}`);
      oneLine(out.stderr);
      assertMatch(
        out.stderr,
        /does not look like an F2S control plane \(.* answered 404 text\/html\)/,
      );
      assert(!out.stderr.includes("<html"), out.stderr);
    }
    // F2S_URL works like --url.
    out = await runF2s(["fn", "list"], { env: { F2S_URL: url } });
    assertEquals(out.code, 3);
    out = await runF2s(["fn", "list", "--url", "localhost:8080"]);
    assertEquals(out.code, 2);
    assertMatch(out.stderr, /must start with http/);
  } finally {
    await other.shutdown();
  }
});

Deno.test("f2s fn login: signs in once, stores URL and token 0600, later commands use them", async () => {
  const functions = await Deno.makeTempDir();
  const config = await Deno.makeTempDir();
  const dev = await startDev({
    functionsDir: functions,
    config: `
f2s:
  auth:
    global_config: { type: token }
    basic:
      - { username: ada, password: ada-password, group: admins }
    token: { jwt_secret: cli-login-test-secret-long-enough-for-hs256, expiry: 5m }
    authorization:
      - group: admins
        privileges: [functions:list, functions:invoke, functions:create, functions:delete,
          functions:update, settings:view, settings:update]
`,
  });
  const env = { XDG_CONFIG_HOME: config };
  try {
    // Not signed in: 401 with the way out.
    let out = await runF2s(["fn", "list", "--url", dev.url], { env });
    assertEquals(out.code, 1);
    assertMatch(out.stderr, /error \(401\).*f2s fn login/);
    // A wrong password stores nothing.
    out = await runF2s(["fn", "login", "--url", dev.url, "--user", "ada"], {
      env,
      stdin: "wrong\n",
    });
    assertEquals(out.code, 1, out.stderr);
    assertMatch(out.stderr, /error \(401\)/);
    await Deno.stat(`${config}/f2s/login.json`).then(
      () => assert(false, "a failed login stored a file"),
      () => {},
    );
    // The password from stdin, as scripts pass it.
    out = await runF2s(["fn", "login", "--url", dev.url, "--user", "ada"], {
      env,
      stdin: "ada-password\n",
    });
    assertEquals(out.code, 0, out.stderr);
    assertMatch(out.stdout, /signed in to .* as ada until /);
    const file = `${config}/f2s/login.json`;
    assertEquals((await Deno.stat(file)).mode! & 0o777, 0o600);
    assertEquals((await Deno.stat(`${config}/f2s`)).mode! & 0o777, 0o700);
    const stored = JSON.parse(await Deno.readTextFile(file));
    assertEquals(stored.url, dev.url);
    assertMatch(stored.token, /^ey/);
    // No --url, no token: both come from the stored login.
    out = await runF2s(["fn", "list", "-o", "json"], { env });
    assertEquals(out.code, 0, out.stderr);
    assertEquals(JSON.parse(out.stdout), []);
    // The stored token is never sent to another URL.
    const seen: (string | null)[] = [];
    const other = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
      seen.push(req.headers.get("authorization"));
      return Response.json([]);
    });
    try {
      out = await runF2s(["fn", "list", "--url", `http://127.0.0.1:${other.addr.port}`], { env });
      assertEquals(out.code, 0, out.stderr);
      assertEquals(seen, [null]);
    } finally {
      await other.shutdown();
    }
  } finally {
    await dev.stop();
    await Deno.remove(functions, { recursive: true });
    await Deno.remove(config, { recursive: true });
  }
});
