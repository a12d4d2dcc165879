// Asynchronous calls end to end through `f2s dev` with real processes: exactly once when
// nothing fails, retries then success, dead-letter, callbacks, refused callbacks.
import { assert, assertEquals } from "../harness/assert.ts";
import { waitFor } from "../harness/dev.ts";
const ROOT = new URL("../../", import.meta.url).pathname;

import { cleanup, countById, getCall, records, settled, setup, start, submit } from "./helpers.ts";

Deno.test("async: 1,000 calls with maxReplicas 2 all succeed exactly once", async () => {
  const s = await setup([{ name: "counter", maxReplicas: 2, async: { maxConcurrency: 20 } }]);
  const server = await start(s);
  try {
    const ids: string[] = [];
    for (let batch = 0; batch < 20; batch++) {
      const got = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          submit(server.url, "/counter", {
            method: "POST",
            body: JSON.stringify({ n: batch * 50 + i }),
          })),
      );
      ids.push(...got);
    }
    assertEquals(new Set(ids).size, 1000);
    const counts = await settled(server.url, "counter", 1000);
    assertEquals(counts.succeeded, 1000);
    const seen = countById(await records(s));
    assertEquals(seen.size, 1000, "every call reached the app");
    for (const id of ids) assertEquals(seen.get(id), 1, `call ${id} ran once`);
    const one = await getCall(server.url, ids[7]);
    assertEquals(one.state, "succeeded");
    assertEquals(one.attempts, 1);
    assertEquals(one.result.status, 200);
    assertEquals(JSON.parse(one.result.body).body, JSON.stringify({ n: 7 }));
  } finally {
    await cleanup(s, server);
  }
});

Deno.test("async: retries, dead-letter, callbacks, refused callbacks", async (t) => {
  const received: { id: string; state: string; status: string; body: string }[] = [];
  let failCallbacks = 1; // the receiver refuses its first callback: delivery is retried
  const receiver = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const body = await req.text();
    if (failCallbacks-- > 0) return new Response("busy", { status: 503 });
    received.push({
      id: req.headers.get("x-call-id") ?? "",
      state: req.headers.get("x-f2s-call-state") ?? "",
      status: req.headers.get("x-f2s-status") ?? "",
      body,
    });
    return new Response(null, { status: 204 });
  });
  const s = await setup(
    [
      { name: "flaky" },
      { name: "doomed", async: { maxRetries: 1 } },
      { name: "hooked", maxReplicas: 2 },
    ],
    `    callbacks:
      allow: ["127.0.0.1", "10.1.2.3", "[::ffff:7f00:2]", "localhost:9"]
      allow_networks: ["127.0.0.1/32"]
`,
  );
  const server = await start(s);
  try {
    // What a client sends in F2S's own delivery headers must never reach the app as F2S's.
    const forged = {
      "x-f2s-attempt": "7",
      "x-f2s-schedule-tick": "2020-01-01T00:00:00.000Z",
    };

    await t.step("a call failing its first two attempts succeeds on the third", async () => {
      const id = await submit(server.url, "/flaky/flaky?fail=2", {
        method: "POST",
        body: "{}",
        headers: forged,
      });
      const call = await waitFor("flaky call done", async () => {
        const c = await getCall(server.url, id);
        return c.state === "succeeded" || c.state === "dead-lettered" ? c : undefined;
      }, 30_000);
      assertEquals(call.state, "succeeded");
      assertEquals(call.attempts, 3);
      assertEquals(JSON.parse(call.result.body).attempt, 3);
      assertEquals(countById(await records(s)).get(id), 3);
      const seen = (await records(s)).filter((r) => r.id === id);
      assertEquals(seen.map((r) => r.attempt), ["1", "2", "3"], "X-F2S-Attempt, not the client's");
      assertEquals(seen.map((r) => r.tick), ["-", "-", "-"], "no schedule tick from a client");
    });

    await t.step("a synchronous call cannot carry F2S's delivery headers either", async () => {
      const res = await fetch(`${server.url}/invoke/flaky/flaky`, {
        method: "POST",
        headers: { ...forged, "x-request-id": "forged-sync-1", "X-F2S-ATTEMPT": "8" },
        body: "{}",
      });
      assertEquals(res.status, 200, await res.text());
      const seen = (await records(s)).filter((r) => r.id === "forged-sync-1");
      assertEquals(seen.map((r) => [r.tick, r.attempt]), [["-", "-"]]);
    });

    await t.step("a call failing past maxRetries is dead-lettered", async () => {
      const id = await submit(server.url, "/doomed/flaky?fail=5");
      const call = await waitFor("doomed call done", async () => {
        const c = await getCall(server.url, id);
        return c.finishedAt ? c : undefined;
      }, 30_000);
      assertEquals(call.state, "dead-lettered");
      assertEquals(call.attempts, 2, "maxRetries 1: the first attempt and one retry");
      assertEquals(call.status, 500);
      const events = await (await fetch(`${server.url}/events?type=async.dead_letter`)).json();
      assert(events.some((e: { data?: { callId?: string } }) => e.data?.callId === id));
    });

    await t.step("a callback receiver sees every result", async () => {
      const callback = `http://127.0.0.1:${receiver.addr.port}/done`;
      const ids = await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          submit(server.url, "/hooked", {
            method: "POST",
            body: `call-${i}`,
            headers: { "x-callback-url": callback },
          })),
      );
      await waitFor("every callback", () => received.length >= ids.length, 60_000);
      assertEquals(new Set(received.map((r) => r.id)), new Set(ids));
      for (const r of received) {
        assertEquals(r.state, "succeeded");
        assertEquals(r.status, "200");
        assertEquals(JSON.parse(r.body).id, r.id);
      }
      const first = await getCall(server.url, ids[0]);
      assertEquals(first.callback.state, "delivered");
    });

    await t.step(
      "callbacks to non-allowed or internal addresses are refused with 400",
      async () => {
        const before = (await records(s)).length;
        for (
          const url of [
            "http://169.254.169.254/latest/meta-data", // not in the allow-list
            "http://10.1.2.3/hook", // allowed host, but a private address
            "http://[::ffff:7f00:2]/hook", // IPv4-mapped 127.0.0.2, outside allow_networks
            "http://localhost:9/hook", // allowed host resolving to loopback ::1 too
            "ftp://127.0.0.1/hook",
            "http://user:pw@127.0.0.1/hook",
            "not a url",
          ]
        ) {
          const res = await fetch(`${server.url}/async/invoke/hooked`, {
            method: "POST",
            headers: { "x-callback-url": url },
            body: "x",
          });
          const body = await res.json();
          assertEquals(res.status, 400, `${url}: ${JSON.stringify(body)}`);
          assert(typeof body.error === "string" && body.error.length > 0);
        }
        await new Promise((r) => setTimeout(r, 300));
        assertEquals((await records(s)).length, before, "nothing refused was queued");
      },
    );

    await t.step("f2s fn invoke --async and f2s fn calls", async () => {
      const cli = async (...args: string[]) => {
        const out = await new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", `${ROOT}main.ts`, "fn", "--url", server.url, ...args],
          stdout: "piped",
          stderr: "piped",
        }).output();
        const text = new TextDecoder().decode(out.stdout);
        assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
        return text;
      };
      const queued = JSON.parse(await cli("invoke", "flaky", "--async", "-d", '{"from":"cli"}'));
      assertEquals(queued.state, "queued");
      await waitFor(
        "the cli's call done",
        async () => (await getCall(server.url, queued.id)).state === "succeeded",
        30_000,
      );
      const table = await cli("calls", "flaky");
      assert(table.split("\n")[0].startsWith("CALL"), table);
      assert(table.includes(`${queued.id}  succeeded`), table);
    });

    await t.step("a body over max_body_bytes is refused with 413", async () => {
      const res = await fetch(`${server.url}/async/invoke/hooked`, {
        method: "POST",
        body: new Uint8Array((1 << 20) + 1),
      });
      await res.body?.cancel();
      assertEquals(res.status, 413);
    });

    await t.step("GET /calls/{id} of an unknown call is 404", async () => {
      const res = await fetch(`${server.url}/calls/nope`);
      await res.body?.cancel();
      assertEquals(res.status, 404);
    });
  } finally {
    await receiver.shutdown();
    await cleanup(s, server);
  }
});
