/**
 * The raw-bytes corpus (tests/wire/corpus.ts) through F2S's HTTP/1.1 server, through a
 * real fizzlet in proxy mode, and through Node's node:http (llhttp) in the same run: each
 * case must get its expected answers from both F2S ports, and every request F2S hands on
 * must be one llhttp parsed from the same bytes, in the same order, with the same method,
 * target, headers and body (F2S may stop earlier, refusing more, never go further).
 */

import { assertEquals } from "../harness/assert.ts";
import { bytesOf, CORPUS } from "./corpus.ts";
import {
  asReceived,
  endToEnd,
  exchange,
  inGroups,
  type Seen,
  startTargets,
  type Targets,
} from "./targets.ts";

/** Requests whose body arrived whole: the ones that count as delivered. */
const delivered = (list: Seen[]) => list.filter((s) => s.complete);

/** The problems of one case, sent to all three targets (none: as expected). */
async function problemsOf(targets: Targets, c: typeof CORPUS[number]): Promise<string[]> {
  const bytes = bytesOf(c.bytes);
  const ref = await exchange(targets.refPort, bytes);
  const refSeen = delivered(await targets.seen("ref"));
  const f2s = await exchange(targets.f2sPort, bytes);
  const f2sStarted = await targets.seen("f2s");
  const f2sSeen = delivered(f2sStarted);
  const viaFizzlet = await exchange(targets.fizzletPort, bytes, {
    halfClose: false,
    expected: c.expect.length,
  });
  const appStarted = await targets.seen("app");
  const appSeen = delivered(appStarted);
  const problems: string[] = [];
  if (JSON.stringify(f2s) !== JSON.stringify(c.expect)) {
    problems.push(
      `server answered ${JSON.stringify(f2s)}, expected ${JSON.stringify(c.expect)}`,
    );
  }
  if (JSON.stringify(viaFizzlet) !== JSON.stringify(c.expect)) {
    problems.push(
      `fizzlet answered ${JSON.stringify(viaFizzlet)}, expected ${JSON.stringify(c.expect)}`,
    );
  }
  const okAnswers = c.expect.filter((s) => s === 200).length;
  if (f2sSeen.length !== okAnswers || appSeen.length !== okAnswers) {
    problems.push(
      `${f2sSeen.length} requests reached the server's handler and ${appSeen.length} the app, expected ${okAnswers}`,
    );
  }
  // A refused request never starts a handler, not even one that would fail later (a
  // request cut short by the client may have: its body streams).
  const cutShort = c.expect.length === 0;
  if (!cutShort && (f2sStarted.length > okAnswers || appStarted.length > okAnswers)) {
    problems.push(
      `${f2sStarted.length} handlers and ${appStarted.length} app requests started for ${okAnswers} good requests`,
    );
  }
  if (f2sSeen.length > refSeen.length || appSeen.length > refSeen.length) {
    problems.push(
      `llhttp accepted only ${refSeen.length} (node answered ${JSON.stringify(ref)})`,
    );
  }
  f2sSeen.forEach((s, i) => {
    if (!refSeen[i]) return;
    const got = JSON.stringify(asReceived(s));
    const want = JSON.stringify(asReceived(refSeen[i]));
    if (got !== want) {
      problems.push(`server's request ${i}: ${got}\n    llhttp parsed: ${want}`);
    }
  });
  appSeen.forEach((s, i) => {
    if (!refSeen[i]) return;
    const want = endToEnd(refSeen[i]);
    const got = endToEnd(s);
    // An HTTP/1.0 request without Host gets one: the app is spoken to in HTTP/1.1.
    if (!want.headers.some(([n]) => n === "host")) {
      got.headers = got.headers.filter(([n]) => n !== "host");
    }
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      problems.push(
        `app's request ${i}: ${JSON.stringify(got)}\n    llhttp parsed: ${JSON.stringify(want)}`,
      );
    }
  });
  return problems;
}

/** Cases run in this many groups side by side (see inGroups). */
const GROUPS = 4;

Deno.test("wire corpus: F2S server and fizzlet answer as expected and never parse laxer than llhttp", async () => {
  if (CORPUS.length < 100) throw new Error(`corpus has only ${CORPUS.length} cases`);
  const failures = (await inGroups(GROUPS, async (targets, group) => {
    const failed: string[] = [];
    for (const c of CORPUS.filter((_, i) => i % GROUPS === group)) {
      const problems = await problemsOf(targets, c);
      if (problems.length > 0) failed.push(`${c.name}:\n  ${problems.join("\n  ")}`);
    }
    return failed;
  })).flat();
  if (failures.length > 0) {
    throw new Error(`${failures.length} of ${CORPUS.length} cases failed:\n${failures.join("\n")}`);
  }
});

Deno.test("wire: a bad chunk after the body started streaming is a 400, and no request completes", async () => {
  const targets = await startTargets();
  try {
    const first = "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
    for (
      const bad of ["+5\r\nworld\r\n0\r\n\r\n", "5\nworld\r\n0\r\n\r\n", "5\r\nworld!\r\n0\r\n\r\n"]
    ) {
      const bytes = bytesOf(first + bad);
      const options = { splits: [first.length], pauseMs: 200 };
      const direct = await exchange(targets.f2sPort, bytes, options);
      const viaFizzlet = await exchange(targets.fizzletPort, bytes, {
        ...options,
        halfClose: false,
        expected: 1,
      });
      assertEquals([direct, viaFizzlet], [[400], [400]], JSON.stringify(bad));
      const handler = await targets.seen("f2s");
      const app = await targets.seen("app");
      // The handler started (the body streams) but never saw the body end.
      assertEquals(handler.map((s) => s.complete), [false], "the handler's request");
      assertEquals(delivered(app), [], "requests the app received whole");
    }
  } finally {
    await targets.close();
  }
});

Deno.test("wire: a chunk's data in a later write, then a half-close, is answered as llhttp answers it", async () => {
  const targets = await startTargets();
  try {
    const first = "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n";
    const bytes = bytesOf(first + "x\r\n0\r\n\r\n");
    const options = { splits: [first.length], pauseMs: 100 };
    const ref = await exchange(targets.refPort, bytes, options);
    const refSeen = delivered(await targets.seen("ref"));
    const direct = await exchange(targets.f2sPort, bytes, { ...options, timeoutMs: 5000 });
    const f2sSeen = delivered(await targets.seen("f2s"));
    const viaFizzlet = await exchange(targets.fizzletPort, bytes, {
      ...options,
      halfClose: false,
      expected: 1,
    });
    assertEquals([ref, direct, viaFizzlet], [[200], [200], [200]], "node, server, fizzlet");
    assertEquals(f2sSeen.map(asReceived), refSeen.map(asReceived), "what the handler received");
    assertEquals(delivered(await targets.seen("app")).length, 1, "requests the app received whole");
  } finally {
    await targets.close();
  }
});
