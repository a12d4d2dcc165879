/**
 * Functions are untrusted code: through `f2s dev` in token auth mode, with the JWT secret and a
 * canary variable in the control plane's environment, a command-mode function (start.sh runs
 * `env`) and an app (`target.local.command`) print their environment. Neither sees the canary
 * or the secret, and neither do the fizzlet processes beneath them (read from /proc); both see
 * their own `target.env`. A `target.env` F2S_APP_COMMAND does not become a host command.
 */

import { assert, assertEquals } from "../harness/assert.ts";
import { processesMatching, startDev, waitFor } from "../harness/dev.ts";
import { testFunction } from "../harness/manifest.ts";

const SECRET = "instance-env-test-jwt-secret-0123456789abcdef";
const CANARY_NAME = `F2S_TEST_CANARY_${crypto.randomUUID().slice(0, 8).toUpperCase()}`;
const CANARY_VALUE = `canary-${crypto.randomUUID()}`;

function manifest(name: string, dir: string, local: Record<string, string>, env = {}) {
  return JSON.stringify(testFunction(name, {
    minReplicas: 1,
    maxReplicas: 1,
    env,
    local: { dir, ...local },
  }));
}

const CONFIG = `
f2s:
  auth:
    global_config: { type: token }
    basic:
      - { username: admin, password: admin-password, group: admins }
    token: { expiry: 5m }
    authorization:
      - group: admins
        privileges: [functions:list, functions:invoke]
`;

/** Environment lines `NAME=value` of a process, from /proc. */
function procEnv(pid: number): string[] {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/environ`).split("\0").filter(Boolean);
  } catch {
    return [];
  }
}

Deno.test("f2s dev: instances get an allow-listed environment plus their own target.env", async () => {
  const dir = await Deno.makeTempDir({ prefix: "f2s-instance-env-" });
  const pwned = `${dir}/pwned`;
  await Deno.mkdir(`${dir}/printenv`);
  await Deno.writeTextFile(`${dir}/printenv/start.sh`, "#!/bin/sh\nenv\n", { mode: 0o755 });
  await Deno.mkdir(`${dir}/envapp`);
  await Deno.writeTextFile(
    `${dir}/envapp/server.js`,
    `require("node:http").createServer((q, s) => s.end(Object.entries(process.env)` +
      `.map(([k, v]) => k + "=" + v).join("\\n"))).listen(Number(process.env.PORT), "127.0.0.1");`,
  );
  await Deno.writeTextFile(
    `${dir}/script.yaml`,
    manifest("script", "./printenv", {}, {
      OWN_SETTING: "own-value",
      F2S_APP_COMMAND: `touch ${pwned}`,
    }),
  );
  await Deno.writeTextFile(
    `${dir}/app.yaml`,
    manifest("app", "./envapp", { command: "node server.js" }, { OWN_SETTING: "app-value" }),
  );
  const dev = await startDev({
    functionsDir: dir,
    config: CONFIG,
    env: { F2S_JWT_SECRET: SECRET, [CANARY_NAME]: CANARY_VALUE },
  });
  try {
    const signin = await fetch(`${dev.url}/auth/signin`, {
      method: "POST",
      headers: { authorization: `Basic ${btoa("admin:admin-password")}` },
    });
    assertEquals(signin.status, 200);
    const { token } = await signin.json();
    const invoke = async (name: string) => {
      const res = await fetch(`${dev.url}/invoke/${name}`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "text/plain" },
        body: "x",
      });
      const text = await res.text();
      return res.status === 200 ? text.split("\n").filter(Boolean) : undefined;
    };
    for (const [name, own] of [["script", "own-value"], ["app", "app-value"]]) {
      const lines = await waitFor(`${name} answers`, () => invoke(name), 30_000);
      const text = lines!.join("\n");
      assert(!text.includes(CANARY_NAME) && !text.includes(CANARY_VALUE), `${name}: canary seen`);
      assert(!text.includes(SECRET) && !text.includes("F2S_JWT_SECRET"), `${name}: secret seen`);
      assert(lines!.includes(`OWN_SETTING=${own}`), `${name}: own env missing:\n${text}`);
      assert(lines!.includes(`F2S_FUNCTION=${name}`), `${name}: F2S_FUNCTION missing`);
      assert(lines!.some((l) => l.startsWith("PATH=")), `${name}: PATH missing`);
    }
    // The fizzlets (the control plane's own program) and the app hold no secret either.
    // (The control plane matches too: its command line names the folder.)
    const pids = processesMatching(dir).filter((pid) => pid !== dev.pid);
    assert(pids.length >= 3, `expected fizzlets and an app, found ${pids.length} processes`);
    for (const pid of pids) {
      const env = procEnv(pid).join("\n");
      assert(!env.includes(CANARY_VALUE) && !env.includes(SECRET), `process ${pid} holds a secret`);
    }
    // The function's env cannot name a host command for the fizzlet to run.
    assertEquals(await Deno.stat(pwned).then(() => true, () => false), false);
  } finally {
    await dev.stop();
    await waitFor("no processes left in " + dir, () => processesMatching(dir).length === 0, 20_000);
    await Deno.remove(dir, { recursive: true });
  }
});
