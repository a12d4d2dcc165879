/**
 * The few assertions the tests use (the standard library's @std/assert lives on JSR, which
 * this project cannot reach). Node's assert module does the deep comparison.
 */

import nodeAssert from "node:assert/strict";

export function assert(condition: unknown, message = "assertion failed"): asserts condition {
  if (!condition) throw new Error(message);
}

// Without a message node:assert writes its own diff; @types/node (which
// @kubernetes/client-node brings into the type check) has no overload for `undefined`.
export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  if (message === undefined) nodeAssert.deepStrictEqual(actual, expected);
  else nodeAssert.deepStrictEqual(actual, expected, message);
}

export function assertNotEquals<T>(actual: T, expected: T, message?: string): void {
  if (message === undefined) nodeAssert.notDeepStrictEqual(actual, expected);
  else nodeAssert.notDeepStrictEqual(actual, expected, message);
}

export function assertMatch(actual: string, pattern: RegExp, message?: string): void {
  if (!pattern.test(actual)) throw new Error(message ?? `"${actual}" does not match ${pattern}`);
}

// deno-lint-ignore no-explicit-any
type Ctor = new (...args: any[]) => Error;

export function assertThrows(fn: () => unknown, ErrorClass?: Ctor, includes?: string): Error {
  try {
    fn();
  } catch (e) {
    checkError(e, ErrorClass, includes);
    return e as Error;
  }
  throw new Error("expected the function to throw");
}

export async function assertRejects(
  fn: () => Promise<unknown>,
  ErrorClass?: Ctor,
  includes?: string,
): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    checkError(e, ErrorClass, includes);
    return e as Error;
  }
  throw new Error("expected the promise to reject");
}

function checkError(e: unknown, ErrorClass?: Ctor, includes?: string) {
  if (ErrorClass && !(e instanceof ErrorClass)) {
    throw new Error(`expected ${ErrorClass.name}, got ${e}`);
  }
  if (includes && !String((e as Error)?.message).includes(includes)) {
    throw new Error(
      `expected error message to include "${includes}", got "${(e as Error)?.message}"`,
    );
  }
}
