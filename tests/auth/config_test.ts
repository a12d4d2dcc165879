/**
 * The `f2s.auth` configuration through the real loader: the seed's shape loads unchanged,
 * every mistake is reported with its field path (and without quoting secrets), environment
 * overrides are validated, createAuth refuses a configuration that cannot work, and
 * redactConfig hides every secret.
 */

import * as jose from "jose";
import bcrypt from "bcryptjs";
import { createAuth } from "../../control/auth/auth.ts";
import { ConfigError, redactConfig } from "../../control/config.ts";
import { assert, assertEquals, assertMatch, thrown } from "./assert.ts";
import { configFrom, recordingLogger } from "./helpers.ts";

const SEED_TOKEN = await new jose.SignJWT({ sub: "roman", group: "admins" })
  .setProtectedHeader({ alg: "HS256" })
  .sign(new TextEncoder().encode("test"));

const SEED = `
f2s:
  auth:
    global_config:
      type: none            # none | basic | token
    basic:
      - username: roman
        password: helloworld
        group: admins
    token:
      tokens:
        - token: ${SEED_TOKEN}
      jwt_secret: test
    authorization:
      - group: admins
        privileges: [functions:list, functions:invoke, functions:create, functions:delete, functions:update, settings:view, settings:update]
`;

/** The errors a config text produces, as "path: message" lines. */
function errorsOf(yaml: string, env: Record<string, string> = {}): string[] {
  try {
    configFrom(yaml, env);
  } catch (e) {
    if (e instanceof ConfigError) return e.errors.map((x) => `${x.path}: ${x.message}`);
    throw e;
  }
  return [];
}

function auth(body: string): string {
  return `f2s:\n  auth:\n${body.replace(/^/gm, "    ")}\n`;
}

Deno.test("the seed's auth section loads unchanged, in every type", () => {
  for (const type of ["none", "basic", "token"]) {
    const c = configFrom(SEED.replace("type: none", `type: ${type}`));
    assertEquals(c.auth.type, type);
    assertEquals(c.auth.basic, [{ username: "roman", password: "helloworld", group: "admins" }]);
    assertEquals(c.auth.token.jwtSecret, "test");
    assertEquals(c.auth.token.tokens, [SEED_TOKEN]);
    assertEquals(c.auth.token.expiry, 3_600_000);
    assertEquals(c.auth.clockTolerance, 30_000);
    assertEquals(c.auth.authorization[0].privileges.length, 7);
    assertEquals(c.auth.oidc, undefined);
  }
  assertEquals(configFrom("").auth.type, "none");
  // The sample's placeholder token ("eyJhbGciOi...") loads too; start-up warns about it.
  assertEquals(configFrom(SEED.replace(SEED_TOKEN, "eyJhbGciOi...")).auth.token.tokens.length, 1);
});

Deno.test("auth config mistakes are reported with their field paths", () => {
  const cases: [string, RegExp][] = [
    ["global_config: { type: kerberos }", /^f2s\.auth\.global_config\.type: "kerberos" is not/],
    ["global_config: { type: token }", /^f2s\.auth\.token\.jwt_secret: is required/],
    ["global_config: { type: basic }", /^f2s\.auth\.basic: must list at least one user/],
    ["global_config: { type: oidc }", /^f2s\.auth\.oidc: is required/],
    ["global_config: { clock_tolerance: 1h }", /clock_tolerance: must be at most 5m/],
    ["basic: [{ username: a, password: b }]", /^f2s\.auth\.basic\[0\]\.group: is required/],
    ["basic: [{ password: b, group: g }]", /^f2s\.auth\.basic\[0\]\.username: is required/],
    ["basic: [{ username: a, group: g }]", /^f2s\.auth\.basic\[0\]\.password: is required/],
    ["basic: [{ username: 'a:b', password: b, group: g }]", /username: must not contain ":"/],
    [
      'basic: [{ username: "eve\\r\\nx", password: b, group: g }]',
      /^f2s\.auth\.basic\[0\]\.username: contains control characters/,
    ],
    [
      'authorization: [{ group: "g\\u0085", privileges: [] }]',
      /^f2s\.auth\.authorization\[0\]\.group: contains control characters/,
    ],
    [
      "basic: [{ username: a, password: b, group: g }, { username: a, password: c, group: g }]",
      /^f2s\.auth\.basic\[1\]\.username: "a" is listed twice/,
    ],
    [
      "basic: [{ username: a, password: b, group: g, role: x }]",
      /basic\[0\]\.role: is not a known/,
    ],
    ["basic: { username: a }", /^f2s\.auth\.basic: must be a list/],
    [
      "authorization: [{ group: g, privileges: [functions:lsit] }]",
      /^f2s\.auth\.authorization\[0\]\.privileges\[0\]: "functions:lsit" is not a privilege/,
    ],
    [
      "authorization: [{ group: g, privileges: ['settings:view:x'] }]",
      /privileges\[0\]: .*only functions:\* privileges can be scoped/,
    ],
    [
      "authorization: [{ group: g, privileges: ['functions:invoke:Orders_*'] }]",
      /privileges\[0\]: .*must be a function name pattern/,
    ],
    ["authorization: [{ privileges: [functions:list] }]", /authorization\[0\]\.group: is required/],
    [
      "authorization: [{ group: g, privileges: [] }, { group: g, privileges: [] }]",
      /authorization\[1\]\.group: "g" is listed twice/,
    ],
    ["token: { expiry: 0 }", /^f2s\.auth\.token\.expiry: must be between/],
    [
      "token: { tokens: [{ token: 7 }] }",
      /^f2s\.auth\.token\.tokens\[0\]\.token: must be a string/,
    ],
    ["token: { tokens: [{ tkn: abc }] }", /^f2s\.auth\.token\.tokens\[0\]\.tkn: is not a known/],
    ["oidc: { jwks_url: 'https://idp/jwks' }", /^f2s\.auth\.oidc\.issuer: is required/],
    ["oidc: { issuer: x }", /^f2s\.auth\.oidc\.jwks_url: is required/],
    ["oidc: { issuer: x, jwks_url: 'ftp://idp/jwks' }", /jwks_url: "ftp:\/\/idp\/jwks" is not an/],
    ["oidc: { issuer: f2s, jwks_url: 'https://idp/j' }", /oidc\.issuer: "f2s" is reserved/],
    [
      "oidc: { issuer: x, jwks_url: 'https://idp/j', algorithms: [RS256, HS256] }",
      /^f2s\.auth\.oidc\.algorithms\[1\]: "HS256" is not accepted from an issuer/,
    ],
    ["oidc: { issuer: x, jwks_url: 'https://idp/j', algorithms: [none] }", /algorithms\[0\]/],
    ["oidc: { issuer: x, jwks_url: 'https://idp/j', group_claim: 'a..b' }", /group_claim: must/],
    ["ldap: {}", /^f2s\.auth\.ldap: is not a known key/],
  ];
  for (const [body, expected] of cases) {
    const errors = errorsOf(auth(body));
    assert(errors.some((e) => expected.test(e)), `${body}\n  got: ${errors.join("\n  ")}`);
  }
});

Deno.test("malformed password hashes are refused without quoting them", () => {
  const badHash = "$2b$10$tooShortToBeARealBcryptHash";
  const errors = errorsOf(auth(`basic: [{ username: a, password: "${badHash}", group: g }]`));
  assertEquals(errors.length, 1);
  assertMatch(errors[0], /^f2s\.auth\.basic\[0\]\.password: looks like a bcrypt or argon2 hash/);
  assert(!errors[0].includes("tooShort"));
  const badArgon = "$argon2id$v=19$m=nope";
  assertEquals(
    errorsOf(auth(`basic: [{ username: a, password: "${badArgon}", group: g }]`)).length,
    1,
  );
  const good = bcrypt.hashSync("pw", 4);
  assertEquals(errorsOf(auth(`basic: [{ username: a, password: "${good}", group: g }]`)), []);
});

Deno.test("environment overrides are validated after they apply", () => {
  const tokenNoSecret = auth("global_config: { type: token }");
  assertEquals(errorsOf(tokenNoSecret, { F2S_JWT_SECRET: "from-env" }), []);
  assertEquals(
    configFrom(tokenNoSecret, { F2S_JWT_SECRET: "from-env" }).auth.token.jwtSecret,
    "from-env",
  );
  const errors = errorsOf(SEED, { F2S_AUTH_TYPE: "oidc" });
  assert(errors.some((e) => e.startsWith("f2s.auth.oidc: is required")), errors.join("; "));
  assert(errorsOf(SEED, { F2S_AUTH_TYPE: "bogus" }).some((e) => e.startsWith("env F2S_AUTH_TYPE")));
  assertEquals(configFrom(SEED, { F2S_AUTH_TYPE: "token" }).auth.type, "token");
});

Deno.test("createAuth refuses a configuration that cannot work, and warns about risky ones", async () => {
  const base = configFrom(SEED).auth;
  const e = await thrown(() => createAuth({ ...base, type: "kerberos" as "none" }));
  assert(e instanceof ConfigError);
  assertMatch(e.message, /f2s\.auth\.global_config\.type: "kerberos" is not an auth type/);
  const noSecret = { ...base, type: "token" as const, token: { ...base.token, jwtSecret: "" } };
  assertMatch((await thrown(() => createAuth(noSecret))).message, /jwt_secret: is required/);

  const { log, lines } = recordingLogger();
  const placeholder = { ...base.token, tokens: [...base.token.tokens, "eyJhbGciOi..."] };
  await createAuth({ ...base, type: "token", token: placeholder }, { log });
  const text = lines.join("\n");
  assertMatch(text, /plain-text passwords.*roman/);
  assertMatch(text, /jwt_secret is shorter than 32 bytes/);
  assertMatch(text, /f2s\.auth\.token\.tokens\[1\]\.token is not a signed JWT/);
  assert(!/tokens\[0\]/.test(text), "the seed's real token is not warned about");
  assert(!text.includes("helloworld"));
  assert(!text.includes(SEED_TOKEN));
});

Deno.test("redactConfig hides passwords, jwt_secret and tokens, and keeps the rest", () => {
  const c = configFrom(`${SEED}
    oidc: { issuer: https://idp.test, jwks_url: https://idp.test/jwks, audience: f2s }
`);
  const text = JSON.stringify(redactConfig(c));
  for (const secret of ["helloworld", SEED_TOKEN, '"jwtSecret":"test"']) {
    assert(!text.includes(secret), `redacted config still shows ${secret.slice(0, 20)}`);
  }
  // deno-lint-ignore no-explicit-any
  const r = redactConfig(c) as any;
  assertEquals(r.auth.basic[0], { username: "roman", password: "***", group: "admins" });
  assertEquals(r.auth.token.tokens, ["***"]);
  assertEquals(r.auth.oidc.issuer, "https://idp.test");
  assertEquals(r.auth.oidc.audience, ["f2s"]);
  // The original is untouched.
  assertEquals(c.auth.basic[0].password, "helloworld");
});
