// The dispatcher against real HTTP servers on loopback: retry only when the instance was
// never reached, hold while no instance is ready, release the moment one is.
import { assert, assertEquals } from "../harness/assert.ts";
import { type FunctionDef, parseFunction } from "../../common/function.ts";
import { serveHttp1 } from "../../common/http1_server.ts";
import { fromRequest, toResponse } from "../../common/web_bridge.ts";
import { createDispatcher, type Dispatcher } from "../../dispatcher/dispatcher.ts";
import { encodeIdentity } from "../../common/forward_headers.ts";
import { createEventLog } from "../../control/events.ts";
import { createMetrics } from "../../control/metrics.ts";
import { freePort } from "../../common/self.ts";
import { waitFor } from "../harness/poll.ts";
import { createFakeClock } from "../harness/fake_clock.ts";

function fn(extra: Record<string, unknown> = {}) {
  const r = parseFunction({
    metadata: { name: "f" },
    spec: { endpoint: "/f", method: "ANY" },
    target: { containerImage: "x", minReplicas: 0, ...extra },
  });
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.fn;
}

function setup(
  wake: (name: string) => void = () => {},
  metrics = createMetrics({ processMetrics: false }),
) {
  return createDispatcher({
    timeouts: { requestTimeout: 5000, httpTimeout: 2000, scalingTimeout: 2000 },
    wake,
    metrics,
    events: createEventLog(),
  });
}

/** Puts `server` in the routing table as a ready instance of function "f". */
function addReady(d: Dispatcher, id: string, server: { addr: { port: number } }) {
  d.instanceChanged({
    id,
    function: "f",
    url: `http://127.0.0.1:${server.addr.port}`,
    state: "ready",
  });
}

/** Dispatches a request for function "f" (path /invoke/f). */
function invoke(d: Dispatcher, f: FunctionDef, requestId: string, init?: RequestInit) {
  return d.dispatch(f, fromRequest(new Request("http://x/invoke/f", init)), {
    requestId,
    suffix: "",
    search: "",
  }).then(toResponse);
}

function serve(handler: (req: Request) => Response | Promise<Response>) {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, handler);
}

/** A backend answering "live" that records the body of every request it gets. */
function liveBackend() {
  const hits: string[] = [];
  const live = serve(async (req) => {
    hits.push(await req.text());
    return new Response("live");
  });
  return { hits, live };
}

Deno.test("a request refused by one instance is retried on another", async () => {
  const { hits, live } = liveBackend();
  const d = setup();
  const f = fn();
  d.setFunction(f);
  // The dead instance comes first and is equally loaded: it is tried, refuses, and the
  // request (with its body) goes to the live one.
  d.instanceChanged({
    id: "dead",
    function: "f",
    url: `http://127.0.0.1:${freePort()}`,
    state: "ready",
  });
  addReady(d, "live", live);
  try {
    for (let i = 0; i < 6; i++) {
      const res = await invoke(d, f, `r${i}`, { method: "POST", body: `body-${i}` });
      const text = await res.text();
      assertEquals(res.status, 200, text);
      assertEquals(text, "live");
    }
    assertEquals(hits, ["body-0", "body-1", "body-2", "body-3", "body-4", "body-5"]);
    // The refusing instance left the table at the first failure.
    assertEquals(d.table.ready("f").map((s) => s.instance.id), ["live"]);
  } finally {
    d.close();
    await live.shutdown();
  }
});

Deno.test("an instance that failed is suspended at once and rejoins when /f2s/ready answers 200", async () => {
  const port = freePort();
  const d = setup();
  const f = fn();
  d.setFunction(f);
  d.instanceChanged({ id: "a", function: "f", url: `http://127.0.0.1:${port}`, state: "ready" });
  let server: Deno.HttpServer | undefined;
  try {
    const refused = await invoke(d, f, "r1", { method: "POST", body: "x" });
    assertEquals(refused.status, 502);
    await refused.body?.cancel();
    assertEquals(d.table.ready("f").length, 0, "suspended at once");
    // A request arriving now is held (not a cold start) until the instance is back.
    const held = invoke(d, f, "r2");
    await new Promise((r) => setTimeout(r, 100));
    let readyAsked = 0;
    server = Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, (req) => {
      if (new URL(req.url).pathname === "/f2s/ready") readyAsked++;
      return new Response("back");
    });
    const res = await held;
    assertEquals(res.status, 200);
    assertEquals(await res.text(), "back");
    assert(readyAsked >= 1, "readiness was asked before it rejoined");
    assertEquals(d.table.ready("f").map((s) => s.instance.id), ["a"]);
  } finally {
    d.close();
    await server?.shutdown();
  }
});

Deno.test("a fizzlet's not-delivered answer sends the request to another instance, once", async () => {
  const appDown = serve(() =>
    new Response('{"error":"app unreachable"}', {
      status: 502,
      headers: { "x-f2s-not-delivered": "1" },
    })
  );
  const { hits, live } = liveBackend();
  const d = setup();
  const f = fn();
  d.setFunction(f);
  addReady(d, "down", appDown);
  addReady(d, "live", live);
  try {
    for (let i = 0; i < 4; i++) {
      const res = await invoke(d, f, `r${i}`, {
        method: "POST",
        headers: { "content-length": "2" },
        body: `b${i}`,
      });
      assertEquals(res.status, 200);
      assertEquals(res.headers.get("x-f2s-not-delivered"), null);
      assertEquals(await res.text(), "live");
    }
    assertEquals(hits, ["b0", "b1", "b2", "b3"]);
    // A streamed body (no length) went to the fizzlet and is spent: 502, never an empty copy.
    const d2 = setup();
    d2.setFunction(f);
    addReady(d2, "down", appDown);
    try {
      const streamed = await invoke(d2, f, "s", {
        method: "POST",
        body: new ReadableStream({
          start(c) {
            c.enqueue(new TextEncoder().encode("streamed"));
            c.close();
          },
        }),
      });
      const answer = await streamed.json();
      assertEquals(streamed.status, 502);
      assertEquals(
        answer.details.retry,
        "not possible: the streamed request body was already sent",
      );
      assertEquals(hits.length, 4);
    } finally {
      d2.close();
    }
  } finally {
    d.close();
    await appDown.shutdown();
    await live.shutdown();
  }
});

Deno.test("a request that reached an instance and failed is not retried", async () => {
  let calls = 0;
  const crashing = serve(() => {
    calls++;
    throw new Error("boom"); // Deno answers 500 for a throwing handler
  });
  const d = setup();
  const f = fn();
  d.setFunction(f);
  addReady(d, "a", crashing);
  try {
    const res = await invoke(d, f, "r");
    assertEquals(res.status, 500);
    await res.body?.cancel();
    assertEquals(calls, 1);
  } finally {
    await crashing.shutdown();
  }
});

Deno.test("held requests are released as soon as an instance becomes ready", async () => {
  const backend = serve(() => new Response("ok"));
  const woken: string[] = [];
  const metrics = createMetrics({ processMetrics: false });
  const d = setup((name) => woken.push(name), metrics);
  const f = fn();
  d.setFunction(f);
  const gauge = async () =>
    /f2s_inflight_requests\{function="f"\} (\d+)/.exec(await metrics.registry.metrics())?.[1];
  try {
    const pending = Array.from(
      { length: 5 },
      (_, i) => invoke(d, f, `h${i}`),
    );
    await new Promise((r) => setTimeout(r, 100));
    assertEquals(d.inflight("f"), 5);
    assertEquals(await gauge(), "5", "held requests are in flight on /metrics");
    assert(woken.length >= 1 && woken.every((w) => w === "f"));
    const readyAt = performance.now();
    addReady(d, "a", backend);
    const responses = await Promise.all(pending);
    const released = performance.now() - readyAt;
    for (const r of responses) assertEquals(await r.text(), "ok");
    assert(released < 1000, `held requests took ${released} ms after readiness`);
    assertEquals(d.inflight("f"), 0);
    assertEquals(await gauge(), "0");
  } finally {
    await backend.shutdown();
  }
});

Deno.test("on the fake clock: a held request waits scaling_timeout to the ms, then 503", async () => {
  const clock = createFakeClock();
  const d = createDispatcher({
    // The real defaults: 45 s of holding would be 45 s of test without the fake clock.
    timeouts: { requestTimeout: 120_000, httpTimeout: 60_000, scalingTimeout: 45_000 },
    wake: () => {},
    metrics: createMetrics({ processMetrics: false }),
    events: createEventLog(),
    clock,
  });
  const f = fn();
  d.setFunction(f);
  let answered: Response | undefined;
  const pending = invoke(d, f, "held").then((r) => answered = r);
  await clock.advance(44_999);
  assertEquals(answered, undefined, "answered before scaling_timeout");
  assertEquals(d.inflight("f"), 1);
  await clock.advance(1);
  await pending;
  assertEquals(answered!.status, 503);
  assert((await answered!.text()).includes("scaling_timeout (45000 ms)"));
  assertEquals(d.inflight("f"), 0);
  // drain() times out on the same clock.
  const held = invoke(d, f, "again");
  let drained: boolean | undefined;
  d.drain(10_000).then((v) => drained = v);
  await clock.advance(10_000);
  assertEquals(drained, false);
  await clock.advance(35_000);
  assertEquals((await held).status, 503);
  d.close();
  assertEquals(clock.pending, 0, "no timer left behind");
});

Deno.test("per-instance concurrency limit queues the excess instead of overloading", async () => {
  let concurrent = 0;
  let peak = 0;
  const backend = serve(async () => {
    concurrent++;
    peak = Math.max(peak, concurrent);
    await new Promise((r) => setTimeout(r, 100));
    concurrent--;
    return new Response("ok");
  });
  const d = setup();
  const f = fn({ scaling: { containerConcurrency: 2 } });
  d.setFunction(f);
  addReady(d, "a", backend);
  try {
    const all = await Promise.all(
      Array.from(
        { length: 8 },
        (_, i) =>
          invoke(d, f, `c${i}`)
            .then((r) => r.text()),
      ),
    );
    assertEquals(all, Array(8).fill("ok"));
    assertEquals(peak, 2);
  } finally {
    await backend.shutdown();
  }
});

Deno.test("held requests end at once when their function cannot start or is removed", async () => {
  const metrics = createMetrics({ processMetrics: false });
  const d = setup(() => {}, metrics);
  const f = fn();
  d.setFunction(f);
  const held = async () =>
    /f2s_held_requests\{function="f"\} (\d+)/.exec(await metrics.registry.metrics())?.[1];
  const started = performance.now();
  const failing = [invoke(d, f, "s1"), invoke(d, f, "s2")];
  await waitFor("two held requests", async () => (await held()) === "2");
  d.instanceChanged({
    id: "x",
    function: "f",
    url: `http://127.0.0.1:${freePort()}`,
    state: "gone",
    failure: { reason: "StartFailed", message: "no such image", at: new Date().toISOString() },
  });
  for (const r of await Promise.all(failing)) {
    assertEquals(r.status, 503);
    assert((await r.text()).includes("could not start: no such image"));
  }
  const removed = invoke(d, f, "r1");
  await waitFor("one held request", async () => (await held()) === "1");
  d.removeFunction("f");
  const r = await removed;
  assertEquals(r.status, 404);
  await r.body?.cancel();
  // scaling_timeout is 2 s: all of it took far less, and nothing is left held or in flight.
  assert(performance.now() - started < 1500, "held requests waited out scaling_timeout");
  assertEquals(d.inflight("f"), 0);
});

Deno.test("a draining instance gets no new requests but finishes the ones it has", async () => {
  const backend = serve(async (req) => {
    await new Promise((r) => setTimeout(r, new URL(req.url).pathname === "/slow" ? 300 : 0));
    return new Response(new URL(req.url).pathname);
  });
  const other = serve(() => new Response("other"));
  const d = setup();
  const f = fn();
  d.setFunction(f);
  const a = {
    id: "a",
    function: "f",
    url: `http://127.0.0.1:${backend.addr.port}`,
    state: "ready" as const,
  };
  d.instanceChanged(a);
  try {
    const slow = d.dispatch(f, fromRequest(new Request("http://x/invoke/f/slow")), {
      requestId: "s",
      suffix: "/slow",
      search: "",
    }).then(toResponse);
    await new Promise((r) => setTimeout(r, 50));
    d.instanceChanged({ ...a, state: "draining" });
    addReady(d, "b", other);
    const next = await invoke(d, f, "n");
    assertEquals(await next.text(), "other");
    assertEquals(await (await slow).text(), "/slow");
  } finally {
    await backend.shutdown();
    await other.shutdown();
  }
});

Deno.test("answers pass through byte for byte: gzip stays compressed, hop-by-hop headers go", async () => {
  const plain = new TextEncoder().encode("hello ".repeat(1000));
  const gz = new Uint8Array(
    await new Response(new Blob([plain]).stream().pipeThrough(new CompressionStream("gzip")))
      .arrayBuffer(),
  );
  const backend = serve(() =>
    new Response(gz, {
      headers: { "content-encoding": "gzip", "x-app": "1", "keep-alive": "timeout=5" },
    })
  );
  const d = setup();
  const f = fn();
  d.setFunction(f);
  addReady(d, "a", backend);
  try {
    const res = await invoke(d, f, "gz");
    assertEquals(res.headers.get("content-encoding"), "gzip");
    assertEquals(res.headers.get("x-app"), "1");
    assertEquals(res.headers.get("keep-alive"), null);
    assertEquals(res.headers.get("x-request-id"), "gz");
    assertEquals(new Uint8Array(await res.arrayBuffer()), gz);
  } finally {
    await backend.shutdown();
  }
});

/** The dispatcher behind the control plane's own server, so a client can really go away. */
function front(d: Dispatcher, f: FunctionDef) {
  return serveHttp1(
    { hostname: "127.0.0.1", port: 0 },
    (req) => d.dispatch(f, req, { requestId: "gone", suffix: "", search: "" }),
  );
}

/** Sends a request and drops the connection after `ms`; resolves when it was dropped. */
async function leaveAfter(server: { addr: { port: number } }, ms: number) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
  await conn.write(new TextEncoder().encode("GET /invoke/f HTTP/1.1\r\nhost: x\r\n\r\n"));
  await new Promise((r) => setTimeout(r, ms));
  conn.close();
}

Deno.test("a client that goes away mid-request ends the upstream exchange (499)", async () => {
  let upstreamAborted = false;
  const slow = serve((req) => {
    const { promise, resolve } = Promise.withResolvers<Response>();
    req.signal.addEventListener("abort", () => {
      upstreamAborted = true;
      resolve(new Response("too late"));
    });
    setTimeout(() => resolve(new Response("finished")), 4000);
    return promise;
  });
  const metrics = createMetrics({ processMetrics: false });
  const d = createDispatcher({
    timeouts: { requestTimeout: 10_000, httpTimeout: 10_000, scalingTimeout: 2000 },
    wake: () => {},
    metrics,
    events: createEventLog(),
  });
  const f = fn();
  d.setFunction(f);
  addReady(d, "a", slow);
  const server = front(d, f);
  try {
    const started = performance.now();
    await leaveAfter(server, 300);
    await waitFor("the function's connection to close", () => upstreamAborted, 3000);
    await waitFor("nothing to be in flight", () => d.inflight("f") === 0, 3000);
    assert(performance.now() - started < 3000, "the exchange outlived its client by seconds");
    const text = await metrics.registry.metrics();
    assert(
      text.includes('f2s_invocations_total{function="f",code="499"} 1'),
      "the invocation is not counted as 499",
    );
  } finally {
    await server.shutdown();
    await slow.shutdown();
  }
});

Deno.test("a held request whose client goes away stops waiting", async () => {
  const d = setup();
  const f = fn();
  d.setFunction(f);
  const server = front(d, f);
  try {
    await leaveAfter(server, 200);
    assertEquals(d.inflight("f"), 1);
    // scaling_timeout is 2 s: being released well before it means the leave was noticed.
    const left = performance.now();
    await waitFor("the held request to be released", () => d.inflight("f") === 0, 1500);
    assert(performance.now() - left < 1500);
  } finally {
    await server.shutdown();
  }
});

Deno.test("a request body that breaks off mid-upload is the client's failure: 400, the instance stays", async () => {
  const backend = serve(async (req) => {
    await req.text().catch(() => {});
    return new Response("ok");
  });
  const d = setup();
  const f = fn();
  d.setFunction(f);
  addReady(d, "a", backend);
  try {
    let sent = 0;
    const res = await invoke(d, f, "broken", {
      method: "POST",
      body: new ReadableStream<Uint8Array>({
        async pull(c) {
          if (sent++ < 3) {
            c.enqueue(new Uint8Array(64 * 1024));
            await new Promise((r) => setTimeout(r, 10));
          } else c.error(new Error("client connection reset"));
        },
      }),
    });
    const answer = await res.json();
    assertEquals(res.status, 400, JSON.stringify(answer));
    assertEquals(d.table.ready("f").map((s) => s.instance.id), ["a"]);
  } finally {
    d.close();
    await backend.shutdown();
  }
});

Deno.test("identity headers: UTF-8 percent-encoded outside visible ASCII and for %", () => {
  const cases: [string, string][] = [
    ["ann", "ann"],
    ["roman@example.com", "roman@example.com"],
    ["Tomáš Černý", "Tom%C3%A1%C5%A1%20%C4%8Cern%C3%BD"],
    ["100%", "100%25"],
    ["a\r\nX-F2S-Group: admins", "a%0D%0AX-F2S-Group:%20admins"],
    ["\u010d\u010a", "%C4%8D%C4%8A"], // once masked to CR LF on the wire
    ["\u0000\u007f\u0085", "%00%7F%C2%85"],
    ["😀", "%F0%9F%98%80"],
    ["\ud800", "%EF%BF%BD"], // a lone surrogate is no character: U+FFFD
  ];
  for (const [name, encoded] of cases) {
    assertEquals(encodeIdentity(name), encoded, JSON.stringify(name));
    assert(/^[\x21-\x7e]*$/.test(encoded), "only visible ASCII on the wire");
    if (!name.includes("\ud800")) assertEquals(decodeURIComponent(encoded), name);
  }
});

/** A dispatcher on a fake clock with the given timeouts, and function "f" on `server`. */
function onFakeClock(
  timeouts: { requestTimeout: number; httpTimeout: number },
  server: { addr: { port: number } },
) {
  const clock = createFakeClock();
  const d = createDispatcher({
    timeouts: { ...timeouts, scalingTimeout: 45_000 },
    wake: () => {},
    metrics: createMetrics({ processMetrics: false }),
    events: createEventLog(),
    clock,
  });
  const f = fn({ minReplicas: 1 });
  d.setFunction(f);
  addReady(d, "a", server);
  return { clock, d, f };
}

/** A backend that holds every answer until `release` is called; `arrived` counts requests. */
function holdingBackend() {
  let release!: () => void;
  const released = new Promise<void>((resolve) => release = resolve);
  const state = { arrived: 0, release };
  const server = serve(async () => {
    state.arrived++;
    await released;
    return new Response("late");
  });
  return { server, state };
}

/**
 * A request to an app that never answers ends with 504 naming `limit` exactly `after` ms
 * from its start on the fake clock, not a millisecond sooner.
 */
async function endsAt(
  timeouts: { requestTimeout: number; httpTimeout: number },
  after: number,
  limit: string,
) {
  const { server, state } = holdingBackend();
  const { clock, d, f } = onFakeClock(timeouts, server);
  try {
    let answered: Response | undefined;
    invoke(d, f, "slow").then((r) => answered = r);
    await waitFor("the request to reach the app", () => state.arrived === 1);
    await clock.advance(after - 1);
    assertEquals(answered, undefined, `answered before ${limit}`);
    await clock.advance(1);
    await waitFor("the 504", () => answered !== undefined, 3000);
    assertEquals(answered!.status, 504);
    assert((await answered!.text()).includes(`${limit} (${after} ms)`));
  } finally {
    state.release();
    d.close();
    await server.shutdown();
  }
  assertEquals(clock.pending, 0, "no timer left behind");
}

Deno.test("on the fake clock: http_timeout ends a request whose answer has not begun, to the ms", () =>
  endsAt({ requestTimeout: 120_000, httpTimeout: 60_000 }, 60_000, "http_timeout"));

Deno.test("on the fake clock: a request_timeout shorter than http_timeout wins", () =>
  endsAt({ requestTimeout: 30_000, httpTimeout: 60_000 }, 30_000, "request_timeout"));

Deno.test("on the fake clock: an answer whose head came in time may outlast http_timeout", async () => {
  let release!: () => void;
  const released = new Promise<void>((resolve) => release = resolve);
  const server = serve(() =>
    new Response(
      new ReadableStream({
        async start(controller) {
          controller.enqueue(new TextEncoder().encode("head in time, "));
          await released;
          controller.enqueue(new TextEncoder().encode("body later"));
          controller.close();
        },
      }),
    )
  );
  const { clock, d, f } = onFakeClock({ requestTimeout: 120_000, httpTimeout: 1000 }, server);
  try {
    const res = await invoke(d, f, "stream");
    assertEquals(res.status, 200);
    await clock.advance(5000);
    release();
    assertEquals(await res.text(), "head in time, body later");
  } finally {
    release();
    d.close();
    await server.shutdown();
  }
});
