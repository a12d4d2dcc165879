// The assembled platform (createPlatform: reconciler, dispatcher, scaling, async queue, API)
// on the fake clock: a request for a function at zero wakes it, is held exactly as long as
// the instance takes to start, and is answered by a real HTTP server behind the instance;
// the function goes back to zero one idle timeout later; a function that never starts has its
// request refused at scaling_timeout. Two minutes of platform time
// in a fraction of a second, which is what one clock passed to every part buys.

import { assert, assertEquals } from "../harness/assert.ts";
import { createFakeClock } from "../harness/fake_clock.ts";
import { startingRuntime } from "../harness/starting_runtime.ts";
import { TICK_MS } from "../../common/deadlines.ts";
import { type FunctionDef, parseFunction } from "../../common/function.ts";
import { fromRequest, toResponse } from "../../common/web_bridge.ts";
import { configFromObject } from "../../control/config.ts";
import { createEventLog } from "../../control/events.ts";
import { createMetrics } from "../../control/metrics.ts";
import { createPlatform } from "../../control/platform.ts";
import type { FunctionStore } from "../../control/store/store.ts";

const START_MS = 1000;

/** A store holding fixed definitions (writes are not part of this test). */
function fixedStore(fns: FunctionDef[]): FunctionStore {
  const refuse = () => Promise.reject(new Error("read-only store"));
  return {
    list: () => fns,
    get: (name) => fns.find((f) => f.name === name),
    manifest: () => undefined,
    create: refuse,
    update: refuse,
    delete: refuse,
    subscribe: () => () => {},
    close: () => {},
  };
}

Deno.test("platform on the fake clock: wake from zero, held for the start, answered, back to zero after the idle timeout", async () => {
  const realStart = performance.now();
  const upstream = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req) => new Response(`hello from ${new URL(req.url).pathname}`),
  );
  const dir = await Deno.makeTempDir({ prefix: "f2s-platform-clock-" });
  const clock = createFakeClock();
  const fns = ["hello", "stuck"].map((name) => {
    const parsed = parseFunction({
      metadata: { name },
      spec: { endpoint: `/${name}`, method: "ANY" },
      target: { containerImage: "x", minReplicas: 0, maxReplicas: 3 },
    });
    assert(parsed.ok);
    return parsed.fn;
  });
  const { runtime, scaled: calls } = startingRuntime(clock, {
    startMs: START_MS,
    url: `http://127.0.0.1:${upstream.addr.port}`,
    never: ["stuck"],
  });
  const scaled = () => calls.filter((c) => c.name === "hello").map(({ at, to }) => ({ at, to }));
  const config = configFromObject({}, "defaults", {}); // idle timeout 60 s, tick 2 s
  const events = createEventLog(1000, clock);
  const platform = createPlatform({
    config,
    store: fixedStore(fns),
    runtime,
    events,
    metrics: createMetrics({ processMetrics: false }),
    asyncPath: `${dir}/async.db`,
    clock,
  });
  try {
    await clock.settle();
    assertEquals(runtime.desiredReplicas("hello"), 0, "applied at minReplicas 0");

    let answer: Response | undefined;
    const pending = Promise.resolve(
      platform.handler(fromRequest(new Request("http://x/invoke/hello/a"))),
    )
      .then((r) => answer = toResponse(r));
    await clock.settle();
    assertEquals(scaled(), [{ at: 0, to: 1 }], "the request woke the function at once");
    await clock.advance(START_MS - 1);
    assertEquals(answer, undefined, "answered before the instance was ready");
    await clock.advance(1);
    await pending; // the instance is ready: the held request goes out over real HTTP
    assertEquals(answer!.status, 200);
    assertEquals(await answer!.text(), "hello from /a");
    assertEquals(
      events.list({ type: "function.cold_start" }).map((e) => e.time),
      [new Date(clock.now() - START_MS).toISOString()],
      "events carry the platform's time",
    );

    // One instance stays for the idle timeout after the request, then none.
    const idleFrom = clock.monotonic();
    const idle = config.autoscaling.idleTimeout;
    await clock.advance(idle - 1);
    assertEquals(runtime.desiredReplicas("hello"), 1, "went to zero before the idle timeout");
    await clock.advance(2 * config.autoscaling.tick);
    assertEquals(runtime.desiredReplicas("hello"), 0);
    const zero = scaled().at(-1)!;
    assertEquals(zero.to, 0);
    assert(zero.at - idleFrom >= idle && zero.at - idleFrom <= idle + 2 * config.autoscaling.tick);

    // A function whose instance never gets ready: its request is held for scaling_timeout
    // (45 s by default) on the same clock, then refused.
    let refused: Response | undefined;
    const stuck = Promise.resolve(
      platform.handler(fromRequest(new Request("http://x/invoke/stuck"))),
    )
      .then((r) => refused = toResponse(r));
    const scalingTimeout = config.timeouts.scalingTimeout;
    await clock.advance(scalingTimeout - 1);
    assertEquals(refused, undefined, "refused before scaling_timeout");
    // Hold timeouts run on the coarse deadlines (common/deadlines.ts): a bucket of one tick, checked
    // once a tick, so up to two ticks late.
    await clock.advance(2 * TICK_MS);
    await stuck;
    assertEquals(refused!.status, 503);
    assert((await refused!.text()).includes(`scaling_timeout (${scalingTimeout} ms)`));

    const realMs = performance.now() - realStart;
    const platformSeconds = clock.monotonic() / 1000;
    assert(realMs < 5000, `${Math.round(realMs)} ms of real time for ${platformSeconds} s`);
  } finally {
    await platform.shutdown(0);
    await upstream.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
  assertEquals(clock.pending, 0, "a timer outlived the platform");
});
