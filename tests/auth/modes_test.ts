/**
 * Every auth mode through a real HTTP server guarding the API's route table: none, basic
 * (plain, bcrypt and argon2 passwords), token (sign-in, bearer, expiry, allow-list), and
 * the privilege paths (401 / 403 naming the privilege / function-scoped patterns).
 */

import { createFakeClock } from "../harness/fake_clock.ts";
import { assert, assertEquals, assertMatch } from "./assert.ts";
import bcrypt from "bcryptjs";
import { argon2id } from "hash-wasm";
import * as jose from "jose";
import { basic, bearer, call, configFrom, recordingLogger, withServer } from "./helpers.ts";
import { PRIVILEGES } from "../../control/auth/privileges.ts";

// Every privilege, from the one list (control/auth/privileges.ts).
const ALL = "[" + PRIVILEGES.join(", ") + "]";

const ROUTES: [string, string][] = [
  ["GET", "/functions"],
  ["POST", "/functions"],
  ["GET", "/functions/orders-eu"],
  ["PUT", "/functions/orders-eu"],
  ["DELETE", "/functions/orders-eu"],
  ["POST", "/invoke/orders-eu"],
  ["GET", "/invoke/billing/sub/path"],
  ["GET", "/config"],
  ["GET", "/events"],
];

Deno.test("mode none: every route is open and /users/me is an anonymous admin", async () => {
  const config = configFrom("f2s: { auth: { global_config: { type: none } } }");
  await withServer(config, { log: recordingLogger().log }, async (s) => {
    for (const [method, path] of ROUTES) {
      const a = await call(s.url, method, path);
      assertEquals(a.status, 200, `${method} ${path}`);
      assertEquals(a.json.via, "none");
    }
    // Even garbage credentials are ignored: authorization is off.
    assertEquals(
      (await call(s.url, "GET", "/config", { authorization: "Bearer x.y.z" })).status,
      200,
    );
    const me = await call(s.url, "GET", "/users/me");
    assertEquals(me.status, 200);
    assertEquals(me.json.name, "anonymous");
    assertEquals(me.json.privileges.length, 8);
    assertEquals((await call(s.url, "GET", "/auth/type")).json.type, "none");
    const signin = await call(s.url, "POST", "/auth/signin", basic("a", "b"));
    assertEquals(signin.status, 404);
    assertMatch(signin.json.error, /not available/);
  });
});

Deno.test("mode basic: plain, bcrypt and argon2 users; wrong or missing credentials get 401", async () => {
  const bcryptHash = bcrypt.hashSync("bcrypt-pass", 4);
  const argonHash = await argon2id({
    password: "argon-pass",
    salt: crypto.getRandomValues(new Uint8Array(16)),
    iterations: 2,
    parallelism: 1,
    memorySize: 1024,
    hashLength: 32,
    outputType: "encoded",
  });
  const { log, lines } = recordingLogger();
  const config = configFrom(`
f2s:
  auth:
    global_config: { type: basic }
    basic:
      - { username: roman, password: helloworld, group: admins }
      - { username: bea, password: "${bcryptHash}", group: admins }
      - { username: ari, password: "${argonHash}", group: viewers }
    authorization:
      - { group: admins, privileges: ${ALL} }
      - { group: viewers, privileges: [functions:list, settings:view] }
`);
  await withServer(config, { log }, async (s) => {
    assertEquals((await call(s.url, "GET", "/auth/type")).json.type, "basic");
    for (const [user, pass] of [["roman", "helloworld"], ["bea", "bcrypt-pass"]]) {
      const a = await call(s.url, "DELETE", "/functions/x", basic(user, pass));
      assertEquals(a.status, 200, user);
      assertEquals(a.json.user, user);
      assertEquals(a.json.via, "basic");
    }
    const ari = await call(s.url, "GET", "/functions", basic("ari", "argon-pass"));
    assertEquals(ari.status, 200);
    assertEquals(ari.json.group, "viewers");

    const wrongPass = await call(s.url, "GET", "/functions", basic("bea", "nope"));
    const wrongUser = await call(s.url, "GET", "/functions", basic("nobody", "nope"));
    for (const a of [wrongPass, wrongUser]) {
      assertEquals(a.status, 401);
      assertMatch(a.headers.get("www-authenticate")!, /^Basic realm="f2s"/);
    }
    assertEquals(wrongPass.text, wrongUser.text, "wrong user and wrong password look alike");
    assertEquals(wrongPass.json.error, "invalid username or password");

    const missing = await call(s.url, "GET", "/functions");
    assertEquals(missing.status, 401);
    assertMatch(missing.headers.get("www-authenticate")!, /^Basic /);
    assertEquals(missing.headers.get("content-type"), "application/json");
    const asBearer = await call(s.url, "GET", "/functions", bearer("a.b.c"));
    assertEquals(asBearer.status, 401);
    assertMatch(asBearer.json.error, /basic credentials/);
    // Public routes stay open.
    assertEquals((await call(s.url, "GET", "/health")).status, 200);
    // No password ever reaches the log.
    const logged = lines.join("\n");
    for (const secret of ["helloworld", "bcrypt-pass", "argon-pass", bcryptHash, "nope"]) {
      assert(!logged.includes(secret), `log contains ${secret}`);
    }
  });
});

Deno.test("mode token: sign in (basic header or JSON), use the token, see it expire", async () => {
  const clock = createFakeClock(Date.now());
  const config = configFrom(`
f2s:
  auth:
    global_config: { type: token, clock_tolerance: 5s }
    basic:
      - { username: roman, password: helloworld, group: admins }
    token: { jwt_secret: test, expiry: 10m }
    authorization:
      - { group: admins, privileges: ${ALL} }
`);
  await withServer(config, { clock, log: recordingLogger().log }, async (s) => {
    const type = await call(s.url, "GET", "/auth/type");
    assertEquals(type.json, {
      type: "token",
      signin: true,
      privileges: [...PRIVILEGES],
      unscoped: ["functions:local"],
    });

    const viaHeader = await call(s.url, "POST", "/auth/signin", basic("roman", "helloworld"));
    assertEquals(viaHeader.status, 200);
    assertEquals(viaHeader.headers.get("cache-control"), "no-store");
    assertEquals(viaHeader.json.tokenType, "Bearer");
    assertEquals(viaHeader.json.expiresIn, 600);
    const claims = jose.decodeJwt(viaHeader.json.token);
    assertEquals([claims.sub, claims.group, claims.iss], ["roman", "admins", "f2s"]);
    assertEquals(claims.exp! - claims.iat!, 600);
    assertEquals(jose.decodeProtectedHeader(viaHeader.json.token).alg, "HS256");

    const viaJson = await call(
      s.url,
      "POST",
      "/auth/signin",
      { "content-type": "application/json" },
      JSON.stringify({ username: "roman", password: "helloworld" }),
    );
    assertEquals(viaJson.status, 200);
    const token = viaJson.json.token as string;

    const ok = await call(s.url, "POST", "/invoke/anything", bearer(token));
    assertEquals(ok.status, 200);
    assertEquals([ok.json.user, ok.json.via], ["roman", "token"]);
    const me = await call(s.url, "GET", "/users/me", bearer(token));
    assertEquals(me.json.name, "roman");
    assertEquals(me.json.group, "admins");
    assertEquals(me.json.expiresAt, viaJson.json.expiresAt);

    // Basic credentials are for sign-in only in token mode.
    const withBasic = await call(s.url, "GET", "/functions", basic("roman", "helloworld"));
    assertEquals(withBasic.status, 401);
    assertMatch(withBasic.headers.get("www-authenticate")!, /^Bearer realm="f2s"/);
    assertMatch(withBasic.json.error, /POST \/auth\/signin/);

    const badSignin = await call(s.url, "POST", "/auth/signin", basic("roman", "wrong"));
    assertEquals(badSignin.status, 401);
    assertMatch(badSignin.headers.get("www-authenticate")!, /^Basic /);
    assertEquals((await call(s.url, "GET", "/auth/signin")).status, 405);

    // Within the clock tolerance after expiry the token still works, then it does not.
    await clock.advance(600_000 + 3000);
    assertEquals((await call(s.url, "GET", "/functions", bearer(token))).status, 200);
    await clock.advance(5000);
    const expired = await call(s.url, "GET", "/functions", bearer(token));
    assertEquals(expired.status, 401);
    assertMatch(expired.json.error, /expired/);
    assertMatch(expired.headers.get("www-authenticate")!, /error="invalid_token"/);
  });
});

Deno.test("mode token: the seed's tokens list is an allow-list (sign-in tokens still pass)", async () => {
  const secret = new TextEncoder().encode("a-long-enough-secret-for-hs256-tokens!");
  const mint = (claims: jose.JWTPayload, exp?: number) => {
    const jwt = new jose.SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setIssuedAt();
    if (exp) jwt.setExpirationTime(exp);
    return jwt.sign(secret);
  };
  const listed = await mint({ sub: "ci", group: "admins" }); // no exp: pinned instead
  const listedHs512 = await new jose.SignJWT({ sub: "ops", group: "admins" })
    .setProtectedHeader({ alg: "HS512" }).sign(secret);
  const unlisted = await mint({ sub: "eve", group: "admins" }, Math.floor(Date.now() / 1000) + 60);
  const config = configFrom(`
f2s:
  auth:
    global_config: { type: token }
    basic: [{ username: roman, password: helloworld, group: admins }]
    token:
      jwt_secret: a-long-enough-secret-for-hs256-tokens!
      tokens: [{ token: ${listed} }, { token: ${listedHs512} }]
    authorization: [{ group: admins, privileges: ${ALL} }]
`);
  await withServer(config, { log: recordingLogger().log }, async (s) => {
    assertEquals((await call(s.url, "GET", "/config", bearer(listed))).json.user, "ci");
    assertEquals((await call(s.url, "GET", "/config", bearer(listedHs512))).json.user, "ops");
    const refused = await call(s.url, "GET", "/config", bearer(unlisted));
    assertEquals(refused.status, 401);
    assertMatch(refused.json.error, /allow-list/);
    const signin = await call(s.url, "POST", "/auth/signin", basic("roman", "helloworld"));
    assertEquals((await call(s.url, "GET", "/config", bearer(signin.json.token))).status, 200);
  });

  // Without an allow-list a token must carry an expiry.
  const open = configFrom(`
f2s:
  auth:
    global_config: { type: token }
    token: { jwt_secret: a-long-enough-secret-for-hs256-tokens! }
    authorization: [{ group: admins, privileges: ${ALL} }]
`);
  await withServer(open, { log: recordingLogger().log }, async (s) => {
    const noExp = await call(s.url, "GET", "/config", bearer(listed));
    assertEquals(noExp.status, 401);
    assertMatch(noExp.json.error, /no expiry/);
    assertEquals((await call(s.url, "GET", "/config", bearer(unlisted))).json.user, "eve");
  });
});

Deno.test("authorization: each route needs its privilege; scoped patterns; 403 names it", async () => {
  const secret = "authorization-test-secret-of-32-bytes+";
  const config = configFrom(`
f2s:
  auth:
    global_config: { type: token }
    token: { jwt_secret: "${secret}" }
    authorization:
      - { group: admins, privileges: ${ALL} }
      - { group: viewers, privileges: [functions:list, settings:view] }
      - { group: orders, privileges: ["functions:invoke:orders-*", "functions:list:orders-??"] }
      - { group: nobody, privileges: [] }
`);
  const tokenFor = (group: string) =>
    new jose.SignJWT({ sub: `${group}-user`, group })
      .setProtectedHeader({ alg: "HS256" })
      .setExpirationTime("5m")
      .sign(new TextEncoder().encode(secret));
  // Expected status per route for each group, in ROUTES order.
  const expected: Record<string, number[]> = {
    admins: [200, 200, 200, 200, 200, 200, 200, 200, 200],
    viewers: [200, 403, 200, 403, 403, 403, 403, 200, 200],
    orders: [403, 403, 200, 403, 403, 200, 403, 403, 403],
    nobody: [403, 403, 403, 403, 403, 403, 403, 403, 403],
  };
  await withServer(config, { log: recordingLogger().log }, async (s) => {
    for (const [group, statuses] of Object.entries(expected)) {
      const token = await tokenFor(group);
      for (const [i, [method, path]] of ROUTES.entries()) {
        const a = await call(s.url, method, path, bearer(token));
        assertEquals(a.status, statuses[i], `${group}: ${method} ${path}`);
        if (a.status === 403) assertMatch(a.json.error, /^missing privilege (functions|settings):/);
      }
      const anonymous = await call(s.url, ROUTES[0][0], ROUTES[0][1]);
      assertEquals(anonymous.status, 401);
    }
    const orders = await tokenFor("orders");
    const denied = await call(s.url, "GET", "/invoke/billing", bearer(orders));
    assertEquals(denied.json.error, 'missing privilege functions:invoke for function "billing"');
    assertEquals(denied.json.details.privilege, "functions:invoke");
    assertEquals(denied.json.details.function, "billing");
    const settings = await call(s.url, "GET", "/config", bearer(orders));
    assertEquals(settings.json.error, "missing privilege settings:view");
    // "??" matches exactly two characters.
    assertEquals((await call(s.url, "GET", "/functions/orders-e", bearer(orders))).status, 403);

    const me = await call(s.url, "GET", "/users/me", bearer(orders));
    assertEquals(me.status, 200);
    assertEquals(me.json.privileges, ["functions:invoke:orders-*", "functions:list:orders-??"]);
    assertEquals(me.json.via, "token");
    assertEquals((await call(s.url, "GET", "/users/me")).status, 401);

    // can() directly, as the API uses it to filter lists.
    const p = { name: "o", group: "orders", via: "token" as const, privileges: me.json.privileges };
    assert(s.auth.can(p, "functions:invoke", "orders-1"));
    assert(!s.auth.can(p, "functions:invoke", "billing"));
    assert(!s.auth.can(p, "functions:invoke"), "a scoped grant does not cover all functions");
  });
});
