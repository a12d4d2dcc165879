/**
 * The invocation path end to end through `f2s dev`: raw attack bytes against the control
 * plane's port, with a probe app (tests/wire/fixtures/probe) behind a real fizzlet that
 * records every request it starts. After each attack, ten ordinary requests on fresh
 * connections must each get their own answer; nothing outside the function's endpoint,
 * and nothing smuggled, may ever start at the app. And the port keeps answering after
 * its descriptors ran out.
 */

import { assert, assertEquals } from "../harness/assert.ts";
import { type ControlPlane, startDev, waitFor } from "../harness/dev.ts";
import { bytesOf } from "./corpus.ts";
import { exchange } from "./targets.ts";

const FIXTURE = new URL("./fixtures/probe/", import.meta.url).pathname;
const CRLF = "\r\n";

async function probeDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "f2s-wire-dev-" });
  for (const name of ["function.yaml", "probe.js"]) {
    await Deno.copyFile(`${FIXTURE}${name}`, `${dir}/${name}`);
  }
  return dir;
}

interface Started {
  pid: number;
  method: string;
  url: string;
  headers: Record<string, string>;
}

async function started(dir: string): Promise<Started[]> {
  try {
    const text = await Deno.readTextFile(`${dir}/requests.jsonl`);
    return text.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
  } catch {
    return [];
  }
}

/** Sends a request on a fresh connection and reads until the server closes (or timeoutMs). */
async function roundTrip(port: number, request: string, timeoutMs = 10_000): Promise<string> {
  // A connect into a full backlog can wait for minutes: it gets the same deadline.
  const connecting = Deno.connect({ hostname: "127.0.0.1", port });
  let connectTimer: ReturnType<typeof setTimeout> | undefined;
  const conn = await Promise.race([
    connecting,
    new Promise<null>((r) => connectTimer = setTimeout(() => r(null), timeoutMs)),
  ]).finally(() => clearTimeout(connectTimer));
  if (conn === null) {
    connecting.then((c) => c.close(), () => {});
    return "";
  }
  const timer = setTimeout(() => conn.close(), timeoutMs);
  try {
    await conn.write(new TextEncoder().encode(request));
    return await new Response(conn.readable).text();
  } catch {
    return "";
  } finally {
    clearTimeout(timer);
  }
}

/** One ordinary invocation on a fresh connection: its status and the tag it was answered. */
async function ordinary(port: number, tag: string): Promise<{ status: number; tag: unknown }> {
  try {
    const text = await roundTrip(
      port,
      `GET /invoke/probe/echo?${tag} HTTP/1.1\r\nHost: f2s\r\nX-Tag: ${tag}\r\n` +
        "Connection: close\r\n\r\n",
    );
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
    const body = text.slice(text.indexOf("\r\n\r\n") + 4);
    let answered: unknown;
    try {
      answered = JSON.parse(body).tag;
    } catch {
      answered = body.slice(0, 200);
    }
    return { status, tag: answered };
  } catch (e) {
    return { status: 0, tag: String(e) };
  }
}

/** `f2s dev` on the probe's folder (under `ulimit -n` when given), once the probe answers. */
async function startProbed(dir: string, ulimitFiles?: number): Promise<ControlPlane> {
  const dev = await startDev({ functionsDir: dir, ulimitFiles });
  try {
    await waitFor(
      "the probe function answers",
      async () => {
        return (await ordinary(dev.port, "ready")).status === 200;
      },
      30_000,
      200,
    );
  } catch (e) {
    await dev.stop();
    throw e;
  }
  return dev;
}

/** Ten ordinary requests at once, each on its own connection, each answered its own tag. */
async function tenOrdinary(port: number, after: string): Promise<void> {
  const tags = Array.from({ length: 10 }, (_, i) => `after-${after.replace(/\W+/g, "-")}-${i}`);
  const answers = await Promise.all(tags.map((t) => ordinary(port, t)));
  assertEquals(
    answers,
    tags.map((tag) => ({ status: 200, tag })),
    `ordinary requests after "${after}"`,
  );
}

const smuggled = "GET /admin HTTP/1.1\r\nHost: h\r\nX-F2S-Caller: admin\r\nX-Tag: smuggled\r\n\r\n";
/** The smuggled request as the one chunk of a chunked body. */
const smuggledChunked = `${smuggled.length.toString(16)}\r\n${smuggled}\r\n0\r\n\r\n`;
const invoke = (method: string, path: string, lines: string[], body = "") =>
  `${method} /invoke/probe${path} HTTP/1.1${CRLF}${lines.join(CRLF)}${CRLF}${CRLF}${body}`;
const chunkedInvoke = (chunks: string) =>
  invoke(
    "POST",
    "/echo",
    ["Host: f2s", "X-Tag: chunked-attack", "Transfer-Encoding: chunked"],
    chunks,
  );

/** [name, bytes, statuses F2S answers]. */
const ATTACKS: [string, string, number[]][] = [
  // Item 1: a GET or HEAD body travels with its length, or not at all.
  [
    "GET body holding a request",
    invoke(
      "GET",
      "/fast",
      ["Host: f2s", `Content-Length: ${smuggled.length}`, "X-Tag: get-body"],
      smuggled,
    ),
    [200],
  ],
  [
    "HEAD body holding a request",
    invoke(
      "HEAD",
      "/fast",
      ["Host: f2s", `Content-Length: ${smuggled.length}`, "X-Tag: head-body"],
      smuggled,
    ),
    [200],
  ],
  [
    "chunked GET body holding a request",
    invoke(
      "GET",
      "/fast",
      ["Host: f2s", "Transfer-Encoding: chunked", "X-Tag: get-chunked"],
      smuggledChunked,
    ),
    [200],
  ],
  [
    "CL.TE",
    invoke(
      "POST",
      "/echo",
      ["Host: f2s", "Content-Length: 6", "Transfer-Encoding: chunked"],
      "0\r\n\r\nG",
    ),
    [400],
  ],
  [
    "TE.CL",
    invoke(
      "POST",
      "/echo",
      ["Host: f2s", "Transfer-Encoding: chunked", "Content-Length: 3"],
      smuggledChunked,
    ),
    [400],
  ],
  // Item 3: Host never becomes part of a path.
  ["Host with a path", invoke("GET", "/echo", ["Host: x/admin?", "X-Tag: host-path"]), [400]],
  [
    "Host naming the fizzlet's metrics",
    invoke("GET", "/echo", ["Host: x/f2s/metrics?", "X-Tag: host-metrics"]),
    [400],
  ],
  ["Host with a space", invoke("GET", "/echo", ["Host: a b", "X-Tag: host-space"]), [400]],
  ["empty Host", invoke("GET", "/echo", ["Host:", "X-Tag: host-empty"]), [400]],
  ["two Hosts", invoke("GET", "/echo", ["Host: a", "Host: b", "X-Tag: host-two"]), [400]],
  // Item 6: framing leniencies.
  ["chunk size with a leading space", chunkedInvoke(" 5\r\nhello\r\n0\r\n\r\n"), [400]],
  ["chunk size with \\x0b", chunkedInvoke("\x0b5\r\nhello\r\n0\r\n\r\n"), [400]],
  ["chunk size with \\xa0", chunkedInvoke("\xa05\r\nhello\r\n0\r\n\r\n"), [400]],
  ["chunk size 0x5", chunkedInvoke("0x5\r\nhello\r\n0\r\n\r\n"), [400]],
  ["chunk size +5", chunkedInvoke("+5\r\nhello\r\n0\r\n\r\n"), [400]],
  ["chunk size overflowing", chunkedInvoke("ffffffffffffffffff\r\nhello\r\n0\r\n\r\n"), [400]],
  ["bare LF in a chunked body", chunkedInvoke("5\nhello\r\n0\r\n\r\n"), [400]],
  ["bare-LF head", "GET /invoke/probe/echo HTTP/1.1\nHost: f2s\nX-Tag: bare-lf\n\n", [400]],
  ["HTTP/0.9 request line", "GET /invoke/probe/echo\r\n", [400]],
  ["leading CRLF", CRLF + invoke("GET", "/echo", ["Host: f2s", "X-Tag: leading-crlf"]), [200]],
  [
    "byte 0x9B in a header",
    invoke("GET", "/echo", ["Host: f2s", "X-Tag: obs", "X-Obs: a\x9bb\xe9"]),
    [200],
  ],
];

Deno.test("f2s dev: smuggling, Host tricks and malformed framing never reach the app; ten ordinary requests after each get their own answers", async () => {
  const dir = await probeDir();
  let dev: ControlPlane | undefined;
  try {
    dev = await startProbed(dir);
    const port = dev.port;
    await tenOrdinary(port, "start");
    for (const [name, bytes, expect] of ATTACKS) {
      const answers = await exchange(port, bytesOf(bytes), {
        halfClose: false,
        expected: expect.length,
      });
      assertEquals(answers, expect, `answers to "${name}"`);
      await tenOrdinary(port, name);
    }
    const seen = await started(dir);
    const outside = seen.filter((r) => !r.url.startsWith("/fn/"));
    assertEquals(outside, [], "requests outside the function's endpoint started at the app");
    assertEquals(seen.filter((r) => r.headers["x-tag"] === "smuggled"), [], "smuggled requests");
    assertEquals(seen.filter((r) => r.headers["x-f2s-caller"] === "admin"), [], "forged caller");
    const refusedTags = ATTACKS.filter(([, , e]) => e[0] !== 200).map(([n]) => n);
    const tagged = seen.map((r) => r.headers["x-tag"]);
    for (
      const tag of [
        "host-path",
        "host-metrics",
        "host-space",
        "host-empty",
        "host-two",
        "bare-lf",
        "chunked-attack",
      ]
    ) {
      assert(
        !tagged.includes(tag),
        `a refused request (${tag}) started at the app; refused: ${refusedTags}`,
      );
    }
    // Each request with a body started once, and the 0x9B byte arrived as that byte.
    for (const tag of ["get-body", "head-body", "get-chunked"]) {
      assertEquals(tagged.filter((t) => t === tag).length, 1, `requests tagged ${tag}`);
    }
    const obs = seen.find((r) => r.headers["x-tag"] === "obs");
    assertEquals(obs?.headers["x-obs"], "a\x9bb\xe9");
    const getBody = seen.find((r) => r.headers["x-tag"] === "get-body");
    assertEquals(getBody?.headers["content-length"], String(smuggled.length));
  } finally {
    await dev?.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("f2s dev: under ulimit -n 256, 400 connections opened and closed, /health answers within 5 s", async () => {
  const dir = await probeDir();
  let dev: ControlPlane | undefined;
  const conns: Deno.TcpConn[] = [];
  try {
    dev = await startProbed(dir, 256);
    const port = dev.port;
    for (let i = 0; i < 400; i++) {
      try {
        conns.push(await Deno.connect({ hostname: "127.0.0.1", port }));
      } catch {
        break; // the listen backlog is full: the pressure is there
      }
    }
    await new Promise((r) => setTimeout(r, 1000));
    for (const c of conns.splice(0)) c.close();
    const since = Date.now();
    const health = await waitFor(
      "/health after exhaustion",
      async () => {
        const left = Math.max(100, 5000 - (Date.now() - since));
        const request = "GET /health HTTP/1.1\r\nHost: f2s\r\nConnection: close\r\n\r\n";
        const text = await roundTrip(port, request, left).catch(() => "");
        return text.startsWith("HTTP/1.1 200") ? text : undefined;
      },
      5000,
      100,
    );
    assert(health, "no /health answer");
    assert(Date.now() - since < 5000, "/health took longer than 5 s");
    await tenOrdinary(port, "descriptor exhaustion");
    const logs = dev.logs().join("\n");
    assert(
      /connection cap reached|accept failed/.test(logs),
      "neither the connection cap nor an accept error was logged: no pressure was applied",
    );
  } finally {
    for (const c of conns) c.close();
    await dev?.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
