// Privileges of asynchronous calls through `f2s dev` with basic auth: submitting needs
// functions:invoke; a call is visible to whoever queued it and to settings:view only; the
// caller's credentials are not stored, its identity reaches the function.
import { assert, assertEquals } from "../harness/assert.ts";
import { waitFor } from "../harness/dev.ts";
import { basicAuth, cleanup, ORDERS_AUTH, setup, start } from "./helpers.ts";

Deno.test("async with auth: who may queue, who may see a call", async () => {
  const s = await setup(
    [{ name: "orders" }, { name: "billing" }],
    ORDERS_AUTH,
  );
  const server = await start(s);
  try {
    const olga = basicAuth("olga", "olga-pass");
    const res = await fetch(`${server.url}/async/invoke/orders`, {
      method: "POST",
      headers: { ...olga, cookie: "session=secret" },
      body: "x",
    });
    await res.body?.cancel();
    assertEquals(res.status, 202);
    const id = res.headers.get("x-call-id")!;

    const refused = await fetch(`${server.url}/async/invoke/billing`, {
      method: "POST",
      headers: olga,
      body: "x",
    });
    await refused.body?.cancel();
    assertEquals(refused.status, 403, "functions:invoke is needed for the function");
    const anonymous = await fetch(`${server.url}/async/invoke/orders`, { method: "POST" });
    await anonymous.body?.cancel();
    assertEquals(anonymous.status, 401);

    const view = async (headers: HeadersInit) => {
      const r = await fetch(`${server.url}/calls/${id}`, { headers });
      return { status: r.status, body: await r.json() };
    };
    const own = await waitFor("olga's call done", async () => {
      const v = await view(olga);
      return v.body.state === "succeeded" ? v : undefined;
    }, 30_000);
    assertEquals(own.status, 200);
    const answer = JSON.parse(own.body.result.body);
    assertEquals(answer.caller, "olga", "the function learns who queued the call");
    assertEquals((await view(basicAuth("otto", "otto-pass"))).status, 404, "another caller");
    assertEquals((await view(basicAuth("admin", "admin-pass"))).status, 200, "settings:view");

    // The database and its write-ahead log: what is on disk either way.
    let text = "";
    for (const f of ["async.db", "async.db-wal"]) {
      const bytes = await Deno.readFile(`${s.dir}/queue/${f}`).catch(() => new Uint8Array());
      text += new TextDecoder("latin1").decode(bytes);
    }
    assert(text.includes(id), "the call is on disk");
    assert(!text.includes("olga-pass") && !btoaIncludes(text), "credentials were stored");
    assert(!text.includes("session=secret"), "the cookie was stored");

    const list = await fetch(`${server.url}/functions/orders/calls`, {
      headers: basicAuth("otto", "otto-pass"),
    });
    assertEquals((await list.json()).calls.length, 0, "otto sees only his own calls");
  } finally {
    await cleanup(s, server);
  }
});

function btoaIncludes(text: string): boolean {
  return text.includes(btoa("olga:olga-pass"));
}
