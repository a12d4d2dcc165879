/**
 * Test support for tests/auth: a real HTTP server (Deno.serve on a loopback port) that
 * protects the API's route table with an Auth exactly as the API server does, configs
 * parsed from YAML through the real config loader, and a logger that records its lines
 * so tests can check that no secret is ever logged.
 */

import { createAuth, type Privilege } from "../../control/auth/auth.ts";
import type { Auth, AuthDeps } from "../../control/auth/auth.ts";
import { type Config, parseConfig } from "../../control/config.ts";
import { jsonResponse } from "../../common/protocol.ts";
import type { Fields, Logger } from "../../common/log.ts";

/** Parses a config.yaml text with no environment overrides. */
export function configFrom(yaml: string, env: Record<string, string> = {}): Config {
  return parseConfig(yaml, "test config", env);
}

/** The privilege (and function) each API route needs, as the API server maps them. */
export function routePrivilege(
  method: string,
  path: string,
): { privilege: Privilege; fn?: string } | "public" | undefined {
  if (
    ["/health", "/ready", "/metrics", "/docs/openapi.json", "/", "/ui/index.html"].includes(path)
  ) {
    return "public";
  }
  if (path === "/functions") {
    if (method === "GET") return { privilege: "functions:list" };
    if (method === "POST") return { privilege: "functions:create" };
  }
  const fn = /^\/functions\/([^/]+)$/.exec(path)?.[1];
  if (fn) {
    if (method === "GET") return { privilege: "functions:list", fn };
    if (method === "PUT") return { privilege: "functions:update", fn };
    if (method === "DELETE") return { privilege: "functions:delete", fn };
  }
  const endpoint = /^\/invoke\/([^/]+)/.exec(path)?.[1];
  if (endpoint) return { privilege: "functions:invoke", fn: endpoint };
  if (path === "/config" || path === "/events") return { privilege: "settings:view" };
  return undefined;
}

export interface AuthServer {
  url: string;
  auth: Auth;
  close(): Promise<void>;
}

/** Starts a loopback server guarding the route table with `createAuth(config)`. */
export async function startAuthServer(config: Config, deps: AuthDeps = {}): Promise<AuthServer> {
  const auth = await createAuth(config.auth, deps);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    const handled = await auth.handle(req, url);
    if (handled) return handled;
    const need = routePrivilege(req.method, url.pathname);
    if (need === undefined) return jsonResponse({ error: "not found" }, 404);
    if (need === "public") return jsonResponse({ ok: true, public: true });
    const p = await auth.require(req, need.privilege, need.fn);
    if (p instanceof Response) return p;
    return jsonResponse({ ok: true, user: p.name, group: p.group, via: p.via });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    auth,
    close: () => server.shutdown(),
  };
}

/** Runs `body` against a fresh server and always shuts it down. */
export async function withServer(
  config: Config,
  deps: AuthDeps,
  body: (s: AuthServer) => Promise<void>,
): Promise<void> {
  const s = await startAuthServer(config, deps);
  try {
    await body(s);
  } finally {
    await s.close();
  }
}

export interface Answer {
  status: number;
  headers: Headers;
  text: string;
  // deno-lint-ignore no-explicit-any
  json: any;
}

/** One request; the body is read completely (so no resource leaks) and parsed if JSON. */
export async function call(
  base: string,
  method: string,
  path: string,
  headers: HeadersInit = {},
  body?: BodyInit,
): Promise<Answer> {
  const res = await fetch(base + path, { method, headers, body });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

export function basic(username: string, password: string): HeadersInit {
  const bytes = new TextEncoder().encode(`${username}:${password}`);
  return { authorization: `Basic ${btoa(String.fromCharCode(...bytes))}` };
}

export function bearer(token: string): HeadersInit {
  return { authorization: `Bearer ${token}` };
}

/** A Logger that keeps every line it is given (as JSON text) besides dropping it. */
export function recordingLogger(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const make = (base: Fields): Logger => {
    const write = (level: string) => (msg: string, fields?: Fields) => {
      lines.push(JSON.stringify({ level, msg, ...base, ...fields }));
    };
    return {
      debug: write("debug"),
      info: write("info"),
      warn: write("warn"),
      error: write("error"),
      with: (fields) => make({ ...base, ...fields }),
    };
  };
  return { log: make({}), lines };
}
