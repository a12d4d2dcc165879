/**
 * Attacks and bad input against a real server in token and basic mode: `alg: none`,
 * foreign algorithms, expired / not-yet-valid / tampered / truncated / oversized tokens,
 * missing or unknown groups, malformed headers and sign-in bodies. Each must get a clear
 * 4xx answer (never a 500), and no secret may show up in any answer or log line.
 */

import * as jose from "jose";
import { assert, assertEquals, assertMatch } from "./assert.ts";
import {
  type Answer,
  basic,
  bearer,
  call,
  configFrom,
  recordingLogger,
  withServer,
} from "./helpers.ts";

const SECRET = "attack-test-secret-that-is-32-bytes-long";
const PASSWORD = "s3cret-passw0rd";
const key = new TextEncoder().encode(SECRET);
const now = () => Math.floor(Date.now() / 1000);

const tokenConfig = configFrom(`
f2s:
  auth:
    global_config: { type: token, clock_tolerance: 30s }
    basic: [{ username: roman, password: "${PASSWORD}", group: admins }]
    token: { jwt_secret: "${SECRET}" }
    authorization:
      - { group: admins, privileges: [functions:list, functions:invoke, settings:view] }
      - { group: viewers, privileges: [functions:list] }
`);

function hs256(claims: jose.JWTPayload, header: jose.JWTHeaderParameters = { alg: "HS256" }) {
  return new jose.SignJWT(claims).setProtectedHeader(header).sign(key);
}

function b64url(value: unknown): string {
  return jose.base64url.encode(JSON.stringify(value));
}

Deno.test("token attacks: each forged or invalid token is refused with a clear 401", async () => {
  const { log, lines } = recordingLogger();
  const answers: Answer[] = [];
  const valid = { sub: "mallory", group: "viewers", exp: now() + 300 };
  const viewerToken = await hs256(valid);
  const [vh, , vs] = viewerToken.split(".");
  const attacker = await jose.generateKeyPair("RS256");

  const cases: [string, string, RegExp][] = [
    [
      "alg none, empty signature",
      new jose.UnsecuredJWT({ ...valid, group: "admins" }).encode(),
      /malformed bearer token/,
    ],
    [
      "alg none, signature kept",
      `${b64url({ alg: "none", typ: "JWT" })}.${b64url({ ...valid, group: "admins" })}.${vs}`,
      /algorithm is not accepted|malformed/,
    ],
    [
      "RS256 signed with the attacker's own key",
      await new jose.SignJWT({ ...valid, group: "admins" })
        .setProtectedHeader({ alg: "RS256" })
        .sign(attacker.privateKey),
      /algorithm is not accepted/,
    ],
    [
      "RS256 with the attacker's key embedded as jwk header",
      await new jose.SignJWT({ ...valid, group: "admins" })
        .setProtectedHeader({ alg: "RS256", jwk: await jose.exportJWK(attacker.publicKey) })
        .sign(attacker.privateKey),
      /algorithm is not accepted/,
    ],
    ["expired", await hs256({ ...valid, exp: now() - 3600 }), /expired/],
    ["not yet valid", await hs256({ ...valid, nbf: now() + 3600 }), /not valid yet/],
    [
      "tampered payload (group raised to admins)",
      `${vh}.${b64url({ ...valid, group: "admins" })}.${vs}`,
      /signature does not verify/,
    ],
    [
      "signed with another secret",
      await new jose.SignJWT({ ...valid, group: "admins" })
        .setProtectedHeader({ alg: "HS256" })
        .sign(new TextEncoder().encode("not-the-server-secret-at-all-really")),
      /signature does not verify/,
    ],
    ["no group claim", await hs256({ sub: "x", exp: now() + 60 }), /no "group" claim/],
    ["group not a string", await hs256({ sub: "x", group: 7, exp: now() + 60 }), /"group"/],
    ["no sub claim", await hs256({ group: "admins", exp: now() + 60 }), /"sub" claim/],
    ["truncated signature", viewerToken.slice(0, -12), /signature does not verify/],
    ["missing signature part", viewerToken.split(".").slice(0, 2).join("."), /malformed/],
    ["payload not JSON", `${vh}.bm90IGpzb24.${vs}`, /malformed token/],
    [
      "oversized token",
      await hs256({ ...valid, pad: "x".repeat(9000) }),
      /too large/,
    ],
  ];

  await withServer(tokenConfig, { log }, async (s) => {
    // The genuine token works, so every refusal below is about the forgery.
    assertEquals((await call(s.url, "GET", "/functions", bearer(viewerToken))).status, 200);
    for (const [name, token, reason] of cases) {
      const a = await call(s.url, "GET", "/functions", bearer(token));
      answers.push(a);
      assertEquals(a.status, 401, name);
      assertMatch(a.json.error, reason, name);
      assertMatch(a.headers.get("www-authenticate")!, /^Bearer realm="f2s"/, name);
    }
    // A genuine token of a group without an authorization entry: authenticated, so 403.
    const unknownGroup = await call(
      s.url,
      "GET",
      "/functions",
      bearer(await hs256({ sub: "x", group: "root", exp: now() + 60 })),
    );
    assertEquals(unknownGroup.status, 403);
    assertMatch(unknownGroup.json.error, /"root" is not configured/);
    // A viewer's token does not reach admin routes: authenticated, so 403.
    const admin = await call(s.url, "GET", "/config", bearer(viewerToken));
    assertEquals(admin.status, 403);
    assertEquals(admin.json.details.privilege, "settings:view");
  });
  for (const text of [...answers.map((a) => a.text), ...lines]) {
    assert(!text.includes(SECRET), "the jwt secret leaked");
    assert(!text.includes(vs), "a token signature was echoed");
  }
});

Deno.test("malformed Authorization headers and sign-in bodies get 4xx, never 500", async () => {
  const { log, lines } = recordingLogger();
  const bad = [
    "Bearer",
    "Bearer ",
    "Bearer a.b",
    "Bearer a.b.c.d",
    "Bearer a b c",
    "Bearer ä.b.c",
    "Basic",
    "Basic !!!!",
    `Basic ${btoa("no-colon")}`,
    "Basic /w==", // not UTF-8
    "Digest username=roman",
    "bearer" + " x".repeat(5000),
    "Basic " + btoa("roman:" + "x".repeat(2000)),
  ];
  await withServer(tokenConfig, { log }, async (s) => {
    for (const header of bad) {
      for (const path of ["/functions", "/users/me"]) {
        const a = await call(s.url, "GET", path, { authorization: header });
        assertEquals(a.status, 401, `${header.slice(0, 30)} on ${path}`);
        assert(typeof a.json.error === "string" && a.json.error.length > 0);
      }
      const signin = await call(s.url, "POST", "/auth/signin", { authorization: header });
      assertEquals(signin.status, 401, `sign-in with ${header.slice(0, 30)}`);
    }
    const json = { "content-type": "application/json" };
    const bodies: [string, number, RegExp][] = [
      ["{not json", 400, /JSON/],
      ["[1,2]", 400, /object/],
      [JSON.stringify({ username: "roman", password: 12 }), 401, /must be strings/],
      [JSON.stringify({ username: "roman" }), 401, /must be strings/],
      [JSON.stringify({ username: "roman", password: "x".repeat(20_000) }), 413, /too large/],
      [JSON.stringify({ username: "roman", password: "wrong" }), 401, /invalid username/],
      ["", 401, /basic credentials or a JSON body/],
    ];
    for (const [body, status, reason] of bodies) {
      const a = await call(s.url, "POST", "/auth/signin", json, body);
      assertEquals(a.status, status, body.slice(0, 40));
      assertMatch(a.json.error, reason);
    }
    // A streamed body without Content-Length is cut off at the limit too.
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 20; i++) c.enqueue(new Uint8Array(1024).fill(32));
        c.close();
      },
    });
    assertEquals((await call(s.url, "POST", "/auth/signin", json, stream)).status, 413);
  });
  assert(!lines.join("\n").includes(PASSWORD));
});

Deno.test("basic mode: bad headers and a token instead of a password get 401", async () => {
  const config = configFrom(`
f2s:
  auth:
    global_config: { type: basic }
    basic: [{ username: roman, password: "${PASSWORD}", group: admins }]
    authorization: [{ group: admins, privileges: [functions:list] }]
`);
  await withServer(config, { log: recordingLogger().log }, async (s) => {
    for (const header of ["Basic", `Basic ${btoa("roman")}`, "Bearer a.b.c", "Basic ===="]) {
      const a = await call(s.url, "GET", "/functions", { authorization: header });
      assertEquals(a.status, 401, header);
      assertMatch(a.headers.get("www-authenticate")!, /^Basic realm="f2s"/);
    }
    assertEquals((await call(s.url, "GET", "/functions", basic("roman", PASSWORD))).status, 200);
    // Usernames are matched exactly.
    assertEquals((await call(s.url, "GET", "/functions", basic("Roman", PASSWORD))).status, 401);
    assertEquals((await call(s.url, "GET", "/functions", basic("roman ", PASSWORD))).status, 401);
  });
});
