/**
 * Auth end to end through `f2s dev` (a real child process with real function processes):
 * sign-in and bearer tokens, OIDC tokens from a key set this test serves, basic auth,
 * function-scoped privileges on invocations, forged tokens refused, no secret in the
 * answers or the server's log, and a config with an unknown auth type refused at start.
 */

import * as jose from "jose";
import bcrypt from "bcryptjs";
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { basic, bearer, call } from "./helpers.ts";
import { type ControlPlane, processesMatching, startDev, waitFor } from "../harness/dev.ts";
import { copy } from "../harness/files.ts";
import { testFunction } from "../harness/manifest.ts";

const ROOT_MAIN = new URL("../../main.ts", import.meta.url).pathname;
const ECHO = new URL("../control/fixtures/echo", import.meta.url).pathname;
const SECRET = "dev-e2e-jwt-secret-long-enough-for-hs256";
const ISSUER = "https://idp.dev-e2e.test";

function manifest(name: string, minReplicas: number): string {
  return JSON.stringify(testFunction(name, {
    minReplicas,
    maxReplicas: 1,
    local: { dir: "./echo", command: "node server.js" },
  }));
}

/** A functions folder with orders-eu (one instance) and billing (scaled to zero). */
async function functionsDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "f2s-auth-dev-" });
  await copy(ECHO, `${dir}/echo`);
  await Deno.writeTextFile(`${dir}/orders-eu.yaml`, manifest("orders-eu", 1));
  await Deno.writeTextFile(`${dir}/billing.yaml`, manifest("billing", 0));
  return dir;
}

async function cleanup(dir: string, dev?: ControlPlane): Promise<void> {
  if (dev) await dev.stop();
  await waitFor("no processes left in " + dir, () => processesMatching(dir).length === 0, 20_000);
  await Deno.remove(dir, { recursive: true });
}

Deno.test("f2s dev, token mode with OIDC: sign-in, scoped privileges, forged tokens", async () => {
  const { publicKey, privateKey } = await jose.generateKeyPair("RS256");
  const jwk = { ...await jose.exportJWK(publicKey), kid: "dev-1", alg: "RS256" };
  const idp = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => Response.json({ keys: [jwk] }),
  );
  const adminHash = bcrypt.hashSync("admin-password", 6);
  const config = `
f2s:
  auth:
    global_config: { type: token }
    basic:
      - { username: admin, password: "${adminHash}", group: admins }
      - { username: olga, password: olga-password, group: orders }
    token: { jwt_secret: ${SECRET}, expiry: 5m }
    oidc:
      issuer: ${ISSUER}
      jwks_url: http://127.0.0.1:${idp.addr.port}/jwks
      group_claim: groups
    authorization:
      - group: admins
        privileges: [functions:list, functions:invoke, functions:create, functions:delete,
          functions:update, settings:view, settings:update]
      - group: orders
        privileges: ["functions:invoke:orders-*", "functions:list:orders-*"]
`;
  const dir = await functionsDir();
  let dev: ControlPlane | undefined;
  const answers: string[] = [];
  const req = async (method: string, path: string, headers: HeadersInit = {}, body?: string) => {
    const a = await call(dev!.url, method, path, headers, body);
    // Answers of the echo function repeat the request's headers; they are the function's.
    if (!path.startsWith("/invoke/")) answers.push(a.text);
    return a;
  };
  try {
    dev = await startDev({ functionsDir: dir, config });
    assertEquals((await req("GET", "/auth/type")).json.type, "token");
    assertEquals((await req("GET", "/health")).status, 200);
    const anonymous = await req("GET", "/functions");
    assertEquals(anonymous.status, 401);
    assertMatch(anonymous.headers.get("www-authenticate")!, /^Bearer /);

    const admin = (await req("POST", "/auth/signin", basic("admin", "admin-password"))).json;
    assertEquals(admin.user, { name: "admin", group: "admins" });
    const list = await req("GET", "/functions", bearer(admin.token));
    assertEquals(list.status, 200);
    assertEquals(list.json.map((f: { metadata: { name: string } }) => f.metadata.name).sort(), [
      "billing",
      "orders-eu",
    ]);
    const settings = await req("GET", "/config", bearer(admin.token));
    assertEquals(settings.status, 200);

    const olga = (await req("POST", "/auth/signin", basic("olga", "olga-password"))).json.token;
    const invoked = await waitFor("orders-eu answers", async () => {
      const a = await req("POST", "/invoke/orders-eu/x", bearer(olga), "hi");
      return a.status === 200 ? a : undefined;
    }, 20_000);
    assertEquals(invoked!.json.body, "hi");
    const billing = await req("POST", "/invoke/billing", bearer(olga), "hi");
    assertEquals(billing.status, 403);
    assertEquals(billing.json.error, 'missing privilege functions:invoke for function "billing"');
    assertEquals((await req("GET", "/functions/orders-eu", bearer(olga))).status, 200);
    assertEquals((await req("GET", "/functions/billing", bearer(olga))).status, 403);
    assertEquals((await req("DELETE", "/functions/orders-eu", bearer(olga))).status, 403);
    assertEquals((await req("GET", "/config", bearer(olga))).status, 403);
    const me = await req("GET", "/users/me", bearer(olga));
    assertEquals([me.json.name, me.json.group, me.json.via], ["olga", "orders", "token"]);

    // A token from the identity provider, checked against the key set this test serves.
    const oidc = await new jose.SignJWT({ groups: ["orders"] })
      .setProtectedHeader({ alg: "RS256", kid: "dev-1" })
      .setIssuer(ISSUER).setSubject("oidc-user").setExpirationTime("5m")
      .sign(privateKey);
    const viaOidc = await req("GET", "/users/me", bearer(oidc));
    assertEquals([viaOidc.json.name, viaOidc.json.via], ["oidc-user", "oidc"]);
    assertEquals((await req("POST", "/invoke/orders-eu", bearer(oidc))).status, 200);

    // Forgeries: alg none, HMAC with the issuer's public key, tampered group, expired.
    const [h, p, s] = olga.split(".");
    const claims = JSON.parse(new TextDecoder().decode(jose.base64url.decode(p)));
    const enc = (v: unknown) => jose.base64url.encode(JSON.stringify(v));
    const forged: [string, string][] = [
      ["alg none", `${enc({ alg: "none" })}.${enc({ ...claims, group: "admins" })}.${s}`],
      ["tampered", `${h}.${enc({ ...claims, group: "admins" })}.${s}`],
      [
        "HS256 with the issuer's key",
        await new jose.SignJWT({ groups: ["admins"] })
          .setProtectedHeader({ alg: "HS256", kid: "dev-1" })
          .setIssuer(ISSUER).setSubject("x").setExpirationTime("5m")
          .sign(new TextEncoder().encode(JSON.stringify(jwk))),
      ],
      [
        "expired",
        await new jose.SignJWT({ group: "admins" })
          .setProtectedHeader({ alg: "HS256" })
          .setSubject("x").setExpirationTime(Math.floor(Date.now() / 1000) - 600)
          .sign(new TextEncoder().encode(SECRET)),
      ],
    ];
    for (const [name, token] of forged) {
      const a = await req("GET", "/config", bearer(token));
      assertEquals(a.status, 401, name);
    }

    // Nothing secret in any answer or log line.
    const seen = [...answers.filter((t) => !t.includes('"token":"')), ...dev.logs()].join("\n");
    for (const secret of [SECRET, "admin-password", "olga-password", adminHash, olga, s]) {
      assert(!seen.includes(secret), `leaked: ${secret.slice(0, 12)}...`);
    }
  } finally {
    await cleanup(dir, dev);
    await idp.shutdown();
  }
});

Deno.test("f2s dev, basic mode: basic credentials on every route", async () => {
  const dir = await functionsDir();
  await Deno.remove(`${dir}/orders-eu.yaml`); // no instance needed here
  let dev: ControlPlane | undefined;
  try {
    dev = await startDev({
      functionsDir: dir,
      config: `
f2s:
  auth:
    global_config: { type: basic }
    basic: [{ username: roman, password: helloworld, group: viewers }]
    authorization: [{ group: viewers, privileges: [functions:list] }]
`,
    });
    assertEquals(
      (await call(dev.url, "GET", "/functions", basic("roman", "helloworld"))).status,
      200,
    );
    const wrong = await call(dev.url, "GET", "/functions", basic("roman", "nope"));
    assertEquals(wrong.status, 401);
    assertMatch(wrong.headers.get("www-authenticate")!, /^Basic realm="f2s"/);
    const forbidden = await call(
      dev.url,
      "DELETE",
      "/functions/billing",
      basic("roman", "helloworld"),
    );
    assertEquals(forbidden.status, 403);
    assertEquals(forbidden.json.details.privilege, "functions:delete");
    assert(dev.logs().some((l) => l.includes("plain-text passwords")), "plain passwords warned");
  } finally {
    await cleanup(dir, dev);
  }
});

Deno.test("f2s dev refuses to start with an unknown auth type or token mode without secret", async () => {
  const dir = await Deno.makeTempDir({ prefix: "f2s-auth-dev-" });
  try {
    for (
      const [auth, expected] of [
        ["{ global_config: { type: kerberos } }", /f2s\.auth\.global_config\.type: "kerberos"/],
        ["{ global_config: { type: token } }", /f2s\.auth\.token\.jwt_secret: is required/],
      ] as const
    ) {
      await Deno.writeTextFile(`${dir}/config.yaml`, `f2s:\n  auth: ${auth}\n`);
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          ROOT_MAIN,
          "dev",
          "--port",
          "0",
          "--functions",
          dir,
          "--config",
          `${dir}/config.yaml`,
        ],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const kill = setTimeout(() => child.kill("SIGKILL"), 30_000);
      const out = await child.output();
      clearTimeout(kill);
      assertEquals(out.code, 1, auth);
      assertMatch(new TextDecoder().decode(out.stderr), expected);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
