// The shared view of calls (control/async/call_view.ts) on a real SQLite file: records
// arriving twice, late or out of order never move a call backwards, the record survives
// the topic's encoding (results cut to fit a Kafka record), and foreign records are refused.
import { assert, assertEquals } from "../harness/assert.ts";
import {
  type CallRecord,
  openCallView,
  progress,
  queuedRecord,
} from "../../control/async/call_view.ts";
import { decodeRecord, encodeRecord, SHARED_RESULT_MAX } from "../../control/async/call_state.ts";

const T = 1_700_000_000_000;

function lifeOf(id: string): CallRecord[] {
  const queued = queuedRecord({
    id,
    function: "orders",
    method: "POST",
    suffix: "",
    search: "",
    headers: [["x-secret", "s"]],
    body: new TextEncoder().encode("request"),
    client: "10.0.0.1",
    caller: { name: "olga", group: "orders" },
    callback: "https://hooks.example.com/done",
    source: "http",
    createdAt: T,
  });
  const running1 = { ...queued, state: "running" as const, attempts: 1, startedAt: T + 1 };
  const retry1 = { ...running1, state: "queued" as const, nextAt: T + 100, status: 503 };
  const running2 = { ...retry1, state: "running" as const, attempts: 2, startedAt: T + 100 };
  const done = {
    ...running2,
    state: "succeeded" as const,
    status: 200,
    finishedAt: T + 150,
    resultBody: new TextEncoder().encode("answer"),
    callbackState: "pending" as const,
    callbackNextAt: T + 150,
  };
  const cbRetry = { ...done, callbackAttempts: 1, callbackError: "503" };
  const cbDone = { ...cbRetry, callbackAttempts: 2, callbackState: "delivered" as const };
  return [queued, running1, retry1, running2, done, cbRetry, cbDone];
}

Deno.test("call view: progress only grows along a call's life", () => {
  const life = lifeOf("a");
  for (let i = 1; i < life.length; i++) {
    assert(progress(life[i]) > progress(life[i - 1]), `step ${i} (${life[i].state}) is further`);
  }
  // A replica that runs the call again after a crash starts over at attempt 1: its
  // running record is behind, its final one ahead of anything unfinished.
  const rerun = { ...life[1] };
  assert(progress(rerun) < progress(life[3]));
  assert(progress({ ...life[4], attempts: 1 }) > progress(life[3]));
});

Deno.test("call view: out-of-order and repeated records keep the furthest state", async () => {
  const dir = await Deno.makeTempDir({ prefix: "f2s-call-view-" });
  const view = openCallView(`${dir}/async.db`);
  try {
    const life = lifeOf("a");
    assert(!("body" in life[0]) && !("headers" in life[0]), "no request in a record");
    // Reversed: only the first (the last step) is kept, everything older is ignored.
    const kept = [...life].reverse().map((r) => view.apply(r));
    assertEquals(kept, [true, false, false, false, false, false, false]);
    const got = view.get("a")!;
    assertEquals(got.state, "succeeded");
    assertEquals(got.callbackState, "delivered");
    assertEquals(new TextDecoder().decode(got.resultBody), "answer");
    assertEquals(got.caller, { name: "olga", group: "orders" });
    // In order, each step replaces the one before; a replay changes nothing.
    for (const r of lifeOf("b")) assert(view.apply(r));
    for (const r of lifeOf("b")) assert(!view.apply(r));
    assertEquals(view.get("b")!.attempts, 2);

    view.apply(lifeOf("c")[1]); // running
    assertEquals(view.counts("orders"), {
      queued: 0,
      running: 1,
      succeeded: 2,
      failed: 0,
      "dead-lettered": 0,
    });
    assertEquals(view.list("orders", 10, "otto").length, 0);
    assertEquals(view.list("orders", 10, "olga").map((c) => c.id).sort(), ["a", "b", "c"]);
    assertEquals(view.list("orders", 2).length, 2);

    // Finished ones go after retention; unfinished ones only when stale.
    assertEquals(view.purge(T + 151, T - 1), 2);
    assertEquals(view.get("a"), undefined);
    assertEquals(view.get("c")!.state, "running");
    assertEquals(view.purge(T + 151, T + 1), 1);
  } finally {
    view.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("call view: records through the topic's encoding", () => {
  const done = lifeOf("a")[4];
  const back = decodeRecord(encodeRecord(done))!;
  assertEquals(back, done);

  const big = { ...done, resultBody: new Uint8Array(SHARED_RESULT_MAX + 10).fill(7) };
  const cut = decodeRecord(encodeRecord(big))!;
  assertEquals(cut.resultBody!.byteLength, SHARED_RESULT_MAX);
  assertEquals(cut.resultTruncated, true);
  assert(encodeRecord(big).byteLength < 1_000_000, "fits Kafka's default record size");

  const text = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
  assertEquals(decodeRecord(new TextEncoder().encode("not json")), undefined);
  assertEquals(decodeRecord(text({ ...done, state: "hacked" })), undefined);
  assertEquals(decodeRecord(text({ ...done, caller: { name: 5 } })), undefined);
  assertEquals(decodeRecord(text({ ...done, attempts: "2" })), undefined);
});
