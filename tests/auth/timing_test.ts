/**
 * A crude side-channel check: through a real server, sign-in attempts with an unknown
 * username and with a wrong password (for a bcrypt user and for a plain-text user) must
 * take about the same time. A naive check (stop at an unknown user, compare plain text
 * directly) differs by the whole bcrypt cost, a factor of ten or more here, so the
 * generous bound below still catches it without being flaky.
 */

import bcrypt from "bcryptjs";
import { assert, assertEquals } from "./assert.ts";
import { basic, call, configFrom, recordingLogger, withServer } from "./helpers.ts";

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

Deno.test("sign-in: wrong user and wrong password are not distinguishable by time", async () => {
  const hash = bcrypt.hashSync("alice-password", 8);
  const config = configFrom(`
f2s:
  auth:
    global_config: { type: token }
    basic:
      - { username: alice, password: "${hash}", group: admins }
      - { username: bob, password: bob-password, group: admins }
    token: { jwt_secret: timing-test-secret-that-is-long-enough }
    authorization: [{ group: admins, privileges: [functions:list] }]
`);
  // Many failures from one client on purpose: the sign-in throttle is set out of the way.
  const throttle = { pairLimit: 1_000, addressLimit: 1_000 };
  await withServer(config, { log: recordingLogger().log, throttle }, async (s) => {
    const attempts: Record<string, [string, string]> = {
      unknownUser: ["mallory", "alice-password"],
      wrongPasswordBcrypt: ["alice", "not-her-password"],
      wrongPasswordPlain: ["bob", "not-his-password"],
    };
    const times: Record<string, number[]> = {};
    const bodies = new Set<string>();
    for (let round = -3; round < 25; round++) {
      for (const [kind, [user, pass]] of Object.entries(attempts)) {
        const t0 = performance.now();
        const a = await call(s.url, "POST", "/auth/signin", basic(user, pass));
        const ms = performance.now() - t0;
        assertEquals(a.status, 401);
        bodies.add(a.text + a.headers.get("www-authenticate"));
        if (round >= 0) (times[kind] ??= []).push(ms); // the first rounds warm up
      }
    }
    assertEquals(bodies.size, 1, "every failure gets the same answer");
    const m = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
    console.log("median ms:", JSON.stringify(m));
    for (const kind of ["wrongPasswordBcrypt", "wrongPasswordPlain"]) {
      const ratio = m.unknownUser / m[kind];
      assert(ratio > 0.67 && ratio < 1.5, `unknown user / ${kind} = ${ratio.toFixed(2)}`);
    }
    // The right password still signs in (and is then remembered, so it is fast).
    const ok = await call(s.url, "POST", "/auth/signin", basic("alice", "alice-password"));
    assertEquals(ok.status, 200);
  });
});
