// The UI's file handler (control/ui.ts) with real requests: what it serves and how (types,
// CSP, ETags, HEAD), that every file the page loads is there without a build step, that
// nothing outside ui/ can be reached, and that unknown paths fall through to the API.
import { createUiHandler, UI_CSP } from "../../control/ui.ts";
import { assert, assertEquals, assertMatch } from "../harness/assert.ts";

const ui = createUiHandler();

function get(path: string, init: RequestInit = {}): Promise<Response | undefined> {
  const req = new Request(`http://127.0.0.1${path}`, init);
  return ui(req, new URL(req.url));
}

async function must(path: string, init: RequestInit = {}): Promise<Response> {
  const res = await get(path, init);
  assert(res, `${path} is not served`);
  return res;
}

Deno.test("ui handler: index.html at / with a strict CSP and revalidation", async () => {
  const res = await must("/");
  assertEquals(res.status, 200);
  assertEquals(res.headers.get("content-type"), "text/html; charset=utf-8");
  assertEquals(res.headers.get("cache-control"), "no-cache");
  assertEquals(res.headers.get("content-security-policy"), UI_CSP);
  assertMatch(UI_CSP, /script-src 'self'(;|$)/);
  assert(!UI_CSP.includes("unsafe-inline") && !UI_CSP.includes("unsafe-eval"));
  assertEquals(res.headers.get("x-content-type-options"), "nosniff");
  const html = await res.text();
  assertMatch(html, /<script type="module" src="\/ui\/js\/main.js"><\/script>/);
  assertEquals(res.headers.get("content-length"), String(new TextEncoder().encode(html).length));
  // The CSP forbids inline code: no inline <script>, no style attributes, no handlers.
  assert(!/<script(?![^>]*\bsrc=)[^>]*>/i.test(html), "inline <script> in index.html");
  assert(!/\sstyle=/i.test(html), "style attribute in index.html");
  assert(!/\son[a-z]+=/i.test(html), "inline event handler in index.html");
  assertEquals((await must("/index.html")).status, 200);
});

Deno.test("ui handler: ETag answers 304, HEAD has no body", async () => {
  const first = await must("/ui/app.css");
  const etag = first.headers.get("etag");
  assert(etag && /^"[0-9a-f]+"$/.test(etag), `etag ${etag}`);
  await first.body?.cancel();
  const again = await must("/ui/app.css", { headers: { "if-none-match": etag } });
  assertEquals(again.status, 304);
  assertEquals(await again.text(), "");
  assertEquals(again.headers.get("etag"), etag);
  const other = await must("/ui/app.css", { headers: { "if-none-match": '"other", W/' + etag } });
  assertEquals(other.status, 304);
  const stale = await must("/ui/app.css", { headers: { "if-none-match": '"0000"' } });
  assertEquals(stale.status, 200);
  await stale.body?.cancel();
  const head = await must("/ui/app.css", { method: "HEAD" });
  assertEquals(head.status, 200);
  assertEquals(head.headers.get("content-type"), "text/css; charset=utf-8");
  assertEquals(await head.text(), "");
});

Deno.test("ui handler: every file the page loads is served with its type", async () => {
  // Walks the page like a browser: index.html's references, then every static import.
  const html = await (await must("/")).text();
  const pending = [...html.matchAll(/(?:src|href)="(\/ui\/[^"]+)"/g)].map((m) => m[1]);
  const seen = new Set<string>();
  const types: Record<string, string> = {
    js: "text/javascript; charset=utf-8",
    css: "text/css; charset=utf-8",
    svg: "image/svg+xml",
  };
  while (pending.length > 0) {
    const path = pending.pop()!;
    if (seen.has(path)) continue;
    seen.add(path);
    const res = await must(path);
    assertEquals(res.status, 200, path);
    const ext = path.split(".").pop()!;
    assertEquals(res.headers.get("content-type"), types[ext], path);
    const text = await res.text();
    if (ext !== "js") continue;
    for (const m of text.matchAll(/^\s*(?:import|export)[^"']*?from\s+"([^"]+)"/gm)) {
      pending.push(new URL(m[1], `http://x${path}`).pathname);
    }
    // Strings never become markup: the CSP would not stop HTML injected this way.
    assert(!/\.innerHTML\s*=|insertAdjacentHTML|document\.write/.test(text), `${path} writes HTML`);
  }
  const views = ["list", "form", "detail", "invoke", "settings", "signin"];
  for (const v of views) assert(seen.has(`/ui/js/views/${v}.js`), `views/${v}.js not reached`);
  assert(seen.size >= 15, `only ${seen.size} files reached`);
});

Deno.test("ui handler: unknown and escaping paths fall through to the API", async () => {
  for (
    const path of [
      "/ui/nope.js",
      "/ui/",
      "/ui",
      "/ui/../deno.json",
      "/ui/%2e%2e/deno.json",
      "/ui/js/..%2F..%2Fmain.ts",
      "/ui/js/../../main.ts",
      "/ui/App.css",
      "/ui/.hidden.js",
      "/ui/js/main.ts",
      "/uix/app.css",
      "/functions",
    ]
  ) {
    assertEquals(await get(path), undefined, path);
  }
  for (const method of ["POST", "PUT", "DELETE"]) {
    assertEquals(await get("/", { method }), undefined, method);
  }
});

Deno.test("ui handler: a changed file is served anew with a new ETag", async () => {
  const dir = await Deno.makeTempDir({ prefix: "f2s-ui-handler-" });
  try {
    await Deno.writeTextFile(`${dir}/index.html`, "<!doctype html><p>one</p>");
    const handler = createUiHandler({ root: new URL(`file://${dir}/`) });
    const req = () => new Request("http://127.0.0.1/");
    const first = await handler(req(), new URL("http://127.0.0.1/"));
    assertEquals(await first?.text(), "<!doctype html><p>one</p>");
    await Deno.writeTextFile(`${dir}/index.html`, "<!doctype html><p>two, longer</p>");
    // mtime has a coarse resolution on some file systems: make sure it moves.
    const later = new Date(Date.now() + 5000);
    await Deno.utime(`${dir}/index.html`, later, later);
    const second = await handler(req(), new URL("http://127.0.0.1/"));
    assertEquals(await second?.text(), "<!doctype html><p>two, longer</p>");
    assert(first?.headers.get("etag") !== second?.headers.get("etag"), "etag did not change");
    assertEquals(
      await handler(
        new Request("http://127.0.0.1/ui/app.css"),
        new URL("http://127.0.0.1/ui/app.css"),
      ),
      undefined,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
