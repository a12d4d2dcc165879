/**
 * control/kube/informer.ts when its watch keeps failing (the API server restarting): it
 * retries with the jittered exponential back-off of common/backoff.ts, so informers (and
 * replicas) that lost the server together do not all come back in the same millisecond, and
 * a watch that works again resets the pause. The API server is a stub here on purpose: what
 * is tested is only the retry schedule (tests/kube/ha_test.ts and operator_test.ts run the
 * informers against a real one).
 */

import { JITTER } from "../../common/backoff.ts";
import { createLogger, type Logger } from "../../common/log.ts";
import type { KubeClient } from "../../control/kube/client.ts";
import { KubeError } from "../../control/kube/client.ts";
import { createInformer } from "../../control/kube/informer.ts";
import { assert, assertEquals } from "../harness/assert.ts";
import { eventually } from "../harness/poll.ts";

/** A client whose list works and whose watch fails `failing()` times in a row, then idles. */
function stubClient(failing: () => boolean): KubeClient {
  const unused = () => Promise.reject(new Error("not used"));
  return {
    server: "https://stub",
    request: () => Promise.resolve({ items: [], metadata: { resourceVersion: "1" } }),
    get: unused,
    find: unused,
    create: unused,
    replace: unused,
    patch: unused,
    apply: unused,
    delete: unused,
    async *watch(_path, _rv, options) {
      if (failing()) throw new KubeError(503, "WATCH", "/stub", { message: "restarting" });
      // A watch that works: a bookmark, then nothing until the informer stops it.
      yield { type: "BOOKMARK", object: { metadata: { name: "", resourceVersion: "2" } } };
      await new Promise((resolve) => options?.signal?.addEventListener("abort", resolve));
    },
    close() {},
  };
}

/** The pauses the informer announced, from its log. */
function pausesLog(): { log: Logger; pauses: number[] } {
  const pauses: number[] = [];
  const base = createLogger("test");
  const log: Logger = {
    ...base,
    warn(msg, fields) {
      if (msg === "watch failed; retrying") pauses.push(fields?.retryInMs as number);
    },
    with: () => log,
  };
  return { log, pauses };
}

/**
 * An informer whose watch fails `times` in a row, then works: the pauses it announced. With
 * `random`, its jitter; else Math.random's.
 */
async function pausesAfterFailures(times: number, random?: () => number): Promise<number[]> {
  let failures = 0;
  const { log, pauses } = pausesLog();
  const informer = createInformer({
    client: stubClient(() => ++failures <= times),
    path: "/apis/x/v1/things",
    what: "things",
    log,
    random,
  });
  await informer.start();
  await eventually("the watch to work again", () => failures > times ? true : undefined, 10_000);
  await informer.stop();
  return pauses;
}

Deno.test("informer: a failing watch is retried with jittered, doubling pauses", async () => {
  // No jitter (random 0), then full jitter (random just under 1): 500, 1000, 2000 … and 20% more.
  for (const [random, factor] of [[0, 1], [0.999, 1 + JITTER * 0.999]]) {
    const pauses = await pausesAfterFailures(3, () => random);
    assertEquals(pauses, [500, 1000, 2000].map((ms) => Math.round(ms * factor)));
  }
});

Deno.test("informer: two informers that fail together pause for different times", async () => {
  const runs = await Promise.all([0, 1].map(() => pausesAfterFailures(2)));
  for (const pauses of runs) {
    assertEquals(pauses.length, 2);
    assert(pauses[0] >= 500 && pauses[0] <= 500 * (1 + JITTER), `${pauses}`);
    assert(pauses[1] >= 1000 && pauses[1] <= 1000 * (1 + JITTER), `${pauses}`);
  }
  // Math.random: the chance that 4 draws give equal pairs is negligible.
  assert(runs[0].join() !== runs[1].join(), `both paused ${runs[0]}`);
});
