/**
 * Shared set-up of the async tests: a temp folder with the recorder function, manifests,
 * a config with the queue file inside the folder, and readers of what the app recorded.
 */

import { type ControlPlane, processesMatching, startDev, waitFor } from "../harness/dev.ts";
import { copy } from "../harness/files.ts";
import { killGroup } from "../../fizzlet/command.ts";

const FIXTURES = new URL("./fixtures/", import.meta.url).pathname;

export interface Fn {
  name: string;
  maxReplicas?: number;
  minReplicas?: number;
  async?: { maxRetries?: number; maxConcurrency?: number };
  schedule?: string;
  endpoint?: string;
}

export interface Setup {
  dir: string;
  record: string;
  config: string;
}

export async function setup(fns: Fn[], configExtra = ""): Promise<Setup> {
  const dir = await Deno.makeTempDir({ prefix: "f2s-async-test-" });
  await copy(`${FIXTURES}recorder`, `${dir}/recorder`);
  const record = `${dir}/record.log`;
  await Deno.writeTextFile(record, "");
  for (const f of fns) {
    const m = {
      apiVersion: "f2s.opensight.ch/v1alpha1",
      kind: "Function",
      metadata: { name: f.name, namespace: "f2s" },
      spec: {
        endpoint: f.endpoint ?? `/${f.name}`,
        method: "ANY",
        ...(f.async ? { async: f.async } : {}),
        ...(f.schedule ? { schedule: f.schedule } : {}),
      },
      target: {
        containerImage: `f2s-tests/${f.name}:latest`,
        minReplicas: f.minReplicas ?? 1,
        maxReplicas: f.maxReplicas ?? 1,
        env: { RECORD_FILE: record },
        local: { dir: "./recorder", command: "node server.js" },
      },
    };
    await Deno.writeTextFile(`${dir}/${f.name}.yaml`, JSON.stringify(m));
  }
  const config = `f2s:
  async:
    path: ${dir}/queue/async.db
    retry_backoff: 100ms
    retry_backoff_max: 1s
${configExtra}`;
  return { dir, record, config };
}

/** Basic auth with an admin (settings:view) and two callers allowed to invoke "orders". */
export const ORDERS_AUTH = `  auth:
    global_config: { type: basic }
    basic:
      - { username: admin, password: admin-pass, group: admins }
      - { username: olga, password: olga-pass, group: orders }
      - { username: otto, password: otto-pass, group: orders }
    authorization:
      - { group: admins, privileges: [functions:invoke, settings:view] }
      - { group: orders, privileges: ["functions:invoke:orders"] }
`;

export const basicAuth = (user: string, password: string) => ({
  authorization: `Basic ${btoa(`${user}:${password}`)}`,
});

export function start(s: Setup, env?: Record<string, string>): Promise<ControlPlane> {
  return startDev({ functionsDir: s.dir, config: s.config, timeoutMs: 60_000, env });
}

export interface Recorded {
  id: string;
  path: string;
  tick: string;
  at: number;
  /** X-F2S-Attempt as the app got it, "-" for none. */
  attempt: string;
}

export async function records(s: Setup): Promise<Recorded[]> {
  const text = await Deno.readTextFile(s.record);
  return text.split("\n").filter(Boolean).map((line) => {
    const [id, path, tick, at, attempt] = line.split(" ");
    return { id, path, tick, at: Number(at), attempt };
  });
}

/** How many times each id reached the app. */
export function countById(rs: Recorded[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of rs) m.set(r.id, (m.get(r.id) ?? 0) + 1);
  return m;
}

/** Submits one async call; returns the call id (asserting the 202 and its headers). */
export async function submit(
  url: string,
  path: string,
  init: RequestInit = { method: "POST", body: "{}" },
): Promise<string> {
  const res = await fetch(`${url}/async/invoke${path}`, init);
  const text = await res.text();
  if (res.status !== 202) throw new Error(`expected 202, got ${res.status}: ${text}`);
  const id = res.headers.get("x-call-id");
  if (!id || res.headers.get("location") !== `/calls/${id}`) {
    throw new Error(`202 without X-Call-Id/Location: ${[...res.headers]}`);
  }
  return id;
}

export async function getCall(url: string, id: string) {
  const res = await fetch(`${url}/calls/${id}`);
  const body = await res.json();
  if (res.status !== 200) {
    throw new Error(`GET /calls/${id}: ${res.status} ${JSON.stringify(body)}`);
  }
  return body;
}

/** Waits until the function's queue has nothing queued or running; returns the counts. */
export async function settled(url: string, fn: string, expected: number, timeoutMs = 120_000) {
  let counts: Record<string, number> = {};
  await waitFor(
    `${expected} finished calls of ${fn}`,
    async () => {
      const res = await fetch(`${url}/functions/${fn}/calls?limit=1`);
      counts = (await res.json()).counts;
      const done = counts.succeeded + counts.failed + counts["dead-lettered"];
      return counts.queued === 0 && counts.running === 0 && done >= expected;
    },
    timeoutMs,
    200,
  );
  return counts;
}

/** Stops the control plane and kills anything left of the test's instances. */
export async function cleanup(s: Setup, server?: ControlPlane) {
  if (server) await server.stop();
  killLeftovers(s);
  await waitFor(
    "no processes left in " + s.dir,
    () => processesMatching(s.dir).length === 0,
    20_000,
  );
  await Deno.remove(s.dir, { recursive: true });
}

/**
 * Instances orphaned by a kill -9 of f2s dev (they run in their own session), sparing the
 * control planes in `keep` and their descendants.
 */
export function killLeftovers(s: Setup, keep: number[] = []) {
  for (const pid of processesMatching(s.dir)) {
    if (!descendsFrom(pid, keep)) killGroup(pid);
  }
}

function descendsFrom(pid: number, ancestors: number[]): boolean {
  for (let p = pid, hops = 0; p > 1 && hops < 50; hops++) {
    if (ancestors.includes(p)) return true;
    try {
      const stat = Deno.readTextFileSync(`/proc/${p}/stat`);
      p = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    } catch {
      return false;
    }
  }
  return false;
}
