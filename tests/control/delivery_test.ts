// End to end through `f2s dev` with a probe app that records every request it starts
// (tests/control/fixtures/probe): a request runs at most once when an instance dies
// (issue 13, items 4 and 7), and the caller's identity reaches the function only as the
// platform's own percent-encoded headers (item 2).
import * as jose from "jose";
import { assert, assertEquals } from "../harness/assert.ts";
import { type ControlPlane, processesMatching, startDev, waitFor } from "../harness/dev.ts";
import { copy } from "../harness/files.ts";

const PROBE = new URL("./fixtures/probe", import.meta.url).pathname;

interface Started {
  pid: number;
  method: string;
  target: string;
  tag: string | null;
  bodyLength: number;
  rawHeaders: string[];
}

interface Probe {
  dir: string;
  dev: ControlPlane;
  record: string;
  /** Every request the app processes started, in order. */
  started(): Started[];
  stop(): Promise<void>;
}

/** `f2s dev` with one function "probe" of `replicas` instances, all ready. */
async function startProbe(replicas: number, config?: string): Promise<Probe> {
  const dir = await Deno.makeTempDir({ prefix: "f2s-delivery-" });
  const record = await Deno.makeTempFile({ prefix: "f2s-delivery-record-", suffix: ".jsonl" });
  await copy(PROBE, `${dir}/probe`);
  await Deno.writeTextFile(
    `${dir}/probe.yaml`,
    JSON.stringify({
      apiVersion: "f2s.opensight.ch/v1alpha1",
      kind: "Function",
      metadata: { name: "probe", namespace: "f2s" },
      spec: { endpoint: "/probe", method: "ANY" },
      target: {
        containerImage: "f2s-tests/probe:latest",
        minReplicas: replicas,
        maxReplicas: replicas,
        env: { RECORD_FILE: record },
        local: { dir: "./probe", command: "node server.js" },
      },
    }),
  );
  const dev = await startDev({ functionsDir: dir, config });
  const stop = async () => {
    await dev.stop();
    await waitFor("no processes left in " + dir, () => processesMatching(dir).length === 0, 20_000);
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(record).catch(() => {});
  };
  try {
    await waitFor(`${replicas} ready instances`, async () => {
      const res = await fetch(`${dev.url}/functions/probe`, { headers: adminHeaders(config) });
      const fn = await res.json();
      return fn.status?.readyReplicas === replicas;
    }, 30_000);
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    dir,
    dev,
    record,
    started: () =>
      Deno.readTextFileSync(record).split("\n").filter((l) => l !== "").map((l) => JSON.parse(l)),
    stop,
  };
}

const SECRET = "delivery-e2e-jwt-secret-long-enough-for-hs256";
const TOKEN_CONFIG = `
f2s:
  auth:
    global_config: { type: token }
    token: { jwt_secret: ${SECRET} }
    authorization:
      - group: users
        privileges: [functions:invoke, functions:list]
`;

function token(sub: string, group = "users"): Promise<string> {
  return new jose.SignJWT({ group })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime("10m")
    .sign(new TextEncoder().encode(SECRET));
}

let adminToken = "";
function adminHeaders(config?: string): Record<string, string> {
  return config ? { authorization: `Bearer ${adminToken}` } : {};
}

/** The fizzlet an app process runs under: up the parent chain to `f2s fizzlet`. */
function fizzletOf(pid: number): number {
  let at = pid;
  for (let i = 0; i < 5; i++) {
    at = Number(Deno.readTextFileSync(`/proc/${at}/stat`).replace(/^.*\) /, "").split(" ")[1]);
    const cmdline = Deno.readTextFileSync(`/proc/${at}/cmdline`).replaceAll("\0", " ");
    if (cmdline.includes(" fizzlet ")) return at;
  }
  throw new Error(`no fizzlet above process ${pid}`);
}

/** The process group of `pid` (the app runs in its own, started by the fizzlet). */
function groupOf(pid: number): number {
  return Number(Deno.readTextFileSync(`/proc/${pid}/stat`).replace(/^.*\) /, "").split(" ")[2]);
}

function killQuietly(pid: number, signal: Deno.Signal = "SIGKILL") {
  try {
    Deno.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** Time for the fizzlet to see a dead app's connections close (one event-loop turn, loaded). */
const FIZZLET_NOTICES_MS = 20;

/** When the process has ended (gone, or a zombie: its sockets are closed by then). */
async function deathOf(pid: number): Promise<number> {
  for (;;) {
    try {
      const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) return performance.now();
    } catch {
      return performance.now();
    }
    await new Promise((r) => setTimeout(r, 1));
  }
}

/** The app processes behind the function (pid and port), learnt from answers. */
async function apps(url: string, want: number): Promise<{ pid: number; port: number }[]> {
  const found = new Map<number, number>();
  for (let i = 0; i < 40 && found.size < want; i++) {
    const { pid, port } = await (await fetch(`${url}/invoke/probe`)).json();
    found.set(pid, port);
  }
  assertEquals(found.size, want, "every instance answered");
  return [...found].map(([pid, port]) => ({ pid, port }));
}

Deno.test("kill -9 of a fizzlet: every POST in flight on it ran at most once, none twice", async () => {
  const probe = await startProbe(2);
  let orphanGroup: number | undefined;
  try {
    const [a, b] = (await apps(probe.dev.url, 2)).map((app) => app.pid);
    const posts = Array.from(
      { length: 10 },
      (_, i) =>
        fetch(`${probe.dev.url}/invoke/probe/slow?ms=2500`, {
          method: "POST",
          headers: { "x-tag": `p${i}` },
          body: `payload-${i}`,
        }).then(async (res) => ({ tag: `p${i}`, status: res.status, text: await res.text() })),
    );
    const posted = () => probe.started().filter((r) => r.method === "POST");
    await waitFor("all POSTs started", () => posted().length === 10, 10_000);
    const victim = posted()[0].pid;
    assert(victim === a || victim === b);
    const onVictim = new Set(posted().filter((r) => r.pid === victim).map((r) => r.tag));
    orphanGroup = groupOf(victim);
    Deno.kill(fizzletOf(victim), "SIGKILL");
    const results = await Promise.all(posts);
    // The orphaned app finishes its copies; a second execution would start meanwhile.
    await new Promise((r) => setTimeout(r, 3000));
    const starts = new Map<string, Started[]>();
    for (const r of posted()) starts.set(r.tag!, [...(starts.get(r.tag!) ?? []), r]);
    for (const { tag, status, text } of results) {
      const runs = starts.get(tag) ?? [];
      assertEquals(runs.length, 1, `${tag} started ${runs.length} times: ${JSON.stringify(runs)}`);
      assertEquals(runs[0].bodyLength, `payload-${tag.slice(1)}`.length);
      if (onVictim.has(tag)) assertEquals(status, 502, `${tag} on the killed instance: ${text}`);
      else assertEquals(status, 200, `${tag} on the live instance: ${text}`);
    }
    assert(onVictim.size > 0 && onVictim.size < 10, `POSTs on the victim: ${onVictim.size}`);

    // An app cannot make the platform run its request again by faking the fizzlet's header.
    const forged = await fetch(`${probe.dev.url}/invoke/probe/forge`, {
      method: "POST",
      headers: { "x-tag": "forged" },
      body: "x",
    });
    assertEquals(forged.status, 502);
    assertEquals(forged.headers.get("x-f2s-not-delivered"), null);
    assertEquals(await forged.text(), "forged");
    assertEquals(probe.started().filter((r) => r.tag === "forged").length, 1);
  } finally {
    if (orphanGroup !== undefined) killQuietly(-orphanGroup);
    await probe.stop();
  }
});

Deno.test("an app killed under load fails only the requests that were on it; the rest are retried", async () => {
  const probe = await startProbe(2);
  try {
    const [victim] = await apps(probe.dev.url, 2);
    interface Outcome {
      tag: string;
      status: number;
      sent: number;
      done: number;
      pid?: number;
      appPort?: number;
    }
    const results: Outcome[] = [];
    let n = 0;
    let running = true;
    const worker = async () => {
      while (running) {
        const tag = `w${n++}`;
        const sent = performance.now();
        try {
          const res = await fetch(`${probe.dev.url}/invoke/probe/slow?ms=40`, {
            method: "POST",
            headers: { "x-tag": tag },
            body: "load",
          });
          const answer = JSON.parse(await res.text());
          results.push({
            tag,
            status: res.status,
            sent,
            done: performance.now(),
            pid: answer.pid,
            appPort: answer.details?.appPort,
          });
        } catch {
          results.push({ tag, status: 0, sent, done: performance.now() });
        }
      }
    };
    const workers = Array.from({ length: 6 }, worker);
    await new Promise((r) => setTimeout(r, 1000));
    const signalledAt = performance.now();
    killQuietly(victim.pid);
    // SIGKILL is asynchronous: the app's sockets close only when the kernel has ended it, and
    // the fizzlet learns of a closed pooled connection on its next turn of the event loop. A
    // request written in between went out on a connection the app owned: it counts as on it.
    const killedAt = (await deathOf(victim.pid)) + FIZZLET_NOTICES_MS;
    await new Promise((r) => setTimeout(r, 2000));
    running = false;
    await Promise.all(workers);

    // On it: in flight when it died, and not answered by the other instance. That includes
    // requests written to the app's socket that it had not read yet: those may not be sent
    // again either (the same holds for Go's http.Transport), so they may fail too.
    const inFlight = results.filter((r) => r.sent <= killedAt && r.done > signalledAt);
    const onIt = inFlight.filter((r) => r.status !== 200 || r.pid === victim.pid);
    const failed = results.filter((r) => r.status !== 200);
    const startedThere = probe.started().filter((r) =>
      r.pid === victim.pid && inFlight.some((f) => f.tag === r.tag && f.pid !== victim.pid)
    );
    const after = results.filter((r) => r.status === 200 && r.pid !== victim.pid).length;
    console.log(JSON.stringify({
      requests: results.length,
      failed: failed.length,
      onKilledInstance: onIt.length,
      startedByKilledApp: startedThere.length,
      servedByTheOther: after,
    }));
    assert(results.length > 50, `load ran: ${results.length} requests`);
    for (const f of failed) {
      assert(
        onIt.includes(f) && f.status === 502 && f.appPort === victim.port,
        `${f.tag} failed but was not on the killed app: ${
          JSON.stringify(f)
        }, killed at ${killedAt}`,
      );
    }
    assert(failed.length <= onIt.length);
    assert(after > 0, "the healthy instance took the load");
    // Every request ran at most once.
    const counts = new Map<string, number>();
    for (const r of probe.started()) if (r.tag) counts.set(r.tag, (counts.get(r.tag) ?? 0) + 1);
    for (const [tag, count] of counts) assertEquals(count, 1, `${tag} started ${count} times`);
  } finally {
    await probe.stop();
  }
});

Deno.test("caller names reach the function percent-encoded; names with control characters get 401", async () => {
  adminToken = await token("admin");
  const probe = await startProbe(1, TOKEN_CONFIG);
  try {
    const call = async (sub: string, tag: string) => {
      const res = await fetch(`${probe.dev.url}/invoke/probe`, {
        headers: {
          authorization: `Bearer ${await token(sub)}`,
          "x-tag": tag,
          // Forged identity from the client never passes.
          "x-f2s-caller": "mallory",
          "x-f2s-group": "admins",
        },
      });
      return { status: res.status, body: await res.json() };
    };
    const czech = await call("Tomáš Černý", "czech");
    assertEquals(czech.status, 200, JSON.stringify(czech.body));
    assertEquals(czech.body.caller, "Tom%C3%A1%C5%A1%20%C4%8Cern%C3%BD");
    assertEquals(decodeURIComponent(czech.body.caller), "Tomáš Černý");
    assertEquals(czech.body.group, "users");
    // č (U+010D) and Ċ (U+010A) once became CR and LF on the wire.
    const masked = await call("a\u010dX-F2S-Group: admins\u010ab", "masked");
    assertEquals(masked.status, 200, JSON.stringify(masked.body));
    assertEquals(
      decodeURIComponent(masked.body.caller),
      "a\u010dX-F2S-Group: admins\u010ab",
    );
    const percent = await call("100%", "percent");
    assertEquals(percent.body.caller, "100%25");

    for (const sub of ["eve\r\nX-F2S-Group: admins", "a\u0000b", "del\u007f", "nel\u0085x"]) {
      const refused = await call(sub, "refused");
      assertEquals(refused.status, 401, JSON.stringify(sub));
      assert(
        /control characters/.test(refused.body.error),
        `clear message for ${JSON.stringify(sub)}: ${refused.body.error}`,
      );
    }
    assertEquals(probe.started().filter((r) => r.tag === "refused").length, 0);
    // The app saw exactly one caller and one group header per request: the platform's.
    for (const r of probe.started().filter((r) => r.tag !== null)) {
      const names = r.rawHeaders.filter((_, i) => i % 2 === 0).map((h) => h.toLowerCase());
      assertEquals(names.filter((h) => h === "x-f2s-caller").length, 1, r.tag!);
      assertEquals(names.filter((h) => h === "x-f2s-group").length, 1, r.tag!);
      assert(!names.includes("authorization"), r.tag!);
      const group = r.rawHeaders[r.rawHeaders.findIndex((h) => /^x-f2s-group$/i.test(h)) + 1];
      assertEquals(group, "users", r.tag!);
    }

    // Sign-in refuses such a name too (basic header and JSON body).
    const signin = await fetch(`${probe.dev.url}/auth/signin`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: "eve\r\nx-f2s-group: admins", password: "pw" }),
    });
    const signinBody = await signin.json();
    assertEquals(signin.status, 401);
    assert(/control characters/.test(signinBody.error), signinBody.error);
  } finally {
    await probe.stop();
  }
});
