// Slow password checks are bounded (control/auth/passwords.ts over common/limiter.ts): at
// most maxConcurrent hash at once, maxQueued wait, and any beyond answer "busy" at once,
// so failed attempts cannot eat every core; those that ran still answer correctly.

import bcrypt from "bcryptjs";
import { createPasswordChecker } from "../../control/auth/passwords.ts";
import { assertEquals } from "../harness/assert.ts";

Deno.test("passwords: beyond the running and waiting checks, attempts answer busy at once", async () => {
  // Cost 4 keeps the test quick; the bound does not depend on the cost.
  const password = bcrypt.hashSync("right", 4);
  const checker = await createPasswordChecker(
    [{ username: "roman", password, group: "admins" }],
    { maxConcurrent: 1, maxQueued: 2 },
  );
  // Distinct credentials, so no two share a running check.
  const results = await Promise.all([
    checker.check("roman", "right"),
    checker.check("roman", "wrong-1"),
    checker.check("roman", "wrong-2"),
    checker.check("roman", "wrong-3"),
    checker.check("roman", "wrong-4"),
  ]);
  assertEquals(results.map((r) => r.ok), [true, false, false, false, false]);
  assertEquals(results.map((r) => !r.ok && r.busy === true), [false, false, false, true, true]);
  // Once the line has emptied, a check runs again.
  assertEquals(await checker.check("roman", "wrong-5"), { ok: false });
  assertEquals((await checker.check("roman", "right")).ok, true);
});
