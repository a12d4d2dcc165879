/**
 * OIDC bearer tokens against a key set served by the test itself: an RSA key pair made
 * with jose, its public half at /.well-known/jwks.json on a loopback port, and tokens
 * signed the way an identity provider signs them. Covers the group claim mapping, the
 * checks (issuer, audience, expiry, kid) and the HS/RS algorithm-confusion attack.
 */

import * as jose from "jose";
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { bearer, call, configFrom, recordingLogger, withServer } from "./helpers.ts";
import { PRIVILEGES } from "../../control/auth/privileges.ts";

const ISSUER = "https://idp.example.test/realms/f2s";
const SECRET = "hmac-secret-for-the-combined-mode-test";
const now = () => Math.floor(Date.now() / 1000);

interface Idp {
  jwksUrl: string;
  /** JWKS fetches so far. */
  fetches: () => number;
  /** Whether the key set answers 200 (true) or 500 (false). */
  setHealthy(up: boolean): void;
  sign(claims: jose.JWTPayload, opts?: { kid?: string; key?: CryptoKey }): Promise<string>;
  publicJwk: jose.JWK;
  publicPem: string;
  close(): Promise<void>;
}

async function startIdp(): Promise<Idp> {
  const { publicKey, privateKey } = await jose.generateKeyPair("RS256", { extractable: true });
  const publicJwk = { ...await jose.exportJWK(publicKey), kid: "k1", alg: "RS256", use: "sig" };
  let fetches = 0;
  let healthy = true;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    if (new URL(req.url).pathname !== "/.well-known/jwks.json") {
      return new Response("not found", { status: 404 });
    }
    fetches++;
    if (!healthy) return new Response("down", { status: 500 });
    return Response.json({ keys: [publicJwk] });
  });
  return {
    jwksUrl: `http://127.0.0.1:${server.addr.port}/.well-known/jwks.json`,
    fetches: () => fetches,
    setHealthy: (up) => void (healthy = up),
    sign: (claims, opts = {}) =>
      new jose.SignJWT(claims)
        .setProtectedHeader({ alg: "RS256", kid: opts.kid ?? "k1", typ: "JWT" })
        .sign(opts.key ?? privateKey),
    publicJwk,
    publicPem: await jose.exportSPKI(publicKey),
    close: () => server.shutdown(),
  };
}

async function withIdp(body: (idp: Idp) => Promise<void>): Promise<void> {
  const idp = await startIdp();
  try {
    await body(idp);
  } finally {
    await idp.close();
  }
}

function oidcConfig(idp: Idp, type: "oidc" | "token", extra = "") {
  return configFrom(`
f2s:
  auth:
    global_config: { type: ${type} }
    basic: [{ username: roman, password: helloworld, group: admins }]
    token: { jwt_secret: ${SECRET} }
    oidc:
      issuer: ${ISSUER}
      jwks_url: ${idp.jwksUrl}
      audience: f2s-api
      ${extra}
    authorization:
      - { group: admins, privileges: [functions:list, functions:invoke, settings:view] }
      - { group: viewers, privileges: [functions:list] }
`);
}

const claims = (extra: jose.JWTPayload = {}): jose.JWTPayload => ({
  iss: ISSUER,
  aud: "f2s-api",
  sub: "0b5c-user-id",
  exp: now() + 300,
  groups: ["staff", "viewers"],
  ...extra,
});

Deno.test("oidc: issuer tokens verified by its JWKS; group claim mapped; checks enforced", async () => {
  await withIdp(async (idp) => {
    const { log, lines } = recordingLogger();
    await withServer(oidcConfig(idp, "oidc"), { log }, async (s) => {
      const type = await call(s.url, "GET", "/auth/type");
      assertEquals(type.json, {
        type: "oidc",
        signin: false,
        oidc: { issuer: ISSUER },
        privileges: [...PRIVILEGES],
        unscoped: ["functions:local"],
      });

      const token = await idp.sign(claims());
      const ok = await call(s.url, "GET", "/functions", bearer(token));
      assertEquals(ok.status, 200);
      assertEquals([ok.json.user, ok.json.group, ok.json.via], ["0b5c-user-id", "viewers", "oidc"]);
      const me = await call(s.url, "GET", "/users/me", bearer(token));
      assertEquals(me.json.groups, ["viewers"], "groups not in the config are dropped");
      assertEquals(me.json.privileges, ["functions:list"]);
      assertEquals((await call(s.url, "GET", "/config", bearer(token))).status, 403);
      const admin = await idp.sign(claims({ groups: "admins" }));
      assertEquals((await call(s.url, "GET", "/config", bearer(admin))).status, 200);
      // The key set was fetched once at start-up and then reused.
      assertEquals(idp.fetches(), 1);

      // Groups without an authorization entry: authenticated, granted nothing (403).
      const staff = await call(
        s.url,
        "GET",
        "/functions",
        bearer(await idp.sign(claims({ groups: ["staff"] }))),
      );
      assertEquals(staff.status, 403);
      assertMatch(staff.json.error, /not configured/);
      const other = await jose.generateKeyPair("RS256");
      const refused: [string, string, RegExp][] = [
        ["wrong audience", await idp.sign(claims({ aud: "other" })), /audience/],
        ["other issuer", await idp.sign(claims({ iss: "https://evil.test" })), /issuer/],
        ["expired", await idp.sign(claims({ exp: now() - 3600 })), /expired/],
        ["no exp", await idp.sign(claims({ exp: undefined })), /"exp" claim/],
        ["not yet valid", await idp.sign(claims({ nbf: now() + 3600 })), /not valid yet/],
        ["no groups", await idp.sign(claims({ groups: undefined })), /"groups" claim/],
        [
          "other key, same kid",
          // jose types the key with @types/node's CryptoKey (from @kubernetes/client-node).
          await idp.sign(claims(), { key: other.privateKey as CryptoKey }),
          /signature does not verify/,
        ],
        [
          "unknown kid",
          await idp.sign(claims(), { kid: "k2", key: other.privateKey as CryptoKey }),
          /no key of the issuer/,
        ],
        [
          "HS256 signed with the issuer's public JWK as secret",
          await new jose.SignJWT(claims({ groups: ["admins"] }))
            .setProtectedHeader({ alg: "HS256", kid: "k1" })
            .sign(new TextEncoder().encode(JSON.stringify(idp.publicJwk))),
          /algorithm is not accepted/,
        ],
        [
          "HS256 signed with the issuer's public PEM as secret",
          await new jose.SignJWT(claims({ groups: ["admins"] }))
            .setProtectedHeader({ alg: "HS256" })
            .sign(new TextEncoder().encode(idp.publicPem)),
          /algorithm is not accepted/,
        ],
        [
          "alg none claiming the issuer",
          `${jose.base64url.encode(JSON.stringify({ alg: "none" }))}.${
            jose.base64url.encode(JSON.stringify(claims({ groups: ["admins"] })))
          }.AAAA`,
          /algorithm is not accepted|malformed/,
        ],
      ];
      for (const [name, t, reason] of refused) {
        const a = await call(s.url, "GET", "/functions", bearer(t));
        assertEquals(a.status, 401, name);
        assertMatch(a.json.error, reason, name);
      }
    });
    assert(!lines.some((l) => l.includes("eyJ")), "a token reached the log");
  });
});

Deno.test("oidc: nested group claims and a custom username claim", async () => {
  await withIdp(async (idp) => {
    const extra = "group_claim: realm_access.roles\n      username_claim: preferred_username";
    await withServer(oidcConfig(idp, "oidc", extra), { log: recordingLogger().log }, async (s) => {
      const token = await idp.sign(claims({
        groups: undefined,
        preferred_username: "ana",
        realm_access: { roles: ["offline_access", "admins"] },
      }));
      const me = await call(s.url, "GET", "/users/me", bearer(token));
      assertEquals(me.status, 200);
      assertEquals([me.json.name, me.json.group], ["ana", "admins"]);
    });
  });
});

Deno.test("type token with oidc: both kinds of token pass, neither key serves the other", async () => {
  await withIdp(async (idp) => {
    await withServer(oidcConfig(idp, "token"), { log: recordingLogger().log }, async (s) => {
      const hmacKey = new TextEncoder().encode(SECRET);
      const hmac = (c: jose.JWTPayload) =>
        new jose.SignJWT(c).setProtectedHeader({ alg: "HS256" }).sign(hmacKey);
      const local = await hmac({ sub: "roman", group: "admins", exp: now() + 60 });
      assertEquals((await call(s.url, "GET", "/config", bearer(local))).json.via, "token");
      const fromIdp = await idp.sign(claims({ groups: ["admins"] }));
      assertEquals((await call(s.url, "GET", "/config", bearer(fromIdp))).json.via, "oidc");
      const signin = await call(s.url, "POST", "/auth/signin", {
        authorization: `Basic ${btoa("roman:helloworld")}`,
      });
      assertEquals((await call(s.url, "GET", "/config", bearer(signin.json.token))).status, 200);

      // An HMAC token that claims to come from the issuer is checked with the issuer's keys.
      const hmacAsIssuer = await hmac(claims({ groups: ["admins"] }));
      const a = await call(s.url, "GET", "/config", bearer(hmacAsIssuer));
      assertEquals(a.status, 401);
      assertMatch(a.json.error, /algorithm is not accepted/);
      // An issuer-signed token without the issuer's iss goes to jwt_secret, which takes HMAC only.
      const rsWithoutIss = await idp.sign(claims({ iss: undefined, group: "admins" }));
      const b = await call(s.url, "GET", "/config", bearer(rsWithoutIss));
      assertEquals(b.status, 401);
      assertMatch(b.json.error, /algorithm is not accepted/);
    });
  });
});

Deno.test("oidc: an unreachable key set gives 503 (not 500) and recovers", async () => {
  await withIdp(async (idp) => {
    idp.setHealthy(false);
    const { log, lines } = recordingLogger();
    await withServer(oidcConfig(idp, "oidc"), { log }, async (s) => {
      assert(lines.some((l) => l.includes("cannot fetch the OIDC issuer's keys")));
      const token = await idp.sign(claims());
      const down = await call(s.url, "GET", "/functions", bearer(token));
      assertEquals(down.status, 503);
      assertMatch(down.json.error, /issuer's signing keys/);
      idp.setHealthy(true);
      assertEquals((await call(s.url, "GET", "/functions", bearer(token))).status, 200);
    });
  });
  // Nothing listening at all.
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (closed.addr as Deno.NetAddr).port;
  closed.close();
  const config = configFrom(`
f2s:
  auth:
    global_config: { type: oidc }
    oidc: { issuer: ${ISSUER}, jwks_url: "http://127.0.0.1:${port}/jwks" }
    authorization: [{ group: viewers, privileges: [functions:list] }]
`);
  await withServer(config, { log: recordingLogger().log }, async (s) => {
    const { privateKey } = await jose.generateKeyPair("RS256");
    const token = await new jose.SignJWT(claims({ aud: undefined }))
      .setProtectedHeader({ alg: "RS256", kid: "k1" })
      .sign(privateKey);
    assertEquals((await call(s.url, "GET", "/functions", bearer(token))).status, 503);
  });
});
