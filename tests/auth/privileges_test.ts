/** Privilege strings: parsing, function-name patterns and what a set of grants allows. */

import { grantsAllow, grantsOf, parseGrant, PRIVILEGES } from "../../control/auth/privileges.ts";
import { assert, assertEquals, assertMatch } from "./assert.ts";

Deno.test("every plain privilege parses, unscoped", () => {
  for (const p of PRIVILEGES) assertEquals(parseGrant(p), { privilege: p });
});

Deno.test("function privileges scoped by pattern match names with * and ?", () => {
  const grants = grantsOf(["functions:invoke:orders-*", "functions:list:a?c", "settings:view"]);
  const invoke = (name?: string) => grantsAllow(grants, "functions:invoke", name);
  assert(invoke("orders-"));
  assert(invoke("orders-eu-1"));
  assert(!invoke("orders"));
  assert(!invoke("my-orders-1"), "patterns are anchored");
  assert(!invoke(), "a scoped grant does not cover every function");
  assert(grantsAllow(grants, "functions:list", "abc"));
  assert(!grantsAllow(grants, "functions:list", "abbc"));
  assert(grantsAllow(grants, "settings:view"));
  assert(!grantsAllow(grants, "settings:update"));
  assert(!grantsAllow(grants, "functions:delete", "orders-1"));
  // An unscoped grant covers any function, named or not.
  assert(grantsAllow(grantsOf(["functions:delete"]), "functions:delete", "anything"));
});

Deno.test("invalid privilege strings are explained and ignored when granted", () => {
  for (
    const [text, reason] of [
      ["functions:read", /is not a privilege/],
      ["settings:view:x", /only functions/],
      ["functions:local:orders-*", /power over the host.*cannot be scoped/],
      ["functions:invoke:", /must be a function name pattern/],
      ["functions:invoke:a.b", /must be a function name pattern/],
      ["functions:invoke:(.*)", /must be a function name pattern/],
      ["*", /is not a privilege/],
    ] as const
  ) {
    const g = parseGrant(text);
    assert(typeof g === "string", text);
    assertMatch(g, reason);
  }
  assertEquals(grantsOf(["functions:read", "functions:list"]).length, 1);
});
