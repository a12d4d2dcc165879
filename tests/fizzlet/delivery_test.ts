/**
 * The fizzlet's side of the delivery rule (common/delivery.ts, docs/fizzlet.md): it marks
 * its 502 with X-F2S-Not-Delivered only when the app did not get the request (or got an
 * idempotent one that broke off), never when a POST reached the app, and it drops that
 * header from the app's own answers.
 */

import { assertEquals } from "../harness/assert.ts";
import { rawServer } from "../harness/raw_server.ts";
import { freePort, functionDir, startFizzlet } from "./helpers.ts";

/** An app on raw TCP: counts each request and answers `answer(head)`, or closes on null. */
function rawApp(answer: (head: string) => string | null) {
  return rawServer((_, head) => answer(head));
}

async function proxyTo(appPort: number) {
  const dir = await functionDir({});
  const fizzlet = await startFizzlet({
    dir,
    args: ["--mode", "proxy", "--app-port", String(appPort)],
    removeOnFailure: [dir],
  });
  return {
    fizzlet,
    async stop() {
      assertEquals(await fizzlet.stop(), 0);
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("fizzlet: X-F2S-Not-Delivered marks only requests the app never got", async () => {
  // Nothing listens on the app port: the connection is refused, nothing was delivered.
  const down = await proxyTo(freePort());
  try {
    const res = await fetch(`${down.fizzlet.url}/x`, { method: "POST", body: "once" });
    assertEquals(res.status, 502);
    assertEquals(res.headers.get("x-f2s-not-delivered"), "1");
    assertEquals((await res.json()).error, "app unreachable");
  } finally {
    await down.stop();
  }

  // The app reads the request and closes unanswered: the POST may be running, so no mark
  // (the dispatcher must not run it elsewhere); a GET may be sent again, so it is marked.
  const app = rawApp((head) => head.startsWith("GET /ok") ? ok("fine") : null);
  const p = await proxyTo(app.port);
  try {
    const warm = await fetch(`${p.fizzlet.url}/ok`);
    assertEquals(await warm.text(), "fine");
    const post = await fetch(`${p.fizzlet.url}/crash`, { method: "POST", body: "once" });
    await post.body?.cancel();
    assertEquals(post.status, 502);
    assertEquals(post.headers.get("x-f2s-not-delivered"), null);
    assertEquals(app.heads.filter((h) => h.startsWith("POST /crash")).length, 1);
    const keyed = await fetch(`${p.fizzlet.url}/crash`, {
      method: "POST",
      headers: { "idempotency-key": "k1" },
      body: "again",
    });
    await keyed.body?.cancel();
    assertEquals(keyed.headers.get("x-f2s-not-delivered"), "1");
    const get = await fetch(`${p.fizzlet.url}/crash`);
    await get.body?.cancel();
    assertEquals(get.status, 502);
    assertEquals(get.headers.get("x-f2s-not-delivered"), "1");
  } finally {
    await p.stop();
    await app.close();
  }
});

Deno.test("fizzlet: an app cannot set X-F2S-Not-Delivered on its own answer", async () => {
  const app = rawApp(() =>
    "HTTP/1.1 502 Bad Gateway\r\nX-F2S-Not-Delivered: 1\r\nContent-Length: 6\r\n\r\nforged"
  );
  const p = await proxyTo(app.port);
  try {
    const res = await fetch(`${p.fizzlet.url}/`, { method: "POST", body: "x" });
    assertEquals(res.status, 502);
    assertEquals(res.headers.get("x-f2s-not-delivered"), null);
    assertEquals(await res.text(), "forged");
  } finally {
    await p.stop();
    await app.close();
  }
});

function ok(text: string): string {
  return `HTTP/1.1 200 OK\r\nContent-Length: ${text.length}\r\n\r\n${text}`;
}
