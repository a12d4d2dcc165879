/**
 * The three servers the wire tests send the same raw bytes to, and how they compare:
 * (a) F2S's HTTP/1.1 server in this process with a recording handler, (b) a real fizzlet
 * in proxy mode in front of a recording node:http app, (c) Node's node:http (llhttp) as
 * the reference. A request F2S accepts must reach its handler or app exactly as llhttp
 * parsed it from the same bytes; F2S may refuse more, never less.
 */

import { type Http1Server, serveHttp1, type ServerRequest } from "../../common/http1_server.ts";
import { startFizzlet } from "../fizzlet/helpers.ts";

const HERE = new URL(".", import.meta.url).pathname;

/** A request as its receiver saw it. */
export interface Seen {
  method: string;
  url: string;
  headers: [string, string][];
  /** base64 of the body bytes. */
  body: string;
  /** False when the body broke off. */
  complete: boolean;
}

export interface Targets {
  f2sPort: number;
  fizzletPort: number;
  refPort: number;
  /** What each receiver got since the last call (and forgets it). */
  seen(which: "f2s" | "app" | "ref"): Promise<Seen[]>;
  close(): Promise<void>;
}

function base64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return btoa(s);
}

async function readAll(body: ServerRequest["body"]): Promise<Uint8Array | null> {
  if (body === null) return new Uint8Array();
  if (body instanceof Uint8Array) return body;
  try {
    return new Uint8Array(await new Response(body).arrayBuffer());
  } catch {
    return null;
  }
}

function recordingServer(records: Seen[]): Http1Server {
  return serveHttp1({ hostname: "127.0.0.1", port: 0 }, async (req) => {
    const record: Seen = {
      method: req.method,
      url: req.target,
      headers: req.headers,
      body: "",
      complete: false,
    };
    records.push(record);
    const body = await readAll(req.body);
    if (body) {
      record.body = base64(body);
      record.complete = true;
    }
    return {
      status: 200,
      headers: [["content-type", "text/plain"]],
      body: new TextEncoder().encode("ok"),
    };
  });
}

export async function startTargets(): Promise<Targets> {
  const node = new Deno.Command("node", {
    args: [`${HERE}llhttp_reference.mjs`],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = node.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let line = "";
  while (!line.includes("\n")) {
    const { done, value } = await reader.read();
    if (done) throw new Error("the node reference server exited before listening");
    line += value;
  }
  reader.releaseLock();
  node.stdout.cancel().catch(() => {});
  const ports = JSON.parse(line) as { ref: number; app: number; control: number };
  const f2sRecords: Seen[] = [];
  const server = recordingServer(f2sRecords);
  let fizzlet;
  try {
    fizzlet = await startFizzlet({
      dir: HERE,
      args: ["--mode", "proxy", "--app-port", String(ports.app)],
    });
  } catch (e) {
    node.kill("SIGKILL");
    await node.status;
    await server.shutdown();
    throw e;
  }
  return {
    f2sPort: server.addr.port,
    fizzletPort: fizzlet.port,
    refPort: ports.ref,
    async seen(which) {
      if (which === "f2s") return f2sRecords.splice(0);
      const res = await fetch(`http://127.0.0.1:${ports.control}/records?port=${which}`);
      return await res.json();
    },
    async close() {
      await fizzlet.kill();
      try {
        node.kill("SIGKILL");
      } catch {
        // Gone already.
      }
      await node.status;
      // Bounded: a connection the server never finishes (as a chunked body whose data came
      // in a later write once was) must not hang the test for minutes and hide the failure.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        server.shutdown(),
        new Promise((r) => timer = setTimeout(r, 5000)),
      ]);
      clearTimeout(timer);
    },
  };
}

/**
 * Runs `work` in `groups` side by side, each on targets of its own (a target's records
 * belong to one request at a time), and returns what each group returned. Most of an
 * exchange through the fizzlet is waiting for its connection to stay quiet after the
 * answers: the waits of different groups overlap. Every group's targets are closed before
 * this returns, also when one group fails.
 */
export async function inGroups<T>(
  groups: number,
  work: (targets: Targets, group: number) => Promise<T>,
): Promise<T[]> {
  const settled = await Promise.allSettled(
    Array.from({ length: groups }, async (_, group) => {
      const targets = await startTargets();
      try {
        return await work(targets, group);
      } finally {
        await targets.close();
      }
    }),
  );
  return settled.map((r) => {
    if (r.status === "rejected") throw r.reason;
    return r.value;
  });
}

export interface ExchangeOptions {
  /** Write the bytes in pieces, split at these offsets, `pauseMs` apart (default 5). */
  splits?: number[];
  pauseMs?: number;
  /**
   * Half-close after sending (the default): the server sees the end of the stream, so an
   * incomplete request ends in a close instead of a wait. A proxy takes a half-close for
   * a client gone (as nginx and Go do), so through the fizzlet the connection stays open
   * and the exchange ends after `expected` answers and a short quiet, or a long one.
   */
  halfClose?: boolean;
  expected?: number;
  timeoutMs?: number;
}

/**
 * Sends `bytes` on a fresh connection and returns the statuses of the answers read until
 * the server closes (an empty list: closed without an answer). Throws when a half-closed
 * connection is held open past `timeoutMs`.
 */
export async function exchange(
  port: number,
  bytes: Uint8Array,
  options: ExchangeOptions = {},
): Promise<number[]> {
  const { splits = [], pauseMs = 5, halfClose = true, expected = 0, timeoutMs = 10_000 } = options;
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const received: number[] = [];
  let lastByte = Date.now();
  let ended = false;
  const started = Date.now();
  const text = () => String.fromCharCode.apply(null, received);
  const watch = setInterval(() => {
    const quiet = Date.now() - lastByte;
    const answered = !halfClose && expected > 0 && statuses(text()).length >= expected;
    const done = halfClose
      ? Date.now() - started > timeoutMs
      : (answered && quiet > 150) || quiet > 1000;
    if (done && !ended) {
      ended = true;
      try {
        conn.close();
      } catch {
        // closed
      }
    }
  }, 25);
  let heldOpen = false;
  try {
    const reading = (async () => {
      const buf = new Uint8Array(64 * 1024);
      for (;;) {
        let n: number | null;
        try {
          n = await conn.read(buf);
        } catch (e) {
          if (e instanceof Deno.errors.BadResource || e instanceof Deno.errors.Interrupted) {
            heldOpen = halfClose;
          }
          return;
        }
        if (n === null) return;
        for (let i = 0; i < n; i++) received.push(buf[i]);
        lastByte = Date.now();
      }
    })();
    try {
      let at = 0;
      for (const split of [...splits, bytes.length]) {
        if (split <= at) continue;
        await writeAll(conn, bytes.subarray(at, split));
        at = split;
        if (split < bytes.length) await new Promise((r) => setTimeout(r, pauseMs));
      }
      lastByte = Date.now();
      if (halfClose) await conn.closeWrite();
    } catch {
      // The server closed first (after refusing): its answer is still read.
    }
    await reading;
  } finally {
    clearInterval(watch);
    ended = true;
    try {
      conn.close();
    } catch {
      // closed
    }
  }
  if (heldOpen) throw new Error(`connection held open past ${timeoutMs}ms`);
  return statuses(text());
}

async function writeAll(conn: Deno.Conn, data: Uint8Array) {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

/**
 * The statuses of the answers in a connection's bytes, each answer skipped by its framing
 * (length or chunks; an answer without either runs to the end).
 */
export function statuses(text: string): number[] {
  const out: number[] = [];
  let at = 0;
  while (at < text.length) {
    const end = text.indexOf("\r\n\r\n", at);
    if (end < 0) break;
    const head = text.slice(at, end);
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
    if (!m) break;
    const status = Number(m[1]);
    out.push(status);
    at = end + 4;
    if (status < 200 || status === 204 || status === 304) continue;
    const length = /\r\ncontent-length: *(\d+)/i.exec(head);
    if (length) {
      at += Number(length[1]);
    } else if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
      for (;;) {
        const eol = text.indexOf("\r\n", at);
        if (eol < 0) return out;
        const size = parseInt(text.slice(at, eol), 16);
        at = eol + 2 + size + 2;
        if (size === 0) break;
      }
    } else {
      break;
    }
  }
  return out;
}

/** Headers a proxy hop changes on purpose: framing, hop-by-hop, forwarding information. */
const HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "expect",
  "content-length",
  "x-forwarded-for",
  "x-forwarded-host",
  "x-forwarded-proto",
  "x-request-id",
]);

/** The origin-form of a target (what a proxy sends on for an absolute-form one). */
function originOf(url: string): string {
  if (url.startsWith("/") || url === "*") return url;
  const m = /^[a-z]+:\/\/[^/?]*(.*)$/i.exec(url);
  if (!m) return url;
  return m[1] === "" ? "/" : m[1].startsWith("?") ? `/${m[1]}` : m[1];
}

/** A request as a proxy must pass it on: end-to-end headers, origin-form target, body. */
export function endToEnd(s: Seen): Omit<Seen, "complete"> {
  const named = new Set(
    s.headers.filter(([n]) => n === "connection").flatMap(([, v]) =>
      v.toLowerCase().split(",").map((x) => x.trim())
    ),
  );
  return {
    method: s.method,
    url: originOf(s.url),
    headers: s.headers.filter(([n]) => !HOP.has(n) && !named.has(n)),
    body: s.body,
  };
}

/** As received, completeness aside. */
export function asReceived(s: Seen): Omit<Seen, "complete"> {
  return { method: s.method, url: s.url, headers: s.headers, body: s.body };
}
