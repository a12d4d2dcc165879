/**
 * Helpers for the autoscaler's end-to-end tests through `f2s dev`: a functions folder with
 * the sleeper fixture, manifests, and reading decisions and instance counts back from the
 * control plane's own `/events` and `/metrics`.
 */

import { processesMatching, waitFor } from "../harness/dev.ts";
import { copy } from "../harness/files.ts";
import { testFunction } from "../harness/manifest.ts";

const FIXTURES = new URL("./fixtures/", import.meta.url).pathname;

/** A temp folder with the sleeper function and one manifest per entry. */
export async function functionsDir(manifests: Record<string, unknown>[]): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "f2s-autoscale-test-" });
  await copy(`${FIXTURES}sleeper`, `${dir}/sleeper`);
  for (const m of manifests) {
    const name = (m as { metadata: { name: string } }).metadata.name;
    await Deno.writeTextFile(`${dir}/${name}.yaml`, JSON.stringify(m));
  }
  return dir;
}

export function manifest(
  name: string,
  target: { minReplicas: number; maxReplicas: number; scaling?: Record<string, unknown> },
) {
  return testFunction(name, {
    ...target,
    local: { dir: "./sleeper", command: "node server.js" },
  });
}

/** config.yaml for fast scaling: every constant short so a test takes seconds. */
export function fastConfig(a: Record<string, string | number>, extra = ""): string {
  const lines = Object.entries(a).map(([k, v]) => `    ${k}: ${v}`);
  return `${extra}f2s:\n  autoscaling:\n${lines.join("\n")}\n`;
}

export interface Decision {
  time: number;
  from: number;
  to: number;
  reason: string;
  source: string;
  idleForMs: number;
  message: string;
}

export async function decisions(base: string, fn: string): Promise<Decision[]> {
  const res = await fetch(`${base}/events?type=scaling.decision&function=${fn}&limit=1000`);
  const list = await res.json() as {
    time: string;
    message: string;
    data: Record<string, unknown>;
  }[];
  return list.map((e) => ({
    time: Date.parse(e.time),
    from: e.data.from as number,
    to: e.data.to as number,
    reason: e.data.reason as string,
    source: e.data.source as string,
    idleForMs: e.data.idleForMs as number,
    message: e.message,
  }));
}

/** The value of `name{function="fn"}` on the control plane's /metrics (0 when absent). */
export async function metric(base: string, name: string, fn: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{function="${fn}"} `));
  return line ? Number(line.split(" ")[1]) : 0;
}

export const ready = (base: string, fn: string) => metric(base, "f2s_ready_instances", fn);

export async function desired(base: string, fn: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split("\n").find((l) =>
    l.startsWith(`f2s_desired_instances{function="${fn}"} `)
  );
  return line ? Number(line.split(" ")[1]) : NaN;
}

/** Waits until `read()` equals `value`, returning when it first did. */
export async function until(
  what: string,
  read: () => Promise<number>,
  value: number,
  timeoutMs: number,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last: number | undefined;
  while (Date.now() < deadline) {
    last = await read();
    if (last === value) return Date.now();
    await sleep(100);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} = ${value} (was ${last})`);
}

/** Stops the dev server and checks that none of its instances survive. */
export async function cleanup(dir: string, server?: { stop(): Promise<number> }) {
  try {
    if (server) await server.stop();
    await waitFor("no processes left in " + dir, () => processesMatching(dir).length === 0, 20_000);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
