/**
 * The two examples, end to end through the real fizzlet: examples/nodejs in reverse-proxy
 * mode (the fizzlet starts `node server.js` itself), examples/python in command mode, and
 * their function.yaml manifests as `f2s dev` will load them.
 */

import { parse as parseYaml } from "yaml";
import { parseFunction } from "../../common/function.ts";
import { assert, assertEquals, assertMatch } from "../harness/assert.ts";
import { EXAMPLES, freePort, startFizzlet } from "./helpers.ts";

Deno.test("example manifests are valid Functions for f2s dev", async () => {
  const node = parseFunction(
    parseYaml(await Deno.readTextFile(`${EXAMPLES}/nodejs/function.yaml`)),
  );
  assert(node.ok, JSON.stringify(!node.ok && node.errors));
  assertEquals(node.fn.name, "hello-node");
  assertEquals(node.fn.endpoint, "/hello-node");
  assertEquals(node.fn.method, "ANY");
  assertEquals(node.fn.image, "f2s-examples/nodejs:latest");
  assertEquals(node.fn.port, 9092);
  assertEquals(node.fn.minReplicas, 0);
  assertEquals(node.fn.maxReplicas, 3);
  assertEquals(node.fn.local, { dir: ".", command: "node server.js" });

  const py = parseFunction(parseYaml(await Deno.readTextFile(`${EXAMPLES}/python/function.yaml`)));
  assert(py.ok, JSON.stringify(!py.ok && py.errors));
  assertEquals(py.fn.name, "hello-python");
  assertEquals(py.fn.endpoint, "/hello-python");
  assertEquals(py.fn.method, "POST");
  assertEquals(py.fn.image, "f2s-examples/python:latest");
  assertEquals(py.fn.local.command, undefined);
  // Each example's Dockerfile runs the fizzlet in the image, under tini as PID 1 (it reaps).
  for (const name of ["nodejs", "python"]) {
    const dockerfile = await Deno.readTextFile(`${EXAMPLES}/${name}/Dockerfile`);
    assertMatch(dockerfile, /main\.ts", "fizzlet"\]/);
    assertMatch(dockerfile, /^ENTRYPOINT \["\/usr\/bin\/tini", "--"\]$/m);
  }
});

Deno.test("examples/nodejs: proxy mode passes method, path, query, headers and body", async () => {
  const appPort = freePort();
  const f = await startFizzlet({
    dir: `${EXAMPLES}/nodejs`,
    args: ["--app-port", String(appPort), "--app-command", "node server.js"],
  });
  try {
    await f.waitForLog((l) => l.msg === "mode changed" && l.mode === "proxy");
    const ready = await fetch(`${f.url}/f2s/ready`);
    assertEquals(await ready.json(), { ready: true, mode: "proxy" });

    const res = await fetch(`${f.url}/orders/42?expand=items&x=1`, {
      method: "PUT",
      headers: {
        "content-type": "text/plain",
        "x-custom": "kept",
        "x-request-id": "req-node-1",
        "connection": "keep-alive, x-hop",
        "x-hop": "dropped",
      },
      body: "twelve bytes",
    });
    assertEquals(res.status, 200);
    assertEquals(res.headers.get("x-request-id"), "req-node-1");
    const echo = await res.json();
    assertEquals(echo.method, "PUT");
    assertEquals(echo.path, "/orders/42");
    assertEquals(echo.query, { expand: "items", x: "1" });
    assertEquals(echo.bodyLength, 12);
    assertEquals(echo.headers["x-custom"], "kept");
    assertEquals(echo.headers["x-hop"], undefined, "headers named in Connection are hop-by-hop");
    assertEquals(echo.headers["x-request-id"], "req-node-1");
    assertEquals(echo.headers["x-forwarded-for"], "127.0.0.1");
    assertEquals(echo.headers["x-forwarded-proto"], "http");
    assertEquals(echo.headers["x-forwarded-host"], `127.0.0.1:${f.port}`);
    assertEquals(echo.headers.host, `127.0.0.1:${f.port}`);

    // A request without an id gets one, passed to the app and returned.
    const fresh = await fetch(`${f.url}/`);
    const id = fresh.headers.get("x-request-id");
    assertMatch(id ?? "", /^[0-9a-f-]{36}$/);
    assertEquals((await fresh.json()).headers["x-request-id"], id);

    // The app's status codes and headers come back as they are.
    const notFound = await fetch(`${f.url}/status?code=404`);
    assertEquals(notFound.status, 404);
    assertEquals(await notFound.json(), { status: 404 });

    // The app's output is in the fizzlet's log as JSON lines.
    assert(f.logs().some((l) => l.msg === "app output" && String(l.line).includes("listening")));
  } finally {
    assertEquals(await f.stop(), 0);
  }
});

Deno.test("examples/python: command mode runs start.sh with the JSON input", async () => {
  const f = await startFizzlet({ dir: `${EXAMPLES}/python` });
  try {
    const health = await (await fetch(`${f.url}/f2s/health`)).json();
    assertEquals(health.mode, "command");
    const res = await fetch(`${f.url}/hello/there?lang=en`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": "py-1" },
      body: JSON.stringify({ name: "Ada", text: "a quick brown fox" }),
    });
    assertEquals(res.status, 200);
    assertEquals(res.headers.get("content-type"), "application/json");
    assertEquals(res.headers.get("x-request-id"), "py-1");
    const answer = await res.json();
    assertEquals(answer.greeting, "Hello, Ada!");
    assertEquals(answer.input, { name: "Ada", text: "a quick brown fox" });
    assertEquals(answer.inputFile, "input.json");
    assertEquals(answer.method, "POST");
    assertEquals(answer.path, "/hello/there");
    assertEquals(answer.query, "lang=en");
    assertEquals(answer.contentType, "application/json");
    assertEquals(answer.requestId, "py-1");
    assertEquals(answer.words, 4);
    assertEquals(answer.longest, "quick");
    // The script's stderr is logged with the request id.
    await f.waitForLog((l) => l.msg === "script stderr" && l.requestId === "py-1");
  } finally {
    assertEquals(await f.stop(), 0);
  }
});

Deno.test("examples/python: 50 concurrent requests each get exactly their own output", async () => {
  const f = await startFizzlet({ dir: `${EXAMPLES}/python`, args: ["--max-inflight", "8"] });
  try {
    const answers = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const res = await fetch(`${f.url}/?i=${i}`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-request-id": `iso-${i}` },
          body: JSON.stringify({ name: `caller-${i}`, text: "w ".repeat(i + 1) }),
        });
        return { i, status: res.status, body: await res.json() };
      }),
    );
    for (const { i, status, body } of answers) {
      assertEquals(status, 200, JSON.stringify(body));
      assertEquals(body.greeting, `Hello, caller-${i}!`);
      assertEquals(body.requestId, `iso-${i}`);
      assertEquals(body.query, `i=${i}`);
      assertEquals(body.words, i + 1);
    }
  } finally {
    assertEquals(await f.stop(), 0);
  }
});
