/**
 * fizzlet/spawn.ts (posix_spawn through FFI) against Deno.Command, the reference: the same
 * programs give the same exit codes, signals, output, environment and working directory.
 * Then what only the spawner promises: its own session, the signal dispositions of a fresh
 * process, no inherited descriptors, starts refused with their errno, and every exit noticed,
 * alone or with many running. And common/proc_read.ts against Deno's
 * own read of the same /proc files.
 */

import { assert, assertEquals, assertMatch } from "../harness/assert.ts";
import { type Exit, spawner } from "../../fizzlet/spawn.ts";
import { concat } from "../../common/bytes.ts";
import { denoProcReader, procReader } from "../../common/proc_read.ts";

/** A piped child's stream, read to its end as text. */
const text = (s: ReadableStream<Uint8Array>) => new Response(s).text();

// The spawner keeps a SIGCHLD listener for the life of the process (by design).
const opts = { sanitizeOps: false, sanitizeResources: false };

async function viaSpawner(
  argv: string[],
  env: Record<string, string> = {},
  cwd = "/",
): Promise<{ exit: Exit; stdout: string; stderr: string; pid: number }> {
  const spawn = spawner();
  assert(spawn, "posix_spawn through FFI is available on this machine");
  // An empty input: its stdin is a pipe closed before the start (Deno.Command's, /dev/null).
  const child = await spawn.spawnFed(argv, env, cwd, new Uint8Array(0));
  assertEquals(child.stdin, null);
  const [exit, stdout, stderr] = await Promise.all([
    child.exited,
    text(child.stdout.stream()),
    text(child.stderr.stream()),
  ]);
  return { exit, pid: child.pid, stdout, stderr };
}

async function viaCommand(argv: string[], env: Record<string, string> = {}, cwd = "/") {
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    env,
    cwd,
    stdin: "null",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return {
    exit: { code: out.code, signal: out.signal ?? undefined },
    stdout: decode(out.stdout),
    stderr: decode(out.stderr),
  };
}

Deno.test("spawn: exit codes, signals, output, env and cwd match Deno.Command", opts, async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cases: [string[], Record<string, string>][] = [
      [["/bin/sh", "-c", "echo out; echo err >&2; exit 3"], {}],
      [["/bin/sh", "-c", 'printf "%s|%s|%s" "$A" "$HOME" "$(pwd)"'], {
        A: "x y'\"$",
        HOME: "/nowhere",
      }],
      [["/bin/sh", "-c", "kill -TERM $$"], {}],
      [["/bin/sh", "-c", "kill -KILL $$"], {}],
      [["/bin/sh", "-c", "cat; echo read-done"], {}],
      [["/bin/sh", "-c", 'printf "%s" "$PATH"'], {}],
      [["/bin/sh", "-c", 'echo ünïcödé "$1"', "sh", "ärg"], { U: "ü" }],
    ];
    for (const [argv, env] of cases) {
      const got = await viaSpawner(argv, env, dir);
      const want = await viaCommand(argv, env, dir);
      const signalNumber = { SIGTERM: 15, SIGKILL: 9 }[String(want.exit.signal)];
      assertEquals(got.exit, {
        code: want.exit.code,
        ...(signalNumber ? { signal: signalNumber } : {}),
      }, argv.join(" "));
      assertEquals(got.stdout, want.stdout, argv.join(" "));
      assertEquals(got.stderr, want.stderr, argv.join(" "));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("spawn: own session, default SIGPIPE, empty signal mask", opts, async () => {
  // Fields after the command name: state ppid pgrp session …; SigIgn/SigBlk in status. The
  // masks are read by the process that inherited them (sh execs grep): sh's own, read from
  // another process, may be caught while dash blocks every signal around its wait.
  const { stdout, pid } = await viaSpawner([
    "/bin/sh",
    "-c",
    "cat /proc/$$/stat; exec grep -E '^Sig(Ign|Blk)' /proc/self/status",
  ]);
  const stat = stdout.slice(stdout.lastIndexOf(")") + 2).split(" ");
  assertEquals(Number(stat[2]), pid, "its own process group");
  assertEquals(Number(stat[3]), pid, "its own session");
  assertMatch(stdout, /SigBlk:\s+0+\n/);
  // sh itself may ignore nothing; SIGPIPE (13, bit 12) must not be ignored as in the runtime.
  const ignored = BigInt("0x" + /SigIgn:\s+([0-9a-f]+)/.exec(stdout)![1]);
  assertEquals(ignored & (1n << 12n), 0n, "SIGPIPE not ignored");
  // And it shows: `yes` dies of SIGPIPE quietly instead of reporting a write error.
  const piped = await viaSpawner(["/bin/sh", "-c", "yes | head -c 3"]);
  assertEquals(piped.stdout, "y\ny");
  assertEquals(piped.stderr, "");
});

Deno.test(
  "spawn: the script inherits no descriptor that Deno.Command's children do not",
  opts,
  async () => {
    // Some of what the fizzlet holds open: a listening socket, a file, a connection.
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const file = await Deno.open("/proc/self/stat");
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    try {
      // Descriptors the test runner itself inherited without close-on-exec reach both.
      const list = ["/bin/sh", "-c", "ls /proc/$$/fd"];
      const fds = (s: string) => s.trim().split(/\s+/).sort();
      const got = fds((await viaSpawner(list)).stdout);
      const want = fds((await viaCommand(list)).stdout);
      assertEquals(got, want);
      assert(got.includes("0") && got.includes("1") && got.includes("2"));
    } finally {
      conn.close();
      file.close();
      listener.close();
    }
  },
);

Deno.test("spawn: refuses what it cannot start, with the errno", opts, async () => {
  const spawn = spawner()!;
  const dir = await Deno.makeTempDir();
  const none = new Uint8Array(0);
  const failure = (argv: string[], env: Record<string, string> = {}) =>
    spawn.spawnFed(argv, env, dir, none).then(() => "", (e) => (e as Error).message);
  try {
    // Executable, but neither a program nor a script with #!.
    await Deno.writeFile(`${dir}/junk`, new Uint8Array([0, 1, 2, 3, 4]), { mode: 0o755 });
    assertMatch(await failure([`${dir}/junk`]), /errno 8$/);
    assertMatch(await failure([`${dir}/none`]), /errno 2$/);
    assertMatch(await failure(["/bin/true"], { A: "a\0b" }), /NUL/);
    // None of them left a descriptor behind, and a good start still works.
    const ok = await spawn.spawnFed(["/bin/true"], {}, dir, none);
    assertEquals(await ok.exited, { code: 0 });
    ok.stdout.close();
    ok.stderr.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("spawn: every exit is noticed, alone and with 60 running at once", opts, async () => {
  const spawn = spawner()!;
  const dir = await Deno.makeTempDir();
  try {
    const run = async (i: number) => {
      const child = await spawn.spawnFed(
        ["/bin/sh", "-c", `sleep 0.0${i % 10}; exit ${i}`],
        {},
        dir,
        new Uint8Array(0),
      );
      const { code } = await child.exited;
      child.stdout.close();
      child.stderr.close();
      return code;
    };
    assertEquals(await run(0), 0);
    const codes = await Promise.all(Array.from({ length: 60 }, (_, i) => run(i + 1)));
    assertEquals(codes, Array.from({ length: 60 }, (_, i) => i + 1));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("proc_read: the libc reader reads what Deno reads", () => {
  const libc = procReader();
  const dir = Deno.makeTempDirSync();
  try {
    // Larger than the reader's first buffer, and bytes that are not UTF-8.
    const big = new Uint8Array(200_000).map((_, i) => (i * 7) % 256);
    Deno.writeFileSync(`${dir}/big`, big);
    for (const path of ["/proc/self/environ", "/proc/uptime", `${dir}/big`, "/proc/self/cmdline"]) {
      const want = path === `${dir}/big`
        ? new TextDecoder("latin1").decode(big)
        : denoProcReader(path);
      assertEquals(libc(path), want, path);
    }
    // Only the times move between two reads of stat: compare the fields before them.
    const head = (s?: string) => s?.slice(0, s.lastIndexOf(")") + 20);
    assertEquals(head(libc("/proc/self/stat")), head(denoProcReader("/proc/self/stat")));
    assertEquals(libc("/proc/999999999/stat"), undefined);
    assertEquals(denoProcReader("/proc/999999999/stat"), undefined);
    assertEquals(libc(`${dir}/none`), undefined);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test(
  "spawn: piped children stream stdin to stdout, report stderr and exit",
  opts,
  async () => {
    const spawn = spawner()!;
    // cat: 3 MiB through, in both directions at once (the pipes hold 64 KiB).
    const cat = await spawn.spawnPiped(["/bin/cat"], {}, "/");
    const big = new Uint8Array(3 * 1024 * 1024).map((_, i) => 97 + (i % 26));
    const [, got] = await Promise.all([
      ReadableStream.from([big]).pipeTo(cat.stdin),
      new Response(cat.stdout).arrayBuffer(),
      text(cat.stderr),
    ]);
    assertEquals(new Uint8Array(got), big);
    assertEquals(await cat.exited, { code: 0 });
    // Writes before reading, to both streams; exits 5 without reading the rest of its input.
    const sh = await spawn.spawnPiped(
      ["/bin/sh", "-c", 'echo first; echo oops >&2; read line; echo "got $line"; exit 5'],
      { A: "1" },
      "/",
    );
    const writer = sh.stdin.getWriter();
    await writer.write(new TextEncoder().encode("one\ntwo\n"));
    const [out, err, exit] = await Promise.all([text(sh.stdout), text(sh.stderr), sh.exited]);
    assertEquals([out, err, exit], ["first\ngot one\n", "oops\n", { code: 5 }]);
    // Its input is closed now: writing more fails (EPIPE), it does not hang.
    let failed = false;
    for (let i = 0; i < 20 && !failed; i++) {
      await writer.write(new Uint8Array(65536)).catch(() => failed = true);
    }
    assert(failed, "writes to a closed pipe fail");
  },
);

Deno.test(
  "spawn: a fed child reads its input before it starts; its output is there to read at its end",
  opts,
  async () => {
    const spawn = spawner()!;
    const encode = (t: string) => new TextEncoder().encode(t);
    const decode = (chunks: Uint8Array[]) => new TextDecoder().decode(concat(chunks));
    // Small input: all of it in the pipe and closed before the start, nothing left to pump.
    const a = await spawn.spawnFed(
      ["/bin/sh", "-c", "cat; echo err >&2; exit 3"],
      {},
      "/",
      encode("input\n"),
    );
    assertEquals([a.stdin, a.rest.length], [null, 0]);
    assertEquals(await a.exited, { code: 3 });
    const out = a.stdout.readNow();
    const err = a.stderr.readNow();
    assertEquals([decode(out.chunks), out.eof, decode(err.chunks), err.eof], [
      "input\n",
      true,
      "err\n",
      true,
    ]);
    a.stdout.close();
    a.stderr.close();
    // More than the pipe holds: the rest goes through `stdin`, and the output as a stream.
    const big = new Uint8Array(1024 * 1024).map((_, i) => 97 + (i % 26));
    const b = await spawn.spawnFed(["/bin/cat"], {}, "/", big);
    assert(b.stdin !== null && b.rest.length > 0 && b.rest.length < big.length, "partly fed");
    const [, got] = await Promise.all([
      ReadableStream.from([b.rest]).pipeTo(b.stdin!),
      new Response(b.stdout.stream()).arrayBuffer(),
      text(b.stderr.stream()),
    ]);
    assertEquals(new Uint8Array(got), big);
    assertEquals(await b.exited, { code: 0 });
    // Ended, but what it started holds stdout: not at its end yet; the stream has the rest.
    const c = await spawn.spawnFed(
      ["/bin/sh", "-c", "echo now; (sleep 0.3; echo later) &"],
      {},
      "/",
      new Uint8Array(0),
    );
    assertEquals(await c.exited, { code: 0 });
    const early = c.stdout.readNow();
    assertEquals([decode(early.chunks), early.eof], ["now\n", false]);
    assertEquals(await text(c.stdout.stream(early.chunks)), "now\nlater\n");
    await text(c.stderr.stream());
  },
);

/** The descriptors this process holds now. */
function openDescriptors(): number {
  return [...Deno.readDirSync("/proc/self/fd")].length;
}

Deno.test(
  "spawn: piped and fed runs leave no descriptor behind, however they end; a short line goes at once",
  opts,
  async () => {
    const spawn = spawner()!;
    // Pipes kept ready for the next fed child are the spawner's, not a run's: none now.
    spawn.release();
    const before = openDescriptors();
    for (let i = 0; i < 50; i++) {
      // Read to the end, closed input.
      const a = await spawn.spawnPiped(["/bin/cat"], {}, "/");
      const w = a.stdin.getWriter();
      await w.write(new TextEncoder().encode(`run ${i}\n`));
      await w.close();
      assertEquals(await text(a.stdout), `run ${i}\n`);
      await text(a.stderr);
      await a.exited;
      // Output cancelled unread, input aborted, the script killed.
      const b = await spawn.spawnPiped(["/bin/sh", "-c", "yes"], {}, "/");
      await b.stdout.cancel();
      await b.stderr.cancel();
      await b.stdin.abort();
      Deno.kill(b.pid, "SIGKILL");
      await b.exited;
      // Fed and read at its end; fed, then killed with its output never read.
      const d = await spawn.spawnFed(["/bin/cat"], {}, "/", new TextEncoder().encode("x"));
      await d.exited;
      assertEquals(d.stdout.readNow().eof, true);
      d.stdout.close();
      d.stderr.close();
      const e = await spawn.spawnFed(["/bin/sh", "-c", "sleep 5"], {}, "/", new Uint8Array(9));
      Deno.kill(e.pid, "SIGKILL");
      await e.exited;
      await e.stdout.stream().cancel();
      e.stderr.close();
    }
    // A short line reaches the script while its input stays open (nothing is held back).
    const c = await spawn.spawnPiped(["/bin/sh", "-c", 'read line; echo "got $line"'], {}, "/");
    const w = c.stdin.getWriter();
    await w.write(new TextEncoder().encode("hi\n"));
    assertEquals(await text(c.stdout), "got hi\n");
    await w.close().catch(() => {});
    await text(c.stderr);
    await c.exited;
    spawn.release();
    // node:net closes what it owns asynchronously: give it a turn.
    for (let i = 0; i < 50 && openDescriptors() > before; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assertEquals(openDescriptors(), before, "descriptors before and after 201 piped runs");
  },
);

Deno.test("signal: sendSignal reports what Deno.kill does, without throwing", opts, async () => {
  const { sendSignal } = await import("../../common/signal.ts");
  // setsid, started as a child (no group leader), makes the session in place: the shell's
  // pid is its group's id, and the sleep it starts is in that group.
  const child = new Deno.Command("setsid", {
    args: ["/bin/sh", "-c", "sleep 60 & wait"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const children = `/proc/${child.pid}/task/${child.pid}/children`;
  let sleeper = 0;
  for (let i = 0; i < 250 && !sleeper; i++) {
    await new Promise((r) => setTimeout(r, 20));
    sleeper = Number(Deno.readTextFileSync(children).trim().split(" ")[0]);
  }
  assert(sleeper > 0, "the shell started its sleep");
  assertEquals(sendSignal(-child.pid, "SIGKILL"), true, "a live group");
  assertEquals((await child.status).signal, "SIGKILL");
  // The sleep went with its group; both are gone: Deno.kill throws, sendSignal says false.
  for (let i = 0; i < 100 && sendSignal(sleeper, "SIGKILL"); i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
  let denoThrew = false;
  try {
    Deno.kill(-child.pid, "SIGKILL");
  } catch {
    denoThrew = true;
  }
  assertEquals([denoThrew, sendSignal(-child.pid, "SIGKILL")], [true, false]);
  assertEquals(sendSignal(2 ** 22 + 1, "SIGTERM"), false, "a pid beyond pid_max");
});
