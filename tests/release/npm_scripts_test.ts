// A newcomer's first `npm start` must not open with a warning box: package.json's npm:deno
// (the pinned Deno that npm installs) has a postinstall script Deno would report as ignored
// each time it fills its cache. deno.json denies that one package's scripts by name, so
// a warning about any other package still shows.
import { assert, assertEquals } from "../harness/assert.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

Deno.test("a fresh Deno cache fills without the 'Ignored build scripts' warning", async () => {
  const dir = await Deno.makeTempDir({ prefix: "f2s-npm-scripts-" });
  try {
    for (const file of ["deno.json", "package.json", "deno.lock"]) {
      await Deno.copyFile(`${ROOT}${file}`, `${dir}/${file}`);
    }
    // Importing an npm package makes Deno install everything the lock names.
    await Deno.writeTextFile(`${dir}/main.ts`, 'import "yaml";\nconsole.log("ok");\n');
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "main.ts"],
      cwd: dir,
      env: { DENO_DIR: `${dir}/cache`, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 0, stderr);
    assertEquals(new TextDecoder().decode(out.stdout).trim(), "ok");
    assert(/Download/.test(stderr), "the cache was filled from scratch");
    assert(!/Ignored build scripts|Warning/.test(stderr), stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
