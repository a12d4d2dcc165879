// f2s dev's port pool: a port handed out stays the taker's until released, also when the
// kernel offers it again (bind to port 0 may pick a port that is held but not yet bound).
import { assert, assertEquals } from "../harness/assert.ts";
import { createPortPool } from "../../control/runtime/ports.ts";
import { freePort } from "../../common/self.ts";

Deno.test("port pool: a held port is never handed out twice, even when offered again", () => {
  // What the kernel offers: 40001 twice in a row, as bind(0) may.
  const offers = [40001, 40001, 40002, 40001, 40003];
  const pool = createPortPool(undefined, () => offers.shift() ?? 0);
  assertEquals([pool.take(), pool.take()], [40001, 40002]);
  pool.release(40001);
  assertEquals(pool.take(), 40001, "released: free to hand out again");
  assertEquals(pool.take(), 40003);
});

Deno.test("port pool: offered only held ports, it gives up rather than share one", () => {
  const pool = createPortPool(undefined, () => 40001);
  assertEquals(pool.take(), 40001);
  assertEquals(pool.take(), undefined);
});

Deno.test("port pool: by default, distinct ports the kernel says are free", () => {
  const pool = createPortPool(undefined, freePort);
  const ports = Array.from({ length: 50 }, () => pool.take());
  assertEquals(new Set(ports).size, 50);
  for (const p of ports) assert(p !== undefined && p > 0, `port ${p}`);
});
