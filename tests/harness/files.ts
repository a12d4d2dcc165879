/** Copies a folder tree (tests use it to give each run its own function folders). */

export async function copy(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    const src = `${from}/${entry.name}`;
    const dst = `${to}/${entry.name}`;
    if (entry.isDirectory) await copy(src, dst);
    else if (entry.isFile) {
      await Deno.copyFile(src, dst);
      const mode = (await Deno.stat(src)).mode;
      if (mode !== null) await Deno.chmod(dst, mode & 0o777);
    }
  }
}
