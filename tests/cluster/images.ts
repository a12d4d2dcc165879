/**
 * What the process kubelet runs for a container image: images are names of function
 * folders (`f2s-examples/<name>[:tag]` → `<repo>/examples/<name>`, more via a mapping),
 * and the app command comes from the container's command/args or the folder's
 * function.yaml (`target.local.command`, the same field `f2s dev` uses).
 */

import { parse as parseYaml } from "yaml";

/** Image name or prefix (ending in "/") → folder or folder prefix, or F2S_PROGRAM. */
export type ImageMap = Record<string, string>;

/**
 * The target of an image whose entrypoint is the `f2s` program itself (the control-plane
 * image, e.g. the chart's cleanup Job): the pod runs `main.ts` with the container's args.
 */
export const F2S_PROGRAM = "@f2s";

export function defaultImageMap(repo: string): ImageMap {
  return { "f2s-examples/": `${repo}/examples/` };
}

/** Parses "image=folder,prefix/=folder/" (the kubelet's --images option). */
export function parseImageMap(text: string): ImageMap {
  const map: ImageMap = {};
  for (const entry of text.split(",").map((s) => s.trim()).filter(Boolean)) {
    const eq = entry.indexOf("=");
    if (eq <= 0 || eq === entry.length - 1) {
      throw new Error(`image mapping "${entry}" is not IMAGE=FOLDER`);
    }
    map[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return map;
}

/** The image name without tag or digest ("f2s-examples/nodejs:1" → "f2s-examples/nodejs"). */
export function imageName(image: string): string {
  const noDigest = image.split("@")[0];
  const slash = noDigest.lastIndexOf("/");
  const colon = noDigest.lastIndexOf(":");
  return colon > slash ? noDigest.slice(0, colon) : noDigest;
}

/**
 * The folder `image` maps to: an entry for the image as given ("name:tag") first, then for
 * its name, then the longest matching prefix.
 */
export function functionFolder(image: string, map: ImageMap): string | undefined {
  const name = imageName(image);
  if (map[image]) return map[image];
  if (map[name]) return map[name];
  const prefix = Object.keys(map).filter((p) => p.endsWith("/") && name.startsWith(p))
    .sort((a, b) => b.length - a.length)[0];
  if (!prefix) return undefined;
  const rest = name.slice(prefix.length);
  if (!rest || rest.includes("..")) return undefined;
  return map[prefix].replace(/\/?$/, "/") + rest;
}

/** Quotes `words` for sh so that they arrive as the same argv. */
export function shellJoin(words: string[]): string {
  return words.map((w) => /^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replaceAll("'", `'\\''`)}'`)
    .join(" ");
}

export interface FunctionLaunch {
  /** Folder the fizzlet serves (its --dir). */
  dir: string;
  /** The fizzlet's --app-command, when there is an app to start. */
  appCommand?: string;
}

/**
 * How to launch the function in `folder` for a container: command/args win (as in a real
 * container they replace the image's entrypoint); otherwise function.yaml's
 * target.local (dir relative to the file, command), otherwise the folder itself.
 */
export async function functionLaunch(
  folder: string,
  container: { command?: string[]; args?: string[] },
): Promise<FunctionLaunch> {
  const info = await Deno.stat(folder).catch(() => undefined);
  if (!info?.isDirectory) throw new Error(`function folder ${folder} does not exist`);
  let local: { dir?: unknown; command?: unknown } | undefined;
  for (const file of ["function.yaml", "function.yml"]) {
    let text;
    try {
      text = await Deno.readTextFile(`${folder}/${file}`);
    } catch {
      continue;
    }
    // deno-lint-ignore no-explicit-any
    const doc = parseYaml(text) as any;
    local = doc?.target?.local;
    break;
  }
  const dir = typeof local?.dir === "string" ? resolvePath(folder, local.dir) : folder;
  const argv = [...container.command ?? [], ...container.args ?? []];
  if (argv.length) return { dir, appCommand: shellJoin(argv) };
  if (typeof local?.command === "string" && local.command.trim()) {
    return { dir, appCommand: local.command };
  }
  return { dir };
}

function resolvePath(base: string, path: string): string {
  if (path.startsWith("/")) return path;
  const parts = base.split("/");
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return parts.join("/");
}
