// control/runtime/plan.ts: what the local and memory runtimes start and stop for one
// function, as a table.
import { assertEquals } from "../harness/assert.ts";
import { planInstances, type Planned } from "../../control/runtime/plan.ts";

const i = (id: string, state: Planned["state"], generation = 1): Planned => ({
  id,
  state,
  generation,
});

Deno.test("plan: start up to the desired count, stop the not-ready first, then the newest", () => {
  const ids = (p: { start: number; stop: Planned[] }) => [p.start, p.stop.map((x) => x.id)];
  assertEquals(ids(planInstances([], 2, 1)), [2, []]);
  assertEquals(ids(planInstances([i("f-1", "ready")], 3, 1)), [2, []]);
  assertEquals(ids(planInstances([i("f-1", "ready"), i("f-2", "ready")], 2, 1)), [0, []]);
  const three = [i("f-1", "ready"), i("f-2", "starting"), i("f-3", "ready")];
  assertEquals(ids(planInstances(three, 1, 1)), [0, ["f-2", "f-3"]]);
  assertEquals(ids(planInstances(three, 0, 1)), [0, ["f-2", "f-3", "f-1"]]);
});

Deno.test("plan: a new definition's instances start; the old stop once as many new are ready", () => {
  const ids = (p: { start: number; stop: Planned[] }) => [p.start, p.stop.map((x) => x.id)];
  const old = [i("f-1", "ready", 1), i("f-2", "ready", 1)];
  assertEquals(ids(planInstances(old, 2, 2)), [2, []]);
  const starting = [...old, i("f-3", "ready", 2), i("f-4", "starting", 2)];
  assertEquals(ids(planInstances(starting, 2, 2)), [0, []], "one new is not enough");
  const ready = [...old, i("f-3", "ready", 2), i("f-4", "ready", 2)];
  assertEquals(ids(planInstances(ready, 2, 2)), [0, ["f-1", "f-2"]]);
});
