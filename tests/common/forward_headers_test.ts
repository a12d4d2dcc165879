// The one header-forwarding policy of both hops, as a table: what each hop sends on for a
// given request. Every row would fail if hop-by-hop removal (RFC 9110 7.6.1, Connection-
// named headers included), trust of forwarded headers or identity stripping (and of F2S's
// delivery headers) were lost.

import {
  FROM_CLIENT,
  FROM_DISPATCHER,
  type HeaderPolicy,
  type HopInfo,
  upstreamHeaders,
} from "../../common/forward_headers.ts";
import { assertEquals } from "../harness/assert.ts";

type Pairs = [string, string][];

const HOP: HopInfo = { requestId: "r1", fallbackHost: "10.0.0.5:8080", clientAddress: "1.2.3.4" };
const BOB = { name: "bob", group: "ops" };

/** What either hop adds for a plain request to a.example from 1.2.3.4. */
const ADDED: Pairs = [
  ["x-request-id", "r1"],
  ["x-forwarded-for", "1.2.3.4"],
  ["x-forwarded-proto", "http"],
  ["x-forwarded-host", "a.example"],
];

interface Row {
  name: string;
  policy: HeaderPolicy;
  headers: Pairs;
  body?: Uint8Array | null;
  hop?: Partial<HopInfo>;
  /** What goes on, order included. */
  sent: Pairs;
}

const ROWS: Row[] = [
  {
    name: "hop-by-hop headers and expect never go on",
    policy: FROM_CLIENT,
    headers: [
      ["host", "a.example"],
      ["connection", "keep-alive"],
      ["keep-alive", "timeout=5"],
      ["proxy-connection", "keep-alive"],
      ["proxy-authorization", "Basic eDp5"],
      ["proxy-authenticate", "Basic"],
      ["te", "trailers"],
      ["trailer", "x-sum"],
      ["transfer-encoding", "chunked"],
      ["upgrade", "websocket"],
      ["expect", "100-continue"],
      ["accept", "*/*"],
    ],
    sent: [
      ["host", "a.example"],
      ["accept", "*/*"],
      ...ADDED,
    ],
  },
  {
    name: "headers any Connection field names are hop-by-hop (any case, several fields)",
    policy: FROM_DISPATCHER,
    headers: [
      ["host", "a.example"],
      ["connection", "X-Secret, Keep-Alive"],
      ["x-secret", "s"],
      ["connection", "x-other"],
      ["x-other", "o"],
      ["x-kept", "k"],
    ],
    sent: [
      ["host", "a.example"],
      ["x-kept", "k"],
      ...ADDED,
    ],
  },
  {
    name: "from a client: forwarded host, proto and request id are replaced, the chain appended",
    policy: FROM_CLIENT,
    headers: [
      ["host", "a.example"],
      ["x-forwarded-host", "evil.example"],
      ["x-forwarded-proto", "https"],
      ["x-forwarded-for", "9.9.9.9"],
      ["x-forwarded-for", "8.8.8.8"],
      ["x-request-id", "forged"],
    ],
    hop: { protocol: "https" },
    sent: [
      ["host", "a.example"],
      ["x-request-id", "r1"],
      ["x-forwarded-for", "9.9.9.9, 8.8.8.8, 1.2.3.4"],
      ["x-forwarded-proto", "https"],
      ["x-forwarded-host", "a.example"],
    ],
  },
  {
    name: "from the dispatcher: its forwarded host and proto stand",
    policy: FROM_DISPATCHER,
    headers: [
      ["host", "a.example"],
      ["x-forwarded-host", "public.example"],
      ["x-forwarded-proto", "https"],
      ["x-forwarded-for", "9.9.9.9"],
      ["x-request-id", "r0"],
    ],
    sent: [
      ["host", "a.example"],
      ["x-forwarded-host", "public.example"],
      ["x-forwarded-proto", "https"],
      ["x-request-id", "r1"],
      ["x-forwarded-for", "9.9.9.9, 1.2.3.4"],
    ],
  },
  {
    name: "from a client: identity headers are stripped, credentials kept without a caller",
    policy: FROM_CLIENT,
    headers: [
      ["host", "a.example"],
      ["x-f2s-caller", "admin"],
      ["x-f2s-group", "admins"],
      ["authorization", "Bearer t"],
    ],
    sent: [
      ["host", "a.example"],
      ["authorization", "Bearer t"],
      ...ADDED,
    ],
  },
  {
    name: "an authenticated caller: its credentials stay behind, its identity goes on",
    policy: FROM_CLIENT,
    headers: [
      ["host", "a.example"],
      ["authorization", "Bearer t"],
      ["x-f2s-caller", "admin"],
    ],
    hop: { caller: { name: "Tomáš", group: "ops" } },
    sent: [
      ["host", "a.example"],
      ...ADDED,
      ["x-f2s-caller", "Tom%C3%A1%C5%A1"],
      ["x-f2s-group", "ops"],
    ],
  },
  {
    name: "from the dispatcher: the identity it set stands",
    policy: FROM_DISPATCHER,
    headers: [
      ["host", "a.example"],
      ["x-f2s-caller", "bob"],
      ["x-f2s-group", "ops"],
      ["authorization", "Bearer app-token"],
    ],
    sent: [
      ["host", "a.example"],
      ["x-f2s-caller", "bob"],
      ["x-f2s-group", "ops"],
      ["authorization", "Bearer app-token"],
      ...ADDED,
    ],
  },
  {
    name: "from a client: F2S's delivery headers are stripped, the platform's own go on",
    policy: FROM_CLIENT,
    headers: [
      ["host", "a.example"],
      ["x-f2s-schedule-tick", "2020-01-01T00:00:00.000Z"],
      ["x-f2s-attempt", "7"],
    ],
    hop: { platform: [["x-f2s-attempt", "2"]] },
    sent: [
      ["host", "a.example"],
      ...ADDED,
      ["x-f2s-attempt", "2"],
    ],
  },
  {
    name: "from the dispatcher: the delivery headers it set stand",
    policy: FROM_DISPATCHER,
    headers: [
      ["host", "a.example"],
      ["x-f2s-schedule-tick", "2026-01-01T00:00:00.000Z"],
      ["x-f2s-attempt", "1"],
    ],
    sent: [
      ["host", "a.example"],
      ["x-f2s-schedule-tick", "2026-01-01T00:00:00.000Z"],
      ["x-f2s-attempt", "1"],
      ...ADDED,
    ],
  },
  {
    name: "no Host (HTTP/1.0): the fallback, and no X-Forwarded-Host; no client address",
    policy: FROM_CLIENT,
    headers: [["x-forwarded-for", "9.9.9.9"]],
    hop: { clientAddress: undefined },
    sent: [
      ["host", "10.0.0.5:8080"],
      ["x-request-id", "r1"],
      ["x-forwarded-for", "9.9.9.9"],
      ["x-forwarded-proto", "http"],
    ],
  },
  {
    name: "a body in memory without a length gets one",
    policy: FROM_DISPATCHER,
    headers: [["host", "a.example"], ["transfer-encoding", "chunked"]],
    body: new Uint8Array(5),
    sent: [
      ["host", "a.example"],
      ["content-length", "5"],
      ...ADDED,
    ],
  },
  {
    name: "a stated length stays the only one",
    policy: FROM_CLIENT,
    headers: [["host", "a.example"], ["content-length", "5"]],
    body: new Uint8Array(5),
    hop: { caller: BOB },
    sent: [
      ["host", "a.example"],
      ["content-length", "5"],
      ...ADDED,
      ["x-f2s-caller", "bob"],
      ["x-f2s-group", "ops"],
    ],
  },
];

for (const row of ROWS) {
  Deno.test(`forward headers: ${row.name}`, () => {
    const sent = upstreamHeaders(row.headers, row.body ?? null, row.policy, {
      ...HOP,
      ...row.hop,
    });
    assertEquals(sent, row.sent);
  });
}
