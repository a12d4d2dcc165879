/**
 * fizzlet/request_files.ts: the libc implementation gives what Deno's own file API gives, for
 * the files a script may leave in place of its output (a FIFO, a link, a folder) as well.
 */

import { assert, assertEquals, assertThrows } from "../harness/assert.ts";
import { denoRequestFiles, requestFiles } from "../../fizzlet/request_files.ts";

const libc = requestFiles();

function mkfifo(path: string): void {
  const status = new Deno.Command("mkfifo", { args: [path] }).outputSync();
  assert(status.success, "mkfifo");
}

Deno.test("request_files: libc and Deno read the same outputs, and neither opens a FIFO", async () => {
  assert(libc !== denoRequestFiles, "the libc implementation loaded");
  const dir = Deno.makeTempDirSync();
  try {
    const big = new Uint8Array(300_000).map((_, i) => i % 251);
    Deno.writeFileSync(`${dir}/small`, new TextEncoder().encode('{"ok":true}\n'));
    Deno.writeFileSync(`${dir}/big`, big);
    Deno.writeFileSync(`${dir}/empty`, new Uint8Array());
    Deno.symlinkSync(`${dir}/small`, `${dir}/link`);
    mkfifo(`${dir}/fifo`); // a blocking open would hang this test
    Deno.mkdirSync(`${dir}/folder`);
    for (const name of ["small", "big", "empty", "link", "fifo", "folder", "none"]) {
      for (const limit of [0, 100, 1_000_000]) {
        assertEquals(
          libc.readOutput(`${dir}/${name}`, limit),
          denoRequestFiles.readOutput(`${dir}/${name}`, limit),
          `${name} ${limit}`,
        );
      }
    }
    assertEquals(libc.readOutput(`${dir}/big`, 1_000_000)?.bytes, big);
    // Large outputs in chunks, off the event loop: the same bytes, and nothing from a FIFO or
    // a link (neither is opened for reading).
    const chunks = async (files: typeof libc, name: string, size: number) => {
      const parts: Uint8Array<ArrayBuffer>[] = [];
      for await (const chunk of files.readChunks(`${dir}/${name}`, size)) parts.push(chunk.slice());
      return new Uint8Array(await new Blob(parts).arrayBuffer());
    };
    for (const size of [300_000, 100_000, 1]) {
      assertEquals(await chunks(libc, "big", size), big.subarray(0, size));
      assertEquals(await chunks(denoRequestFiles, "big", size), big.subarray(0, size));
    }
    assertEquals(await chunks(libc, "fifo", 100), new Uint8Array());
    assertEquals(await chunks(libc, "link", 100), new Uint8Array());
    assertEquals(libc.readOutput(`${dir}/big`, 100), { size: big.length });
    assertEquals(libc.readOutput(`${dir}/fifo`, 100), undefined);
    assertEquals(libc.readOutput(`${dir}/link`, 100), undefined);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("request_files: folders are private, inputs new, and removal takes all", () => {
  const parent = Deno.makeTempDirSync();
  try {
    for (const files of [libc, denoRequestFiles]) {
      const folder = files.makeFolder(parent, "f2s-request-");
      assert(folder.startsWith(`${parent}/f2s-request-`), folder);
      assertEquals(Deno.statSync(folder).mode! & 0o777, 0o700);
      const input = new TextEncoder().encode("ünï\n".repeat(5000));
      files.writeNew(`${folder}/input.json`, input);
      assertEquals(Deno.readFileSync(`${folder}/input.json`), input);
      assertEquals(Deno.statSync(`${folder}/input.json`).mode! & 0o777, 0o600);
      // Never over something already there (a link the script made, say).
      Deno.symlinkSync("/dev/null", `${folder}/input.txt`);
      assertThrows(() => files.writeNew(`${folder}/input.txt`, input));
      // The script's own leftovers, a folder among them, go too.
      Deno.mkdirSync(`${folder}/made/deeper`, { recursive: true });
      Deno.writeTextFileSync(`${folder}/made/deeper/x`, "x");
      files.removeFolder(folder, ["input.json", "input.txt", "stdout", "stderr"]);
      assertThrows(() => Deno.statSync(folder));
      const plain = files.makeFolder(parent, "p-");
      files.writeNew(`${plain}/stdout`, new Uint8Array([1]));
      files.removeFolder(plain, ["stdout", "stderr"]);
      assertThrows(() => Deno.statSync(plain));
    }
    assertEquals([...Deno.readDirSync(parent)], []);
  } finally {
    Deno.removeSync(parent, { recursive: true });
  }
});

Deno.test("request_files: a file made ahead takes its bytes later, is new, and closes once", () => {
  const parent = Deno.makeTempDirSync();
  const fds = () => [...Deno.readDirSync("/proc/self/fd")].length;
  try {
    for (const files of [libc, denoRequestFiles]) {
      const folder = files.makeFolder(parent, "f2s-request-");
      const before = fds();
      const file = files.createNew(`${folder}/input.json`);
      assertEquals(fds(), before + 1, "held open until written");
      assertEquals(Deno.statSync(`${folder}/input.json`).mode! & 0o777, 0o600);
      const input = new TextEncoder().encode('{"ü":1}'.repeat(20000));
      file.write(input);
      file.close();
      assertEquals(fds(), before);
      // A second close must not close whatever got that descriptor's number since.
      const other = Deno.openSync(`${folder}/input.json`);
      file.close();
      assertEquals(other.readSync(new Uint8Array(1)), 1, "the other file is still open");
      other.close();
      assertEquals(Deno.readFileSync(`${folder}/input.json`), input);
      Deno.symlinkSync("/dev/null", `${folder}/input.txt`);
      assertThrows(() => files.createNew(`${folder}/input.txt`));
      assertThrows(() => files.createNew(`${folder}/input.json`));
      files.removeFolder(folder, ["input.json", "input.txt"]);
    }
    assertEquals([...Deno.readDirSync(parent)], []);
  } finally {
    Deno.removeSync(parent, { recursive: true });
  }
});
