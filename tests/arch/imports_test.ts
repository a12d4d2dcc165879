/**
 * The import graph's shape, checked from `deno info --json` (like Knative's nodeps_test.go):
 * dependencies flow one way, `common/` ← `fizzlet/`, `common/` ← `dispatcher/` ← `control/`,
 * and no two folders import each other, directly or round a longer loop. A folder and the
 * folders inside it (control/ and control/kube/) count as one part and are not compared.
 * Entry points: main.ts and every bench/*.ts (bench/main.ts loads its commands dynamically).
 */

import { assertEquals } from "../harness/assert.ts";

const ROOT = new URL("../../", import.meta.url);
const DENO = new URL("node_modules/.bin/deno", ROOT).pathname;

/** Which top-level folders each product folder may import (anything else is a violation). */
const ALLOWED: Record<string, string[]> = {
  common: [],
  fizzlet: ["common"],
  dispatcher: ["common"],
  // docs/openapi.json is served by the API.
  control: ["common", "dispatcher", "docs"],
};

/** One import between two repository files (paths relative to the repository). */
export interface Edge {
  from: string;
  to: string;
}

interface InfoModule {
  specifier: string;
  dependencies?: { code?: { specifier: string }; type?: { specifier: string } }[];
}

async function importsOf(entry: string): Promise<Edge[]> {
  const out = await new Deno.Command(DENO, {
    args: ["info", "--json", entry],
    cwd: ROOT.pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`deno info ${entry} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as { modules: InfoModule[] };
  const local = (s: string | undefined) =>
    s?.startsWith(ROOT.href) ? s.slice(ROOT.href.length) : "";
  const edges: Edge[] = [];
  for (const m of info.modules) {
    const from = local(m.specifier);
    if (!from) continue;
    for (const dep of m.dependencies ?? []) {
      for (const to of [local(dep.code?.specifier), local(dep.type?.specifier)]) {
        if (to) edges.push({ from, to });
      }
    }
  }
  return edges;
}

const folderOf = (path: string) => path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : ".";
const areaOf = (path: string) => path.includes("/") ? path.slice(0, path.indexOf("/")) : ".";
const nested = (a: string, b: string) => a === b || a.startsWith(b + "/") || b.startsWith(a + "/");
const show = (e: Edge) => `${e.from} → ${e.to}`;

/** Imports from a product folder into a folder it may not use. */
export function againstDirection(edges: Edge[]): string[] {
  return edges.filter((e) => {
    const allowed = ALLOWED[areaOf(e.from)];
    const to = areaOf(e.to);
    return allowed !== undefined && to !== areaOf(e.from) && !allowed.includes(to);
  }).map(show);
}

/** Folder loops (strongly connected folders), each with the imports that close it. */
export function folderCycles(edges: Edge[]): string[][] {
  const graph = new Map<string, Map<string, Edge>>();
  for (const e of edges) {
    const [a, b] = [folderOf(e.from), folderOf(e.to)];
    if (nested(a, b)) continue;
    if (!graph.has(a)) graph.set(a, new Map());
    if (!graph.get(a)!.has(b)) graph.get(a)!.set(b, e);
  }
  // Tarjan's strongly connected components.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const cycles: string[][] = [];
  const visit = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    for (const w of graph.get(v)?.keys() ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (stack.includes(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const part: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      part.push(w);
    } while (w !== v);
    if (part.length < 2) return;
    cycles.push(
      part.flatMap((a) =>
        [...graph.get(a)!].filter(([b]) => part.includes(b)).map(([, e]) => show(e))
      ).sort(),
    );
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return cycles;
}

async function allImports(): Promise<Edge[]> {
  const entries = ["main.ts"];
  for await (const f of Deno.readDir(new URL("bench/", ROOT))) {
    if (f.isFile && f.name.endsWith(".ts")) entries.push(`bench/${f.name}`);
  }
  const all = (await Promise.all(entries.map(importsOf))).flat();
  return [...new Map(all.map((e) => [show(e), e])).values()];
}

Deno.test("imports: common ← fizzlet, common ← dispatcher ← control, nothing against it", async () => {
  const edges = await allImports();
  // The graph really was read: the control plane uses the dispatcher.
  assertEquals(
    edges.some((e) => e.from === "control/platform.ts" && e.to.startsWith("dispatcher/")),
    true,
  );
  assertEquals(againstDirection(edges), []);
});

Deno.test("imports: no two folders import each other, directly or round a loop", async () => {
  assertEquals(folderCycles(await allImports()), []);
});

Deno.test("imports: the checks catch what they are meant to", () => {
  const edges: Edge[] = [
    { from: "dispatcher/dispatcher.ts", to: "control/config.ts" },
    { from: "common/log.ts", to: "fizzlet/server.ts" },
    { from: "control/platform.ts", to: "dispatcher/dispatcher.ts" },
    { from: "control/auth/auth.ts", to: "control/api/gate.ts" },
    { from: "control/api/gate.ts", to: "control/store/x.ts" },
    { from: "control/store/x.ts", to: "control/auth/privileges.ts" },
    { from: "control/runtime/kube.ts", to: "control/events.ts" },
    { from: "control/cli/serve.ts", to: "control/runtime/kube.ts" },
  ];
  assertEquals(againstDirection(edges), [
    "dispatcher/dispatcher.ts → control/config.ts",
    "common/log.ts → fizzlet/server.ts",
  ]);
  const cycles = folderCycles(edges);
  assertEquals(cycles.length, 2);
  assertEquals(
    cycles.find((c) => c.length === 3),
    [
      "control/api/gate.ts → control/store/x.ts",
      "control/auth/auth.ts → control/api/gate.ts",
      "control/store/x.ts → control/auth/privileges.ts",
    ],
  );
});
