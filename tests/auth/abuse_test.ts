/**
 * Issue 14 through `f2s dev` with real auth: what a user with narrow privileges, or anyone
 * who can reach the port, must not be able to do. A scoped user cannot set the host command
 * (and nothing runs), cannot take another team's endpoint or part of its traffic; a
 * list-only user sees env names without values; an alias bomb is refused in milliseconds
 * without a memory spike; a flood of wrong passwords from one address is throttled while
 * another user, from another address, signs in fast; plus the item 9 answers.
 */

import net from "node:net";
import bcrypt from "bcryptjs";
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { basic, bearer, call } from "./helpers.ts";
import { type ControlPlane, processesMatching, startDev, waitFor } from "../harness/dev.ts";
import { copy } from "../harness/files.ts";
import { peakRss, rssMiB } from "../harness/rss.ts";

const ECHO = new URL("../control/fixtures/echo", import.meta.url).pathname;
const SECRET = "abuse-test-jwt-secret-long-enough-for-hs256";

function manifest(name: string, endpoint: string, extra: Record<string, unknown> = {}) {
  return {
    apiVersion: "f2s.opensight.ch/v1alpha1",
    kind: "Function",
    metadata: { name, namespace: "f2s" },
    spec: { endpoint, method: "ANY" },
    target: {
      containerImage: `f2s-tests/${name}:latest`,
      minReplicas: 0,
      maxReplicas: 1,
      local: { dir: "./echo", command: "node server.js" },
      ...extra,
    },
  };
}

function config(adminHash: string): string {
  return `
f2s:
  auth:
    global_config: { type: token }
    basic:
      - { username: admin, password: "${adminHash}", group: admins }
      - { username: olga, password: olga-password, group: orders }
      - { username: vera, password: vera-password, group: viewers }
      - { username: stray, password: stray-password, group: nobody }
    token: { jwt_secret: ${SECRET}, expiry: 5m }
    authorization:
      - group: admins
        privileges: [functions:list, functions:invoke, functions:create, functions:delete,
          functions:update, functions:local, settings:view, settings:update]
      - group: orders
        privileges: ["functions:list:orders-*", "functions:invoke:orders-*",
          "functions:create:orders-*", "functions:update:orders-*"]
      - group: viewers
        privileges: [functions:list]
`;
}

/** Runs `body` against a fresh `f2s dev` on its own functions folder, then cleans up. */
async function withDev(body: (dev: ControlPlane, dir: string) => Promise<void>): Promise<void> {
  const { dir, dev } = await setUp();
  try {
    await body(dev, dir);
  } finally {
    await tearDown(dir, dev);
  }
}

async function setUp(): Promise<{ dir: string; dev: ControlPlane }> {
  const dir = await Deno.makeTempDir({ prefix: "f2s-abuse-" });
  await copy(ECHO, `${dir}/echo`);
  const write = (name: string, m: unknown) =>
    Deno.writeTextFile(`${dir}/${name}.yaml`, JSON.stringify(m));
  await write("orders-x", manifest("orders-x", "/orders-x", { env: { ORDERS_TOKEN: "s3cr3t" } }));
  await write("billing", manifest("billing", "/billing", { env: { BILLING_KEY: "b1ll1ng" } }));
  const dev = await startDev({
    functionsDir: dir,
    config: config(bcrypt.hashSync("admin-password", 8)),
  });
  return { dir, dev };
}

async function tearDown(dir: string, dev: ControlPlane): Promise<void> {
  await dev.stop();
  await waitFor("no processes left in " + dir, () => processesMatching(dir).length === 0, 20_000);
  await Deno.remove(dir, { recursive: true });
}

async function signIn(url: string, user: string, password: string): Promise<string> {
  const a = await call(url, "POST", "/auth/signin", basic(user, password));
  assertEquals(a.status, 200, a.text);
  return a.json.token;
}

const json = (token: string) => ({ ...bearer(token), "content-type": "application/json" });

/** A JSON write to the API as the holder of `token`. */
function write(dev: ControlPlane, method: string, path: string, token: string, body: unknown) {
  return call(dev.url, method, path, json(token), JSON.stringify(body));
}

Deno.test("scoped users cannot set host commands, take endpoints, or read env values", () =>
  withDev(async (dev, dir) => {
    const admin = await signIn(dev.url, "admin", "admin-password");
    const olga = await signIn(dev.url, "olga", "olga-password");
    const vera = await signIn(dev.url, "vera", "vera-password");
    const current = (await call(dev.url, "GET", "/functions/orders-x", bearer(admin))).json;
    const { status: _, ...orders } = current;

    // Item 2: the host command is an operator's power. Olga may update orders-x, but not
    // its target.local; the refused PUT changes nothing and runs nothing.
    const marker = `${dir}/pwned`;
    const evil = structuredClone(orders);
    evil.target.local.command = `touch ${marker}; node server.js`;
    for (const path of ["/functions/orders-x", "/functions/orders-x?dryRun=true"]) {
      const put = await write(dev, "PUT", path, olga, evil);
      assertEquals(put.status, 403, put.text);
      assertMatch(put.json.error, /target\.local\.command.*functions:local/);
    }
    const created = await write(
      dev,
      "POST",
      "/functions",
      olga,
      manifest("orders-y", "/orders-y", { local: { command: `touch ${marker}` } }),
    );
    assertEquals(created.status, 403, created.text);
    assertMatch(created.json.error, /target\.local\.command/);
    const ran = await call(dev.url, "POST", "/invoke/orders-x", bearer(olga), "hi");
    assertEquals(ran.status, 200, ran.text);
    assert(!(await exists(marker)), "the refused command ran");
    // A PUT that keeps target.local as it is, is fine.
    const same = structuredClone(orders);
    same.spec.description = "edited by olga";
    const kept = await write(dev, "PUT", "/functions/orders-x", olga, same);
    assertEquals(kept.status, 200, kept.text);
    // The check would catch a command that ran: with functions:local the admin's runs.
    const adminMarker = `${dir}/admin-ran`;
    const allowed = structuredClone(same);
    allowed.target.local.command = `touch ${adminMarker}; exec node server.js`;
    const byAdmin = await write(dev, "PUT", "/functions/orders-x", admin, allowed);
    assertEquals(byAdmin.status, 200, byAdmin.text);
    await waitFor("the admin's command ran", async () => {
      await call(dev.url, "POST", "/invoke/orders-x", bearer(admin), "hi");
      return await exists(adminMarker);
    }, 20_000);
    // Even with functions:local, the folder must lie in the functions or --images folders.
    const outside = structuredClone(allowed);
    outside.target.local.dir = "/tmp";
    const escaped = await write(dev, "PUT", "/functions/orders-x", admin, outside);
    assertEquals(escaped.status, 400, escaped.text);
    assertMatch(escaped.json.error, /target\.local\.dir: must lie inside the functions folder/);
    await Deno.symlink("/tmp", `${dir}/link`);
    outside.target.local.dir = "./link/../link";
    const viaLink = await write(dev, "PUT", "/functions/orders-x", admin, outside);
    assertEquals(viaLink.status, 400, viaLink.text);

    // Item 3: endpoints. Billing's endpoint, and anything below it, is not olga's to take.
    const latest = (await call(dev.url, "GET", "/functions/orders-x", bearer(olga))).json;
    delete latest.status;
    for (const endpoint of ["/billing", "/billing/export", "/billing/export/v2/"]) {
      const moved = structuredClone(latest);
      moved.spec.endpoint = endpoint;
      const put = await write(dev, "PUT", "/functions/orders-x", olga, moved);
      assertEquals(put.status, 409, `${endpoint}: ${put.text}`);
      // Olga may not see billing: the answer does not name it.
      assertEquals(put.json.error, `endpoint "${endpoint.replace(/\/$/, "")}" is taken`);
      const post = await write(
        dev,
        "POST",
        "/functions",
        olga,
        manifest("orders-z", endpoint, { local: undefined }),
      );
      assertEquals(post.status, 409, `${endpoint}: ${post.text}`);
    }
    // Outside her names, olga learns nothing about conflicts: 403 first.
    const foreign = await write(dev, "POST", "/functions", olga, manifest("billing", "/billing"));
    assertEquals(foreign.status, 403, foreign.text);
    assertMatch(foreign.json.error, /missing privilege functions:create for function "billing"/);
    const stillBilling = await call(dev.url, "GET", "/invoke/billing/export", bearer(admin));
    assertEquals(stillBilling.json.path, "/export", "billing still gets its sub-paths");
    // Olga's own subtree and free paths are hers; an admin may nest under anyone.
    const mine = await write(
      dev,
      "POST",
      "/functions",
      olga,
      // No target.local (olga may not set it): f2s dev finds the folder by the image's name,
      // and refuses an image it has no folder for (tests/control/dev_test.ts).
      manifest("orders-z", "/orders-x/z", {
        local: undefined,
        containerImage: "f2s-tests/echo:latest",
      }),
    );
    assertEquals(mine.status, 201, mine.text);
    const dry = (m: unknown) => write(dev, "POST", "/functions?dryRun=true", admin, m);
    const nested = await dry(manifest("billing-export", "/billing/export"));
    assertEquals(nested.status, 200, nested.text);
    const exact = await dry(manifest("billing-2", "/billing"));
    assertEquals(exact.status, 409);
    assertMatch(exact.json.error, /already used by function "billing"/);

    // Item 4: env values only for callers who may update the function.
    const listed = await call(dev.url, "GET", "/functions", bearer(vera));
    assertEquals(listed.status, 200);
    assert(!listed.text.includes("s3cr3t") && !listed.text.includes("b1ll1ng"), listed.text);
    const billingSeen = listed.json.find((f: { metadata: { name: string } }) =>
      f.metadata.name === "billing"
    );
    assertEquals(billingSeen.target.env, [{ name: "BILLING_KEY", value: null, redacted: true }]);
    for (const accept of ["application/json", "application/yaml"]) {
      const one = await call(dev.url, "GET", "/functions/billing", { ...bearer(vera), accept });
      assertEquals(one.status, 200);
      assert(one.text.includes("BILLING_KEY") && !one.text.includes("b1ll1ng"), one.text);
    }
    const own = await call(dev.url, "GET", "/functions/orders-x", bearer(olga));
    assertEquals(own.json.target.env, { ORDERS_TOKEN: "s3cr3t" }, "olga may update orders-x");
    const all = await call(dev.url, "GET", "/functions/billing", bearer(admin));
    assertEquals(all.json.target.env, { BILLING_KEY: "b1ll1ng" });

    // Under f2s dev a Secret reference cannot work: refused, naming the field.
    const withRef = manifest("orders-ref", "/orders-ref", {
      local: undefined,
      env: [{ name: "DB", valueFrom: { secretKeyRef: { name: "db", key: "password" } } }],
    });
    const refused = await write(dev, "POST", "/functions", admin, withRef);
    assertEquals(refused.status, 400, refused.text);
    assertMatch(refused.json.error, /target\.env\.DB\.valueFrom: .*Kubernetes only/);
    // A scoped user may reference only the Secret named like the function (on Kubernetes
    // the kubelet would hand any Secret of the namespace to the function).
    const steal = manifest("orders-r", "/orders-r", {
      local: undefined,
      env: [{ name: "DB", valueFrom: { secretKeyRef: { name: "billing", key: "password" } } }],
    });
    const stolen = await write(dev, "POST", "/functions", olga, steal);
    assertEquals(stolen.status, 403, stolen.text);
    assertMatch(stolen.json.error, /target\.env\.DB\.valueFrom\.secretKeyRef\.name/);
    const ownRef = JSON.stringify(steal).replace('"name":"billing"', '"name":"orders-r"');
    const ownSecret = await call(dev.url, "POST", "/functions", json(olga), ownRef);
    assertEquals(ownSecret.status, 400, "allowed by the API, refused by f2s dev");
  }));

Deno.test("item 9: 403 without an authorization entry, 400 for bad paths, warnings", () =>
  withDev(async (dev) => {
    const admin = await signIn(dev.url, "admin", "admin-password");
    // Stray's password is right but the group has no entry: authenticated, granted nothing.
    const stray = await call(dev.url, "POST", "/auth/signin", basic("stray", "stray-password"));
    assertEquals(stray.status, 403, stray.text);
    assertMatch(stray.json.error, /"nobody" is not configured/);
    const undecodable = await call(dev.url, "GET", "/functions/%ZZ", bearer(admin));
    assertEquals(undecodable.status, 400, undecodable.text);
    for (const endpoint of ["/a\r\nx: y", "/a b", "/a/../b", "a", "/\u0007"]) {
      const bad = manifest("orders-bad", "/orders-bad", { endpoint });
      const a = await write(dev, "POST", "/functions", admin, bad);
      assertEquals(a.status, 400, `${JSON.stringify(endpoint)}: ${a.text}`);
      assertMatch(a.json.error, /target\.endpoint/);
    }
    const odd = manifest("orders-odd", "/orders-odd", { replicas: 3 }) as Record<string, unknown>;
    odd.extra = true;
    const warned = await write(dev, "POST", "/functions", admin, odd);
    assertEquals(warned.status, 201, warned.text);
    assertEquals(warned.json.warnings, [
      "target.replicas: is not a known field; ignored",
      "extra: is not a known field; ignored",
    ]);
    assertMatch(warned.headers.get("warning")!, /^299 - "target\.replicas: is not a known field/);
  }));

Deno.test("an alias bomb is refused in milliseconds without a memory spike", () =>
  withDev(async (dev, dir) => {
    const admin = await signIn(dev.url, "admin", "admin-password");
    // ~600 kB: one small anchor referenced 200 000 times (the yaml package alone builds
    // the whole tree first: seconds and hundreds of MB), then nested aliases.
    const wide = "a: &a [x, y]\nb: [" + Array(200_000).fill("*a").join(",") + "]\n";
    let nested = "l0: &l0 [x,x,x,x,x,x,x,x,x,x]\n";
    for (let i = 1; i < 12; i++) {
      nested += `l${i}: &l${i} [${Array(10).fill(`*l${i - 1}`).join(",")}]\n`;
    }
    const deep = "a: " + "[".repeat(100_000) + "]".repeat(100_000) + "\n";
    const deepJson = '{"a":' + "[".repeat(100_000) + "]".repeat(100_000) + "}";
    for (
      const [name, body] of [["wide", wide], ["nested", nested], ["deep", deep], [
        "deep JSON",
        deepJson,
      ]]
    ) {
      await call(dev.url, "GET", "/health"); // settle
      const before = rssMiB(dev.pid);
      let status = 0;
      let ms = 0;
      const peak = await peakRss(dev.pid, async () => {
        const t0 = performance.now();
        const a = await call(dev.url, "POST", "/functions", {
          ...bearer(admin),
          "content-type": name.endsWith("JSON") ? "application/json" : "application/yaml",
        }, body);
        ms = performance.now() - t0;
        status = a.status;
      }, 5);
      console.log(
        `${name}: ${body.length} bytes -> ${status} in ${ms.toFixed(0)} ms, ` +
          `RSS +${(peak - before).toFixed(1)} MiB`,
      );
      assertEquals(status, 400, name);
      assert(ms < 200, `${name} took ${ms.toFixed(0)} ms`);
      assert(peak - before < 50, `${name}: RSS grew ${(peak - before).toFixed(1)} MiB`);
    }
    // Over the body limit (1 MiB by default): 413 from the declared length alone.
    const big = await call(dev.url, "POST", "/functions", {
      ...bearer(admin),
      "content-type": "application/yaml",
    }, "#".repeat(1_100_000));
    assertEquals(big.status, 413);

    // The same bomb as a file of the functions folder: skipped and reported, no spike. So
    // is a manifest whose folder lies outside the functions folder.
    const events = async () =>
      (await call(dev.url, "GET", "/events?type=function.invalid", bearer(admin))).text;
    const before = rssMiB(dev.pid);
    const peak = await peakRss(dev.pid, async () => {
      await Deno.writeTextFile(`${dir}/bomb.yaml`, "kind: Function\n" + wide);
      await waitFor("the bomb file is reported", async () => /bomb\.yaml/.test(await events()));
    }, 5);
    assertMatch(await events(), /bomb\.yaml: refused: more than 1000 YAML aliases/);
    assert(peak - before < 50, `the bomb file: RSS grew ${(peak - before).toFixed(1)} MiB`);
    const away = manifest("orders-away", "/orders-away", {
      local: { dir: "/tmp", command: "node server.js" },
    });
    await Deno.writeTextFile(`${dir}/away.yaml`, JSON.stringify(away));
    await waitFor("the file is reported", async () => /away\.yaml/.test(await events()));
    assertMatch(await events(), /away\.yaml: target\.local\.dir: must lie inside/);
    const listed = await call(dev.url, "GET", "/functions/orders-away", bearer(admin));
    assertEquals(listed.status, 404);
  }));

Deno.test("a flood of wrong passwords from one address is throttled; others sign in fast", () =>
  withDev(async (dev) => {
    const { port } = new URL(dev.url);
    const wrong = (n: number) =>
      rawRequest("127.0.0.1", Number(port), "POST", "/auth/signin", basic("admin", `guess-${n}`));
    // Guesses, 20 at a time, from 127.0.0.1: at least 200, and on until the others are done.
    const statuses: number[] = [];
    let retryAfter = "";
    const timings: number[] = [];
    let next = 0;
    let othersDone = false;
    const flood = Promise.all(Array.from({ length: 20 }, async () => {
      while (next < 200 || !othersDone) {
        const a = await wrong(next++);
        statuses.push(a.status);
        if (a.status === 429) retryAfter = a.headers["retry-after"] ?? "";
      }
    }));
    // Meanwhile vera (plain password) and the admin (bcrypt) sign in from 127.0.0.2.
    const others = (async () => {
      await waitFor("the flood is under way", () => statuses.length >= 20, 10_000);
      for (let i = 0; i < 5; i++) {
        for (const [user, password] of [["vera", "vera-password"], ["admin", "admin-password"]]) {
          const t0 = performance.now();
          const a = await rawRequest(
            "127.0.0.2",
            Number(port),
            "POST",
            "/auth/signin",
            basic(user, password),
          );
          timings.push(performance.now() - t0);
          assertEquals(a.status, 200, `${user} from another address: ${a.body}`);
        }
      }
    })().finally(() => (othersDone = true));
    await Promise.all([flood, others]);
    const refused = statuses.filter((s) => s === 429).length;
    const checked = statuses.filter((s) => s === 401).length;
    console.log(
      `flood: ${checked} checked (401), ${refused} throttled (429), retry-after ${retryAfter}; ` +
        `others' sign-ins: ${timings.map((t) => t.toFixed(0)).join(", ")} ms`,
    );
    assertEquals(checked + refused, statuses.length, `unexpected statuses: ${statuses}`);
    assert(statuses.length >= 200);
    assert(refused >= statuses.length * 0.75, `only ${refused} of ${statuses.length} throttled`);
    assert(Number(retryAfter) >= 1, "429 carries Retry-After");
    const sorted = [...timings].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)];
    assert(median < 200, `others' sign-ins took ${median.toFixed(0)} ms (median)`);
    // Guessing the admin's password from 127.0.0.1 stays locked for a while; from
    // 127.0.0.2 it is not (the flood locked no user out everywhere).
    const locked = await rawRequest(
      "127.0.0.1",
      Number(port),
      "POST",
      "/auth/signin",
      basic("admin", "a-wrong-password"),
    );
    assertEquals(locked.status, 429);
    const other = await rawRequest(
      "127.0.0.2",
      Number(port),
      "POST",
      "/auth/signin",
      basic("admin", "one-wrong-password"),
    );
    assertEquals(other.status, 401);
  }));

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * One HTTP/1.1 request from a chosen local address (Deno.connect cannot bind one; node:net
 * can), so the server sees clients at different addresses on the loopback.
 */
function rawRequest(
  localAddress: string,
  port: number,
  method: string,
  path: string,
  headers: HeadersInit,
): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port, localAddress });
    const chunks: Buffer[] = [];
    socket.on("connect", () => {
      const lines = [`${method} ${path} HTTP/1.1`, `host: 127.0.0.1:${port}`, "connection: close"];
      for (const [k, v] of new Headers(headers)) lines.push(`${k}: ${v}`);
      lines.push("content-length: 0");
      socket.write(lines.join("\r\n") + "\r\n\r\n");
    });
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("error", reject);
    socket.on("close", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      const [head, ...rest] = text.split("\r\n\r\n");
      const [statusLine, ...headerLines] = head.split("\r\n");
      const out: Record<string, string> = {};
      for (const line of headerLines) {
        const at = line.indexOf(":");
        out[line.slice(0, at).toLowerCase()] = line.slice(at + 1).trim();
      }
      resolve({ status: Number(statusLine.split(" ")[1]), headers: out, body: rest.join("") });
    });
  });
}
