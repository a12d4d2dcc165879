// The one rule both hops use to decide whether a failed request may be sent again
// (common/delivery.ts): nothing written, or idempotent by method or Idempotency-Key.
import { assertEquals } from "../harness/assert.ts";
import { isIdempotent, maySendAgain } from "../../common/delivery.ts";

Deno.test("delivery rule: a failed request may be sent again only when nothing was written or it is idempotent", () => {
  const key: [string, string][] = [["idempotency-key", "8e03978e-40d5-43e8-bc93-6894a57f9324"]];
  const cases: [method: string, headers: [string, string][], written: boolean, may: boolean][] = [
    // Nothing of it went out: any request may go again.
    ["POST", [], false, true],
    ["PATCH", [], false, true],
    ["CONNECT", [], false, true],
    ["GET", [], false, true],
    // Written: only what RFC 9110 §9.2.2 calls idempotent.
    ["GET", [], true, true],
    ["HEAD", [], true, true],
    ["OPTIONS", [], true, true],
    ["TRACE", [], true, true],
    ["PUT", [], true, true],
    ["DELETE", [], true, true],
    ["POST", [], true, false],
    ["PATCH", [], true, false],
    ["CONNECT", [], true, false],
    ["PROPFIND", [], true, false],
    // Methods are case-sensitive (RFC 9110 §9.1): "get" is not GET.
    ["get", [], true, false],
    ["post", [], true, false],
    // The caller vouches for it with an Idempotency-Key (the name arrives lower-cased).
    ["POST", key, true, true],
    ["PATCH", key, true, true],
    ["POST", [["x-idempotency-key", "1"]], true, false],
    ["POST", [["idempotency", "1"]], true, false],
  ];
  for (const [method, headers, written, may] of cases) {
    assertEquals(
      maySendAgain(method, headers, written),
      may,
      `${method} ${JSON.stringify(headers)} written=${written}`,
    );
    if (written) assertEquals(isIdempotent(method, headers), may, method);
  }
});
