/**
 * The few assertions tests/auth uses, on top of node:assert (JSR's @std/assert is not
 * reachable here), with the names Deno's standard library gives them.
 */

import nodeAssert from "node:assert/strict";

// `message ?? ""` is not the same (node:assert would print an empty message); @types/node
// (which @kubernetes/client-node brings into the type check) has no overload for undefined.
export function assert(condition: unknown, message?: string): asserts condition {
  if (message === undefined) nodeAssert.ok(condition);
  else nodeAssert.ok(condition, message);
}

export function assertEquals<T>(actual: unknown, expected: T, message?: string): void {
  if (message === undefined) nodeAssert.deepStrictEqual(actual, expected);
  else nodeAssert.deepStrictEqual(actual, expected, message);
}

export function assertMatch(actual: string, pattern: RegExp, message?: string): void {
  if (message === undefined) nodeAssert.match(actual, pattern);
  else nodeAssert.match(actual, pattern, message);
}

/** Calls `fn` and returns what it threw; fails when it did not throw. */
export async function thrown(fn: () => unknown): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    return e as Error;
  }
  throw new nodeAssert.AssertionError({ message: "expected an error, none was thrown" });
}
