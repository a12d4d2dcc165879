// The web UI end to end: Debian's chromium (playwright-core) against a real `f2s dev` with
// real instances. A user signs in, creates a function from the form (inline validation
// from the API's validator, YAML preview, copy and download), sees it become ready,
// invokes it and reads the answer, sees the request-rate chart move, and deletes it. A
// user without functions:create does not see the create action. Token and none modes sign
// in (or not) as they should. Screenshots of each screen go to tests/artifacts/ui/.
import type { Page } from "playwright-core";
import { parse as parseYaml } from "yaml";
import { parseFunction } from "../../common/function.ts";
import { assert, assertEquals, assertMatch } from "../harness/assert.ts";
import { processesMatching, waitFor } from "../harness/dev.ts";
import { basic, screenshot, STEP_TIMEOUT_MS, withUi } from "./browser.ts";

const USERS = `
      - username: roman
        password: admin-pass
        group: admins
      - username: vera
        password: viewer-pass
        group: viewers
    authorization:
      - group: admins
        privileges: [functions:list, functions:invoke, functions:create, functions:delete,
          functions:update, functions:local, settings:view]
      - group: viewers
        privileges: [functions:list, "functions:invoke:hello-*"]
`;

const BASIC_CONFIG = `
f2s:
  autoscaling:
    tick: 500ms
  kafka:
    enabled: false
    listeners:
      - topic: orders
        actions:
          - name: new-order
            triggers:
              - type: header
                name: X-Tenant
                filter: equal
                value: acme
            f2sfunctions: [hello-node]
  auth:
    global_config:
      type: basic
    basic:${USERS}`;

const TOKEN_CONFIG = `
f2s:
  auth:
    global_config:
      type: token
    token:
      jwt_secret: ui-test-secret-with-at-least-32-bytes-of-entropy
      expiry: 10m
    basic:${USERS}`;

// Playwright keeps its connection to the browser (pipes, timers) between steps.
const BROWSER_TEST = { sanitizeOps: false, sanitizeResources: false };

/** Waits until the (first) element's text matches `pattern`; returns the text. */
async function textOf(page: Page, selector: string, pattern: RegExp): Promise<string> {
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  let last: string | undefined;
  while (Date.now() < deadline) {
    const el = page.locator(selector).first();
    last = (await el.textContent({ timeout: 1000 }).catch(() => null)) ?? undefined;
    if (last !== undefined && pattern.test(last)) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${selector} never matched ${pattern}; it reads ${JSON.stringify(last)}`);
}

/** Form controls and buttons on the page that have no accessible name. */
async function unlabelled(page: Page): Promise<string[]> {
  return await page.evaluate(`[...document.querySelectorAll("input, select, textarea, button")]
    .filter((el) => !(el.getAttribute("aria-label") || el.getAttribute("aria-labelledby") ||
      el.labels?.length || (el.tagName === "BUTTON" && el.textContent.trim())))
    .map((el) => el.outerHTML.slice(0, 100))`);
}

async function signIn(page: Page, user: string, password: string) {
  await page.fill("#signin-username", user);
  await page.fill("#signin-password", password);
  await page.click("form button[type=submit]");
}

Deno.test({
  name: "ui e2e: sign in, create from the form, ready, invoke, chart moves, settings, delete",
  ...BROWSER_TEST,
  fn: () =>
    withUi({ config: BASIC_CONFIG }, async ({ server, newPage, problems, functionsDir }) => {
      const page = await newPage();
      await page.context().grantPermissions(["clipboard-read", "clipboard-write"], {
        origin: server.url,
      });

      // Sign-in screen: nothing else is reachable before it.
      await page.goto(server.url);
      await textOf(page, "h1", /Sign in to F2S/);
      assertEquals(await page.locator("#nav").isVisible(), false);
      await screenshot(page, "signin");
      assertEquals(await unlabelled(page), []);
      await signIn(page, "roman", "wrong-password");
      await textOf(page, ".banner.error", /username or password is not right/);
      await screenshot(page, "signin-error");
      await signIn(page, "roman", "admin-pass");
      await textOf(page, "#user", /Signed in as roman \(admins\)/);

      // Functions list: both examples with their endpoint, method and image.
      const row = (name: string) => page.locator(`tr[data-name="${name}"]`);
      await row("hello-node").waitFor();
      const nodeRow = (await row("hello-node").innerText()).replace(/\s+/g, " ");
      assertMatch(nodeRow, /\/hello-node ANY f2s-examples\/nodejs:latest Scaled to zero 0 – never/);
      assertMatch(await row("hello-python").innerText(), /POST/);
      await screenshot(page, "list");
      assertEquals(await unlabelled(page), []);
      await page.fill("#function-search", "python");
      await textOf(page, ".count", /1 of 2 functions match/);
      assertEquals(await row("hello-node").count(), 0);
      await page.fill("#function-search", "");
      await page.click('button[data-sort="name"]'); // now descending
      await textOf(page, "tbody tr:first-child th", /hello-python/);
      assertEquals(await page.locator("th[aria-sort=descending]").count(), 1);
      await page.click('button[data-sort="name"]');
      await textOf(page, "tbody tr:first-child th", /hello-node/);

      // Create form: the API's validator words the problems beside the fields.
      await page.click("#create-function");
      await textOf(page, "h1", /Create a function/);
      await page.fill("#field-metadata-name", "Bad Name");
      await page.fill("#field-spec-endpoint", "no-slash");
      await page.fill("#field-target-minReplicas", "two");
      await textOf(page, "#field-metadata-name-error", /DNS-1123 label/);
      await textOf(page, "#field-spec-endpoint-error", /must be a path starting with '\/'/);
      await textOf(page, "#field-target-minReplicas-error", /must be an integer/);
      assertEquals(await page.getAttribute("#field-metadata-name", "aria-invalid"), "true");
      assertEquals(await page.isDisabled("#copy-yaml"), true);
      await screenshot(page, "create-form-errors");

      await page.fill("#field-metadata-name", "ui-echo");
      await page.fill("#field-spec-endpoint", "/hello-node"); // taken: a conflict (409)
      await page.fill("#field-target-minReplicas", "1");
      await page.fill("#field-target-maxReplicas", "2");
      await page.fill("#field-target-containerImage", "f2s-examples/nodejs:latest");
      await textOf(page, "#field-spec-endpoint-error", /already used by function "hello-node"/);
      await page.fill("#field-spec-endpoint", "/ui-echo");
      await page.click("#add-env");
      await page.fill('[aria-label="Name of variable 1"]', "GREETING");
      await page.fill('[aria-label="Value of variable 1"]', "hello");
      await page.fill("#field-target-local-command", "node server.js");
      const yaml = await textOf(page, "#yaml-preview", /command: node server\.js/);
      await textOf(page, "#yaml-note", /Valid/);
      assertEquals(await page.locator(".field-error:visible").count(), 0);
      const previewed = parseFunction(parseYaml(yaml));
      assert(previewed.ok, `preview is not a valid manifest: ${yaml}`);
      assertEquals(previewed.fn.name, "ui-echo");
      assertEquals(previewed.fn.env, { GREETING: "hello" });
      assertEquals([previewed.fn.minReplicas, previewed.fn.maxReplicas], [1, 2]);
      await screenshot(page, "create-form");
      assertEquals(await unlabelled(page), []);

      await page.click("#copy-yaml");
      await textOf(page, ".form-status", /copied/);
      assertEquals(await page.evaluate("navigator.clipboard.readText()"), yaml);
      const [download] = await Promise.all([
        page.waitForEvent("download"),
        page.click("#download-yaml"),
      ]);
      assertEquals(download.suggestedFilename(), "ui-echo.yaml");
      assertEquals(await Deno.readTextFile((await download.path())!), yaml);

      // Save: the detail screen shows the instance becoming ready (a real process).
      await page.click("#save-function");
      await page.waitForURL(/#\/functions\/ui-echo$/);
      await textOf(page, "#instances-status", /Ready 1 \/ 1/);
      const stored = await fetch(`${server.url}/functions/ui-echo`, {
        headers: { authorization: basic("roman", "admin-pass") },
      });
      assertEquals((await stored.json()).target.env, { GREETING: "hello" });
      await textOf(page, ".event-list", /instance ui-echo-\d+ is ready/);

      // Edit: the stored manifest fills the form; the name stays; a change is saved.
      await page.click("#edit-function");
      await textOf(page, "h1", /Edit function "ui-echo"/);
      await page.waitForSelector(".function-form:not([aria-busy])");
      assertEquals(
        await page.inputValue("#field-target-containerImage"),
        "f2s-examples/nodejs:latest",
      );
      assertEquals(await page.getAttribute("#field-metadata-name", "readonly"), "");
      assertEquals(await page.inputValue('[aria-label="Value of variable 1"]'), "hello");
      await page.fill("#field-spec-description", "Echoes what it gets");
      await page.fill("#field-target-maxReplicas", "0");
      await textOf(page, "#field-target-maxReplicas-error", /must be between 1 and 1000/);
      await page.fill("#field-target-maxReplicas", "3");
      await textOf(page, "#yaml-preview", /description: Echoes what it gets[\s\S]*maxReplicas: 3/);
      await page.click("#save-function");
      await page.waitForURL(/#\/functions\/ui-echo$/);
      await textOf(page, ".facts", /Echoes what it gets/);
      await textOf(page, "#instances-status", /Ready 1 \/ 1\s*min 1, max 3/);

      // Invoke: JSON checked while typing; the answer's status, time, headers and body.
      await page.click("#invoke-function");
      await textOf(page, "#invoke-prefix", /^\/invoke\/ui-echo$/);
      await page.selectOption("#invoke-method", "POST");
      await page.fill("#invoke-path", "/greet?who=ui");
      await page.fill("#invoke-headers", "X-Test: forty-two");
      await page.fill("#invoke-body", '{"hello": }');
      await textOf(page, "#invoke-body-error", /not valid JSON/);
      await page.fill("#invoke-body", '{"hello": "world"}');
      assertEquals(await page.isHidden("#invoke-body-error"), true);
      await page.click("#invoke-send");
      await textOf(page, "#invoke-status", /^200 OK$/);
      await textOf(page, "#invoke-duration", /^\d+(\.\d+)? (ms|s)$/);
      const answer = JSON.parse(await page.locator("#invoke-response-body").innerText());
      assertEquals(answer.app, "hello-node");
      assertEquals([answer.method, answer.path, answer.query], ["POST", "/greet", { who: "ui" }]);
      assertEquals(answer.headers["x-test"], "forty-two");
      assertEquals(answer.headers["content-type"], "application/json");
      assertEquals(answer.bodyLength, 18);
      await page.click(".answer-headers summary");
      assertMatch(await page.locator(".answer-headers").innerText(), /x-request-id/);
      await page.selectOption("#invoke-method", "GET");
      assertEquals(await page.isDisabled("#invoke-body"), true);
      await page.fill("#invoke-path", "/status?code=503");
      await page.click("#invoke-send");
      await textOf(page, "#invoke-status", /^503/);
      await textOf(
        page,
        "#invoke-history",
        /GET\s*\/status\?code=503\s*503[\s\S]*POST\s*\/greet\?who=ui\s*200/,
      );
      await screenshot(page, "invoke");
      assertEquals(await unlabelled(page), []);
      await page.click("#invoke-history li:nth-child(2) button"); // back to the POST
      assertEquals(await page.inputValue("#invoke-method"), "POST");
      assertEquals(await page.inputValue("#invoke-body"), '{"hello": "world"}');
      await textOf(page, "#invoke-status", /^200 OK$/);

      // Detail: the request-rate chart follows real traffic.
      await page.goto(`${server.url}/#/functions/ui-echo`);
      await page.selectOption("#chart-range", "1");
      const rate = page.locator("#chart-rate");
      // An interval without requests first, so the rise below is the load's.
      // (Polled from here: the page's CSP rightly refuses waitForFunction's eval.)
      await waitFor(
        "an idle interval on the rate chart",
        async () =>
          Number(await rate.getAttribute("data-points")) >= 2 &&
          (await rate.getAttribute("data-latest")) === "0",
      );
      const before = await rate.locator("path.line.s1").getAttribute("d");
      const load = async () => {
        for (let i = 0; i < 30; i++) {
          const res = await fetch(`${server.url}/invoke/ui-echo/load`, {
            headers: { authorization: basic("roman", "admin-pass") },
          });
          await res.body?.cancel();
          await new Promise((r) => setTimeout(r, 50));
        }
      };
      await load();
      await waitFor(
        "the rate chart to show the load",
        async () => Number(await rate.getAttribute("data-latest")) > 0,
      );
      assert(Number(await rate.getAttribute("data-max")) > 0, "rate chart did not rise");
      // The drawn line itself rises: its points are not all at one height (the idle zeros and
      // the load's rate). Its heights are the y of each M/L pair and each V.
      const drawn = (await rate.locator("path.line.s1").getAttribute("d")) ?? "";
      const heights = [...drawn.matchAll(/[ML]-?[\d.]+,(-?[\d.]+)|V(-?[\d.]+)/g)]
        .map((m) => Number(m[1] ?? m[2]));
      assert(
        heights.length >= 2 && Math.min(...heights) < Math.max(...heights),
        `the rate line does not rise: ${drawn} (before the load: ${before})`,
      );
      await textOf(page, "#chart-latency .chart-now", /\d+(\.\d+)? (ms|s)/);
      await textOf(page, "#chart-instances .chart-now", /^1$/);
      assertMatch(
        (await rate.locator("svg").getAttribute("aria-label"))!,
        /Requests per second: now/,
      );
      await textOf(page, ".facts", /Invocations\s*3\d/); // 2 calls from the invoke screen + 30
      await screenshot(page, "detail");
      assertEquals(await unlabelled(page), []);
      const [downloaded] = await Promise.all([
        page.waitForEvent("download"),
        page.click("#download-function-yaml"),
      ]);
      const storedYaml = parseYaml(await Deno.readTextFile((await downloaded.path())!));
      assertEquals([storedYaml.metadata.name, storedYaml.spec.description], [
        "ui-echo",
        "Echoes what it gets",
      ]);
      // Asynchronous calls: one queued now shows up on the function page.
      const queued = await fetch(`${server.url}/async/invoke/ui-echo/later`, {
        method: "POST",
        headers: { authorization: basic("roman", "admin-pass") },
        body: "later",
      });
      const callId = queued.headers.get("x-call-id");
      await queued.body?.cancel();
      assertEquals(queued.status, 202);
      await textOf(page, "#async-calls", new RegExp(`${callId}\\s*succeeded`));

      // Settings: the running configuration, secrets redacted.
      await page.click('#nav a[data-nav="settings"]');
      await textOf(page, "#auth-mode", /^basic$/);
      await textOf(
        page,
        "#kafka-listeners",
        /orders\s*new-order\s*header X-Tenant equal "acme"\s*hello-node/,
      );
      const settings = await page.locator("main").innerText();
      assertMatch(settings, /roman\s+admins\s+\*\*\*/);
      assert(!settings.includes("admin-pass") && !settings.includes("viewer-pass"), "secret shown");
      await page.click(".raw-config summary");
      assert(!(await page.locator("#raw-config").innerText()).includes("admin-pass"));
      await screenshot(page, "settings");
      assertEquals(await unlabelled(page), []);

      // A phone: the list becomes cards without sideways scrolling.
      await page.setViewportSize({ width: 390, height: 844 });
      await page.goto(`${server.url}/#/functions`);
      await row("ui-echo").waitFor();
      await textOf(page, 'tr[data-name="ui-echo"] td[data-label="Instances"]', /Ready 1 \/ 1/);
      const overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth",
      );
      assertEquals(overflow, 0, "the phone layout scrolls sideways");
      await screenshot(page, "list-phone");
      await page.goto(`${server.url}/#/functions/ui-echo`);
      await page.locator("#chart-rate").waitFor();
      await screenshot(page, "detail-phone");
      await page.setViewportSize({ width: 1280, height: 800 });

      // Delete: a modal dialog that starts on Cancel, Escape keeps the function.
      await page.goto(`${server.url}/#/functions`);
      await row("ui-echo").waitFor();
      await page.click('[data-focus="ui-echo:delete"]');
      await page.locator("dialog.confirm").waitFor();
      assertEquals(await page.evaluate("document.activeElement?.textContent"), "Cancel");
      await screenshot(page, "delete-dialog");
      await page.keyboard.press("Escape");
      await page.locator("dialog.confirm").waitFor({ state: "detached" });
      assertEquals(
        await page.evaluate("document.activeElement?.dataset?.focus"),
        "ui-echo:delete",
      );
      assertEquals(await row("ui-echo").count(), 1);
      await page.click('[data-focus="ui-echo:delete"]');
      await page.click("dialog.confirm button.danger");
      await row("ui-echo").waitFor({ state: "detached" });
      await textOf(page, ".form-status", /Function "ui-echo" was deleted/);
      const gone = await fetch(`${server.url}/functions/ui-echo`, {
        headers: { authorization: basic("roman", "admin-pass") },
      });
      assertEquals(gone.status, 404);
      await gone.body?.cancel();
      await waitFor(
        "the deleted function's instance to stop",
        () => processesMatching(`${functionsDir}/nodejs`).length === 0,
        20_000,
      );

      // An API error in plain words: a function that is not there.
      await page.goto(`${server.url}/#/functions/ui-echo`);
      await textOf(page, ".banner.error", /Function "ui-echo" not found\./);

      // Scaling decisions with their reasons: a request wakes hello-node from zero.
      const woke = await fetch(`${server.url}/invoke/hello-node/`, {
        headers: { authorization: basic("roman", "admin-pass") },
      });
      assertEquals(woke.status, 200);
      await woke.body?.cancel();
      await page.goto(`${server.url}/#/functions/hello-node`);
      await textOf(page, "table.decisions", /0 → 1\s*wake\s*scaled hello-node 0 → 1 \(wake\)/);
      await screenshot(page, "detail-scaling");
      assertEquals(problems, []);
    }),
});

Deno.test({
  name: "ui e2e: a user without functions:create sees no create, edit or delete actions",
  ...BROWSER_TEST,
  fn: () =>
    withUi({ config: BASIC_CONFIG }, async ({ server, newPage, problems }) => {
      const page = await newPage({ colorScheme: "dark" });
      await page.goto(server.url);
      await signIn(page, "vera", "viewer-pass");
      await textOf(page, "#user", /Signed in as vera \(viewers\)/);
      await page.locator('tr[data-name="hello-node"]').waitFor();
      assertEquals(await page.locator("#create-function").count(), 0);
      assertEquals(await page.locator("text=Create function").count(), 0);
      assertEquals(await page.locator('[data-focus$=":edit"], [data-focus$=":delete"]').count(), 0);
      assertEquals(await page.locator('[data-focus="hello-node:invoke"]').count(), 1);
      assertEquals(await page.locator("#nav-settings").isVisible(), false);
      await screenshot(page, "list-viewer-dark");

      // The form is refused in plain words even when reached by its address.
      await page.goto(`${server.url}/#/new`);
      await textOf(
        page,
        ".banner.error",
        /^You are not allowed to create functions \(missing privilege functions:create\)\./,
      );
      assertEquals(await page.locator("form.function-form").count(), 0);

      // Detail: no edit or delete; events need settings:view.
      await page.goto(`${server.url}/#/functions/hello-node`);
      await page.locator("#invoke-function").waitFor();
      assertEquals(await page.locator("#edit-function, #delete-function").count(), 0);
      await textOf(page, ".events", /need the settings:view privilege/);

      // The API's own 403, as the UI words it.
      const refused = await page.evaluate(`import("/ui/js/api.js").then(({ api }) =>
        api("/functions", { method: "POST", body: {} }).then(() => "accepted", (e) => e.message)
      )`);
      assertEquals(
        refused,
        "You are not allowed to create functions (missing privilege functions:create).",
      );
      assertEquals(problems, []);
    }),
});

Deno.test({
  name: "ui e2e: token mode signs in through /auth/signin; mode none needs no sign-in",
  ...BROWSER_TEST,
  fn: async () => {
    await withUi({ config: TOKEN_CONFIG }, async ({ server, newPage, problems }) => {
      const page = await newPage();
      await page.goto(server.url);
      await textOf(page, ".signin", /tokens, which you get by signing in/);
      await signIn(page, "roman", "admin-pass");
      await textOf(page, "#user", /Signed in as roman \(admins\)/);
      const stored = await page.evaluate('sessionStorage.getItem("f2s.session")');
      assertMatch(String(stored), /"authorization":"Bearer ey[\w-]+\.[\w-]+\.[\w-]+"/);
      await page.locator("#create-function").waitFor();
      // The sign-in outlives a reload of the tab, and ends with "Sign out".
      await page.reload();
      await textOf(page, "#user", /Signed in as roman/);
      await page.click("#user button");
      await textOf(page, ".signin", /You are signed out/);
      // A stored sign-in the server no longer accepts leads back to the sign-in screen.
      await page.evaluate(
        `sessionStorage.setItem("f2s.session", '{"authorization":"Bearer not.a.token"}')`,
      );
      await page.reload();
      await textOf(page, "h1", /Sign in to F2S/);
      assertEquals(await page.evaluate('sessionStorage.getItem("f2s.session")'), null);
      assertEquals(await page.evaluate('sessionStorage.getItem("f2s.session")'), null);
      // A token pasted by hand works too (the <details> alternative).
      const signin = await fetch(`${server.url}/auth/signin`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ username: "vera", password: "viewer-pass" }),
      });
      const { token } = await signin.json();
      await page.click(".token-details summary");
      await page.fill("#signin-token", token);
      await page.click(".token-details button[type=submit]");
      await textOf(page, "#user", /Signed in as vera \(viewers\)/);
      assertEquals(problems, []);
    });
    await withUi({}, async ({ server, newPage, problems }) => {
      const page = await newPage();
      await page.goto(server.url);
      await textOf(page, "#user", /No sign-in needed \(auth mode none\)/);
      await page.locator("#create-function").waitFor();
      assertEquals(await page.locator("#signin-username").count(), 0);
      await page.click('#nav a[data-nav="settings"]');
      await textOf(page, "#auth-mode", /^none$/);
      assertEquals(problems, []);
      // Through the real server: the page with its CSP, and unknown UI paths as API 404s.
      const index = await fetch(`${server.url}/`);
      assertMatch(index.headers.get("content-security-policy")!, /script-src 'self'/);
      await index.body?.cancel();
      const missing = await fetch(`${server.url}/ui/nope.js`);
      assertEquals(missing.status, 404);
      assertEquals((await missing.json()).error, "no route for GET /ui/nope.js");
    });
  },
});
