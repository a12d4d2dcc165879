/**
 * Property: any request built from a valid one by mutations (header order and casing,
 * random bytes in header values, chunk boundaries, Content-Length or chunked framing,
 * where the bytes are split across writes) is either refused, with nothing reaching a
 * handler or app, or handed on exactly as Node's llhttp parses the same bytes, by F2S's
 * server and through a real fizzlet alike. Requests whose values are valid field content
 * must be accepted (so "refuse everything" cannot pass).
 */

import fc from "fast-check";
import { asReceived, endToEnd, exchange, inGroups, type Seen, type Targets } from "./targets.ts";
import { bytesOf } from "./corpus.ts";

const TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/** Bytes a header value may hold: VCHAR, SP, HTAB, obs-text. */
const fieldByte = fc.oneof(
  fc.integer({ min: 0x21, max: 0x7e }),
  fc.constantFrom(0x20, 0x09),
  fc.integer({ min: 0x80, max: 0xff }),
);
/** Bytes that break framing or are not allowed, weighted up. */
const hostileByte = fc.constantFrom(0x0d, 0x0a, 0x00, 0x0b, 0x7f, 0x3a, 0x9b, 0x85, 0x01);

const headerName = fc.string({ unit: fc.constantFrom(...TCHAR), minLength: 1, maxLength: 12 })
  .filter((n) =>
    ![
      "host",
      "content-length",
      "transfer-encoding",
      "connection",
      "expect",
      "te",
      "trailer",
      "upgrade",
      "keep-alive",
    ].includes(n.toLowerCase())
  );

const value = (hostile: boolean) =>
  fc.array(hostile ? fc.oneof(fieldByte, hostileByte) : fieldByte, { maxLength: 24 }).map(
    (bytes) => String.fromCharCode(...bytes),
  );

const requestModel = fc.record({
  method: fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"),
  path: fc.string({ unit: fc.constantFrom(..."abc/-_.~%20?=&;"), maxLength: 20 }),
  hostCase: fc.constantFrom("Host", "host", "HOST", "hOsT"),
  headers: fc.array(fc.tuple(headerName, fc.boolean()), { maxLength: 5 }),
  hostile: fc.boolean(),
  framing: fc.constantFrom("length", "chunked", "none"),
  body: fc.uint8Array({ maxLength: 300 }),
  chunkCuts: fc.array(fc.nat({ max: 300 }), { maxLength: 6 }),
  lengthCase: fc.constantFrom("Content-Length", "content-length", "CONTENT-LENGTH"),
  splits: fc.array(fc.nat({ max: 600 }), { maxLength: 3 }),
}).chain((m) =>
  fc.tuple(
    fc.constant(m),
    fc.tuple(...m.headers.map(([, hostile]) => value(hostile && m.hostile))),
  )
);

type Model = typeof requestModel extends fc.Arbitrary<infer T> ? T : never;

function serialize([m, values]: Model): { bytes: string; clean: boolean } {
  const lines = [`${m.method} /${m.path} HTTP/1.1`, `${m.hostCase}: f2s.test`];
  m.headers.forEach(([name], i) => lines.push(`${name}: ${values[i]}`));
  const body = String.fromCharCode(...m.body);
  let framed = "";
  if (m.framing === "length") {
    lines.push(`${m.lengthCase}: ${body.length}`);
    framed = body;
  } else if (m.framing === "chunked") {
    lines.push("Transfer-Encoding: chunked");
    const cuts = [...new Set(m.chunkCuts.filter((c) => c > 0 && c < body.length))].sort((a, b) =>
      a - b
    );
    let at = 0;
    for (const cut of [...cuts, body.length]) {
      if (cut > at) framed += `${(cut - at).toString(16)}\r\n${body.slice(at, cut)}\r\n`;
      at = cut;
    }
    framed += "0\r\n\r\n";
  }
  // Valid field content: no CTL but HTAB; no leading or trailing blanks (those are trimmed).
  // deno-lint-ignore no-control-regex
  const clean = values.every((v) => !/[\0-\x08\x0a-\x1f\x7f]/.test(v));
  return { bytes: lines.join("\r\n") + "\r\n\r\n" + framed, clean };
}

const complete = (list: Seen[]) => list.filter((s) => s.complete);

/** Runs spread over this many groups side by side (see inGroups), each with its own seed. */
const GROUPS = 4;
const RUNS = 80;

Deno.test("wire property: mutated requests are refused or handed on exactly as llhttp parses them", async () => {
  await inGroups(GROUPS, (targets, group) =>
    fc.assert(
      fc.asyncProperty(requestModel, (model) => check(targets, model)),
      { numRuns: RUNS / GROUPS, examples: group === 0 ? [[HEAD_ENDS_EARLY]] : [] },
    ));
});

/** A value of "\r\n" ends the head early: one good request, then a refused one. */
const HEAD_ENDS_EARLY: Model = [{
  method: "DELETE",
  path: "a",
  hostCase: "Host",
  headers: [["n", true], ["m", true]],
  hostile: true,
  framing: "length",
  body: Uint8Array.from([251]),
  chunkCuts: [],
  lengthCase: "Content-Length",
  splits: [],
}, ["\r\n", ""]];

/** Sends one mutated request to all three targets; throws when F2S disagrees with llhttp. */
async function check(targets: Targets, model: Model): Promise<void> {
  const { bytes, clean } = serialize(model);
  const raw = bytesOf(bytes);
  const splits = model[0].splits.filter((s) => s < raw.length);
  await exchange(targets.refPort, raw, { splits });
  const ref = complete(await targets.seen("ref"));
  const direct = await exchange(targets.f2sPort, raw, { splits });
  const handler = await targets.seen("f2s");
  const proxied = await exchange(targets.fizzletPort, raw, {
    splits,
    halfClose: false,
    expected: 1,
  });
  const app = await targets.seen("app");
  // A value holding CR LF CR LF ends the head early: the bytes after it are a second
  // request, which must be refused; the first is judged as any other.
  const accepted = direct[0] === 200 && !direct.slice(1).includes(200);
  if (clean && !(accepted && direct.length === 1)) {
    throw new Error(`valid request refused: ${direct}`);
  }
  if (!accepted) {
    if (handler.length > 0) throw new Error(`refused (${direct}) but the handler started`);
    if (app.length > 0) throw new Error(`refused (${proxied}) but the app saw a request`);
    return;
  }
  if (handler.length !== 1) throw new Error(`${handler.length} handlers started for ${direct}`);
  if (proxied[0] !== 200 || proxied.slice(1).includes(200)) {
    throw new Error(`fizzlet answered ${proxied}`);
  }
  if (ref.length !== 1) throw new Error(`F2S accepted what llhttp did not (${ref.length})`);
  const want = JSON.stringify(asReceived(ref[0]));
  const got = JSON.stringify(asReceived(complete(handler)[0] ?? {} as Seen));
  if (got !== want) throw new Error(`server handed on ${got}\nllhttp parsed ${want}`);
  const wantApp = JSON.stringify(endToEnd(ref[0]));
  const gotApp = JSON.stringify(
    endToEnd(complete(app)[0] ?? { headers: [] } as unknown as Seen),
  );
  if (gotApp !== wantApp) throw new Error(`app received ${gotApp}\nllhttp parsed ${wantApp}`);
}
