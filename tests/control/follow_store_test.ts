// The store follower (followStore) between the memory store and the memory runtime: what is stored is
// applied with replicas inside its bounds and routed; changes follow; a deletion removes
// the instances and the route; after stop nothing follows any more.
import { assertEquals } from "../harness/assert.ts";
import { waitFor } from "../harness/poll.ts";
import { echo, manifest } from "../harness/memory.ts";
import { createDispatcher } from "../../dispatcher/dispatcher.ts";
import { DEFAULT_TIMEOUTS } from "../../control/config.ts";
import { createEventLog } from "../../control/events.ts";
import { createMetrics } from "../../control/metrics.ts";
import { followStore, replicasFor } from "../../control/follow_store.ts";
import { createMemoryRuntime } from "../../control/runtime/memory.ts";
import { createMemoryStore } from "../../control/store/memory.ts";

function setup() {
  const events = createEventLog();
  const runtime = createMemoryRuntime({ app: () => echo, events });
  const store = createMemoryStore({
    functions: [manifest("a", { minReplicas: 2, maxReplicas: 4 })],
  });
  const dispatcher = createDispatcher({
    timeouts: DEFAULT_TIMEOUTS,
    wake: () => {},
    metrics: createMetrics({ processMetrics: false }),
    events,
  });
  runtime.subscribe((i) => dispatcher.instanceChanged(i));
  const follower = followStore({ store, runtime, dispatcher, events });
  const ready = (name: string) => runtime.instances(name).filter((i) => i.state === "ready").length;
  const close = async () => {
    follower.stop();
    await runtime.close();
    dispatcher.close();
  };
  return { events, runtime, store, dispatcher, follower, ready, close };
}

Deno.test("replicas for a (re)applied function stay within its bounds", () => {
  const fn = (minReplicas: number, maxReplicas: number) =>
    ({ minReplicas, maxReplicas }) as Parameters<typeof replicasFor>[0];
  assertEquals(replicasFor(fn(1, 3), undefined), 1, "new: the minimum");
  assertEquals(replicasFor(fn(0, 3), 2), 2, "what runs now stays");
  assertEquals(replicasFor(fn(0, 1), 3), 1, "a lower maximum cuts");
  assertEquals(replicasFor(fn(2, 5), 1), 2, "a higher minimum raises");
});

Deno.test("stored functions are applied and routed; bounds changes and deletions follow", async () => {
  const r = setup();
  try {
    assertEquals(r.runtime.desiredReplicas("a"), 2);
    assertEquals(r.dispatcher.table.match("/a/x")?.fn.name, "a");
    await waitFor("two ready", () => r.ready("a") === 2);
    assertEquals(r.dispatcher.table.ready("a").length, 2, "the routing table has both");

    // Scaled up by the autoscaler to 4, then the maximum drops to 3: cut to 3, not reset.
    await r.runtime.scale("a", 4);
    await waitFor("four ready", () => r.ready("a") === 4);
    await r.store.update("a", manifest("a", { minReplicas: 2, maxReplicas: 3 }));
    assertEquals(r.runtime.desiredReplicas("a"), 3);

    await r.store.create(manifest("b", { minReplicas: 1 }));
    await waitFor("b ready", () => r.ready("b") === 1);
    await r.store.delete("a");
    assertEquals(r.dispatcher.table.byName("a"), undefined, "no route at once");
    assertEquals(r.runtime.desiredReplicas("a"), undefined);
    await waitFor("a's instances gone", () => r.runtime.instances("a").length === 0);
    assertEquals(r.ready("b"), 1, "the other function is untouched");
    const types = r.events.list({ function: "a" }).map((e) => e.type);
    assertEquals(types.filter((t) => t.startsWith("function.")), [
      "function.applied",
      "function.applied",
      "function.deleted",
    ]);
  } finally {
    await r.close();
  }
});

Deno.test("after stop the follower follows the store no more; instances stay", async () => {
  const r = setup();
  try {
    await waitFor("two ready", () => r.ready("a") === 2);
    r.follower.stop();
    await r.store.create(manifest("late", { minReplicas: 1 }));
    await r.store.update("a", manifest("a", { minReplicas: 1, maxReplicas: 1 }));
    assertEquals(r.runtime.desiredReplicas("late"), undefined);
    assertEquals(r.dispatcher.table.byName("late"), undefined);
    assertEquals(r.runtime.desiredReplicas("a"), 2);
    assertEquals(r.ready("a"), 2);
  } finally {
    await r.close();
  }
});
