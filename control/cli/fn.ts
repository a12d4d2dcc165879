/**
 * `f2s fn …`: the command-line client of a running control plane.
 *
 *   f2s fn login | list | get NAME | apply -f FILE | delete NAME | invoke ENDPOINT [--data …]
 *   f2s fn invoke ENDPOINT --async [--callback URL] | calls NAME
 *
 * The URL comes from `--url`, `F2S_URL`, the stored login, else http://127.0.0.1:8080;
 * credentials from `--user`/`F2S_USER` (basic, "name:password"), `--token`/`F2S_TOKEN`
 * (bearer), else the token `f2s fn login` stored for that URL (login.ts).
 *
 * Exit codes: 0 done; 1 the control plane refused or the function failed; 2 wrong usage;
 * 3 the control plane cannot be reached, or the URL is not an F2S control plane; 4 a local
 * file cannot be read or is not YAML. Every failure is one line on stderr.
 */

import { parseAllDocuments } from "yaml";
import { helpText, type OptionTable, parseCommand, UsageError } from "../../common/cli.ts";
import { showCalls } from "./calls.ts";
import { REQUEST_ID_HEADER } from "../../common/protocol.ts";
import { readLogin, writeLogin } from "./login.ts";

const DEFAULT_URL = "http://127.0.0.1:8080";

/** Exit codes (documented in docs/cli.md). */
export const EXIT = { failed: 1, usage: 2, unreachable: 3, file: 4 } as const;

const OPTIONS: OptionTable = {
  url: {
    type: "string",
    env: "F2S_URL",
    value: "URL",
    description: `Control plane URL (default: the one f2s fn login stored, else ${DEFAULT_URL})`,
  },
  user: {
    type: "string",
    env: "F2S_USER",
    value: "NAME:PASSWORD",
    description: "Basic auth credentials (login: NAME, the password is read from stdin)",
  },
  token: { type: "string", env: "F2S_TOKEN", value: "JWT", description: "Bearer token" },
  file: {
    type: "string",
    short: "f",
    value: "FILE",
    description: "Manifest file for apply (- for stdin)",
  },
  data: {
    type: "string",
    short: "d",
    value: "BODY",
    description: "Request body for invoke (@file reads a file)",
  },
  method: {
    type: "string",
    short: "X",
    value: "METHOD",
    description: "HTTP method for invoke (default POST with --data, else GET)",
  },
  header: {
    type: "string",
    short: "H",
    multiple: true,
    value: "'K: V'",
    description: "Extra header for invoke (repeatable)",
  },
  async: {
    type: "boolean",
    description: "invoke: queue the call (POST /async/invoke/…) and print its id",
  },
  callback: {
    type: "string",
    value: "URL",
    description: "invoke --async: where the answer is POSTed (X-Callback-Url)",
  },
  wait: {
    type: "string",
    default: "60",
    value: "SECONDS",
    description: "How long apply waits for the function to be ready (0: do not wait)",
  },
  output: {
    type: "string",
    short: "o",
    default: "table",
    value: "table|json|yaml",
    description: "Output format of list/get",
  },
};

const USAGE =
  "f2s fn login --user NAME | list | get NAME | apply -f FILE | delete NAME | invoke ENDPOINT [--data BODY] [--async] | calls NAME";
const DESCRIPTION = "Manage and invoke functions on a running F2S control plane.";

type Values = Record<string, string | boolean | string[] | undefined>;

export async function main(args: string[]): Promise<number> {
  const { values, positionals, help } = parseCommand(args, OPTIONS);
  if (help || positionals.length === 0) {
    console.log(helpText(USAGE, DESCRIPTION, OPTIONS));
    return help ? 0 : 2;
  }
  const [verb, ...rest] = positionals;
  // login sends the user's name and password in its body, never as credentials.
  const client = createClient(values, verb === "login");
  try {
    return await runVerb(verb, rest, client, values);
  } catch (e) {
    if (!(e instanceof CliError)) throw e;
    console.error(`f2s fn ${verb}: ${e.message}`);
    return e.code;
  }
}

function runVerb(verb: string, rest: string[], client: Client, values: Values): Promise<number> {
  switch (verb) {
    case "login":
      return login(client, values);
    case "list":
      return list(client, values);
    case "get":
      return get(client, need(rest, "NAME"), values);
    case "apply":
      return apply(client, values);
    case "delete":
      return del(client, need(rest, "NAME"));
    case "invoke":
      return invoke(client, need(rest, "ENDPOINT"), values);
    case "calls":
      return showCalls(client, need(rest, "NAME"), String(values.output), failure);
    default:
      throw new UsageError(
        `unknown verb "${verb}" (login, list, get, apply, delete, invoke, calls)`,
      );
  }
}

function need(rest: string[], what: string): string {
  if (!rest[0]) throw new UsageError(`missing ${what}`);
  return rest[0];
}

interface Client {
  base: string;
  request(path: string, init?: RequestInit): Promise<Response>;
}

function createClient(values: Values, anonymous = false): Client {
  const stored = readLogin();
  const base = String(values.url ?? stored?.url ?? DEFAULT_URL).replace(/\/+$/, "");
  let parsed: URL;
  try {
    parsed = new URL(base);
  } catch {
    throw new UsageError(`--url "${base}" is not a URL (e.g. ${DEFAULT_URL})`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new UsageError(`--url "${base}" must start with http:// or https://`);
  }
  // The stored token belongs to the stored URL only: never sent to another server.
  const storedToken = stored?.url.replace(/\/+$/, "") === base ? stored.token : undefined;
  const auth = anonymous
    ? undefined
    : values.token
    ? `Bearer ${values.token}`
    : values.user
    ? `Basic ${btoa(String(values.user))}`
    : storedToken
    ? `Bearer ${storedToken}`
    : undefined;
  return {
    base,
    async request(path, init = {}) {
      const headers = new Headers(init.headers);
      if (auth && !headers.has("authorization")) headers.set("authorization", auth);
      let res: Response;
      try {
        res = await fetch(base + path, { ...init, headers });
      } catch (e) {
        throw new CliError(unreachable(base, e), EXIT.unreachable);
      }
      // Every answer of F2S's own routes is JSON (or YAML when asked) with a request id;
      // anything else (an HTML page, another server) is not an F2S control plane.
      const type = res.headers.get("content-type") ?? "";
      const own = path.startsWith("/invoke/")
        ? res.ok || res.headers.has(REQUEST_ID_HEADER)
        : /json|yaml/.test(type) || res.status === 204;
      if (!own) {
        await res.body?.cancel();
        throw new CliError(
          `${base} does not look like an F2S control plane (${
            init.method ?? "GET"
          } ${path} answered ${res.status} ${
            type || "without a content-type"
          }); check --url or F2S_URL`,
          EXIT.unreachable,
        );
      }
      return res;
    },
  };
}

/** Why the control plane could not be reached, in one line, with what to check. */
function unreachable(base: string, e: unknown): string {
  // Deno's fetch says "fetch failed"; what happened is in its cause.
  const cause = (e as Error)?.cause;
  const text = `${(e as Error)?.message ?? e} ${cause instanceof Error ? cause.message : ""}`;
  const why = /refused/i.test(text)
    ? "connection refused: is f2s running there?"
    : /dns|lookup|resolve|name or service/i.test(text)
    ? "the host name does not resolve"
    : /certificate|tls|ssl/i.test(text)
    ? "TLS failed (certificate?)"
    : /timed? ?out/i.test(text)
    ? "the connection timed out"
    : text.split("\n")[0];
  return `cannot reach the control plane at ${base} (${why}); check --url or F2S_URL`;
}

class CliError extends Error {
  constructor(message: string, readonly code: number = EXIT.failed) {
    super(message);
  }
}

/**
 * `login`: signs in with a basic user's name and password (POST /auth/signin, token mode)
 * and stores the URL and the token for the next commands.
 */
async function login(client: Client, values: Values): Promise<number> {
  const user = values.user as string | undefined;
  if (!user) throw new UsageError("login needs --user NAME (the password is read from stdin)");
  let [username, password] = user.includes(":")
    ? [user.slice(0, user.indexOf(":")), user.slice(user.indexOf(":") + 1)]
    : [user, undefined];
  if (password === undefined) {
    if (Deno.stdin.isTerminal()) password = prompt("Password:") ?? "";
    else password = (await new Response(Deno.stdin.readable).text()).replace(/\r?\n$/, "");
  }
  const res = await client.request("/auth/signin", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username, password }),
  });
  if (!res.ok) return failure(res);
  const body = await res.json() as { token?: string; expiresAt?: string; user?: { name: string } };
  if (typeof body.token !== "string") {
    throw new CliError(`${client.base} answered the sign-in without a token`, EXIT.unreachable);
  }
  const file = await writeLogin({
    url: client.base,
    token: body.token,
    user: body.user?.name ?? username,
    expiresAt: body.expiresAt,
  });
  console.log(
    `signed in to ${client.base} as ${body.user?.name ?? username}${
      body.expiresAt ? ` until ${body.expiresAt}` : ""
    } (stored in ${file})`,
  );
  return 0;
}

async function failure(res: Response): Promise<number> {
  const text = await res.text();
  let message = text;
  try {
    const body = JSON.parse(text);
    message = body.error ?? text;
    if (Array.isArray(body.details)) {
      message += body.details.map((d: { path?: string; message?: string }) =>
        d.path ? `\n  - ${d.path}: ${d.message}` : ""
      ).join("");
    }
  } catch {
    // not JSON: show as is
  }
  if (res.status === 401) {
    message += " (sign in with f2s fn login --user NAME, or pass --user or --token)";
  }
  console.error(`error (${res.status}): ${message}`);
  return EXIT.failed;
}

async function list(client: Client, values: Values): Promise<number> {
  const res = await client.request("/functions");
  if (!res.ok) return failure(res);
  const items = await res.json() as FunctionView[];
  if (values.output === "json") console.log(JSON.stringify(items, null, 2));
  else {
    const rows = [["NAME", "ENDPOINT", "METHOD", "READY", "IMAGE"]];
    for (const f of items) {
      rows.push([
        f.metadata.name,
        f.spec.endpoint,
        f.spec.method,
        `${f.status?.readyReplicas ?? 0}/${f.status?.desiredReplicas ?? 0}`,
        f.target.containerImage,
      ]);
    }
    printTable(rows);
  }
  return 0;
}

interface FunctionView {
  metadata: { name: string };
  spec: { endpoint: string; method: string };
  target: { containerImage: string; minReplicas: number };
  status?: {
    readyReplicas: number;
    desiredReplicas: number;
    conditions?: { type: string; status: string; reason: string; message: string }[];
  };
}

/** Ready=False reasons of normal life; any other one means the function cannot start. */
const NORMAL_REASONS = new Set(["Starting", "ScaledToZero"]);

function printTable(rows: string[][]) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd());
}

async function get(client: Client, name: string, values: Values): Promise<number> {
  const res = await client.request(`/functions/${encodeURIComponent(name)}`);
  if (!res.ok) return failure(res);
  const body = await res.json();
  if (values.output === "yaml" || values.output === "table") {
    const { stringify } = await import("yaml");
    console.log(stringify(body).trimEnd());
  } else console.log(JSON.stringify(body, null, 2));
  return 0;
}

async function apply(client: Client, values: Values): Promise<number> {
  const file = values.file as string | undefined;
  if (!file) throw new UsageError("apply needs -f FILE");
  let text: string;
  try {
    text = file === "-"
      ? await new Response(Deno.stdin.readable).text()
      : await Deno.readTextFile(file);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message;
    throw new CliError(`cannot read ${file}: ${why}`, EXIT.file);
  }
  const parsed = parseAllDocuments(text);
  const broken = parsed.find((d) => d.errors.length > 0);
  if (broken) {
    throw new CliError(
      `${file} is not valid YAML: ${broken.errors[0].message.split("\n")[0]}`,
      EXIT.file,
    );
  }
  const docs = parsed.map((d) => d.toJS()).filter((d) => d && d.kind === "Function");
  if (docs.length === 0) throw new CliError(`${file} contains no Function manifest`, EXIT.file);
  const wait = Number(values.wait);
  let status = 0;
  for (const doc of docs) {
    const name = doc?.metadata?.name;
    const exists = typeof name === "string" &&
      (await client.request(`/functions/${encodeURIComponent(name)}`).then((r) => {
        r.body?.cancel();
        return r.ok;
      }));
    const res = await client.request(
      exists ? `/functions/${encodeURIComponent(name)}` : "/functions",
      {
        method: exists ? "PUT" : "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(doc),
      },
    );
    if (!res.ok) {
      status = await failure(res);
      continue;
    }
    const fn = await res.json() as FunctionView & { warnings?: string[] };
    // Like kubectl: the server's warnings (e.g. unknown fields it ignored) go to stderr.
    for (const w of fn.warnings ?? []) console.error(`Warning: ${fn.metadata.name}: ${w}`);
    console.log(`function/${fn.metadata.name} ${exists ? "configured" : "created"}`);
    if (wait > 0 && fn.target.minReplicas > 0) {
      status ||= await waitReady(client, fn.metadata.name, wait);
    }
  }
  return status;
}

/** Shows a progress line until the function has its minimum of ready instances. */
async function waitReady(client: Client, name: string, seconds: number): Promise<number> {
  const deadline = Date.now() + seconds * 1000;
  const encoder = new TextEncoder();
  const tty = Deno.stdout.isTerminal();
  while (Date.now() < deadline) {
    const res = await client.request(`/functions/${encodeURIComponent(name)}`);
    if (res.ok) {
      const fn = await res.json() as FunctionView;
      const ready = fn.status?.readyReplicas ?? 0;
      const want = Math.max(1, fn.target.minReplicas);
      const line = `waiting for ${name}: ${ready}/${want} ready`;
      if (tty) Deno.stdout.writeSync(encoder.encode(`\r${line}`));
      if (ready >= want) {
        console.log(
          tty ? `\r${name} is ready (${ready}/${want})` : `${name} is ready (${ready}/${want})`,
        );
        return 0;
      }
      // Waiting would not help: say why at once (the control plane keeps retrying).
      const failed = fn.status?.conditions?.find((c) =>
        c.type === "Ready" && c.status === "False" && !NORMAL_REASONS.has(c.reason)
      );
      if (failed && ready === 0) {
        console.error(
          `${tty ? "\n" : ""}${name} cannot start: ${failed.reason}: ${failed.message}`,
        );
        return EXIT.failed;
      }
    } else await res.body?.cancel();
    await new Promise((r) => setTimeout(r, 250));
  }
  console.error(
    `\n${name} was not ready within ${seconds}s (see f2s fn get ${name} and GET /events)`,
  );
  return 1;
}

async function del(client: Client, name: string): Promise<number> {
  const res = await client.request(`/functions/${encodeURIComponent(name)}`, { method: "DELETE" });
  if (!res.ok) return failure(res);
  await res.body?.cancel();
  console.log(`function/${name} deleted`);
  return 0;
}

async function invoke(client: Client, endpoint: string, values: Values): Promise<number> {
  let body: BodyInit | undefined;
  const data = values.data as string | undefined;
  if (data !== undefined) body = data.startsWith("@") ? await Deno.readFile(data.slice(1)) : data;
  const headers = new Headers();
  for (const h of (values.header as string[] | undefined) ?? []) {
    const i = h.indexOf(":");
    if (i <= 0) throw new UsageError(`header "${h}" must look like "Name: value"`);
    headers.set(h.slice(0, i).trim(), h.slice(i + 1).trim());
  }
  if (body !== undefined && !headers.has("content-type")) {
    headers.set("content-type", looksJson(data!) ? "application/json" : "text/plain");
  }
  const method = (values.method as string | undefined) ?? (body !== undefined ? "POST" : "GET");
  const path = endpoint.startsWith("/") ? endpoint : `/${endpoint}`;
  if (values.callback) headers.set("x-callback-url", String(values.callback));
  const prefix = values.async ? "/async/invoke" : "/invoke";
  const res = await client.request(`${prefix}${path}`, { method, headers, body });
  const out = new Uint8Array(await res.arrayBuffer());
  if (!res.ok) {
    console.error(`error (${res.status}): ${new TextDecoder().decode(out)}`);
    return 1;
  }
  await Deno.stdout.write(out);
  if (out.length > 0 && out[out.length - 1] !== 10 && Deno.stdout.isTerminal()) console.log();
  return 0;
}

function looksJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}
