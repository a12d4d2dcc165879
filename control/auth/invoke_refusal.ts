/**
 * What an invocation is refused for before anything runs, shared by `/invoke` and
 * `/async/invoke`: a caller without `functions:invoke` for the function (403), or a method
 * the function does not accept (405; HEAD is allowed where GET is).
 */

import type { FunctionDef } from "../../common/function.ts";
import { errorAnswer, type PlainAnswer } from "../../common/protocol.ts";
import type { AuthGate, Caller } from "./gate.ts";

export function invokeRefusal(
  auth: AuthGate,
  caller: Caller,
  fn: FunctionDef,
  method: string,
): PlainAnswer | undefined {
  if (!auth.can(caller, "functions:invoke", fn.name)) {
    const privilege = "functions:invoke";
    return errorAnswer(403, `missing privilege ${privilege} for function "${fn.name}"`, {
      privilege,
      function: fn.name,
    });
  }
  if (
    fn.method !== "ANY" && fn.method !== method && !(fn.method === "GET" && method === "HEAD")
  ) {
    return errorAnswer(
      405,
      `function "${fn.name}" accepts ${fn.method}, not ${method}`,
      undefined,
      [["allow", fn.method]],
    );
  }
  return undefined;
}
