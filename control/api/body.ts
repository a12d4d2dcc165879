/**
 * Reading API request bodies: a size limit (413 past it) and JSON or YAML by content type,
 * within the manifest text limits (aliases, size of the tree, nesting: 400 past them), with
 * parse errors that say where the problem is.
 */

import { MANIFEST_LIMITS, parseJsonLimited, parseYamlLimited } from "../../common/manifest_text.ts";
import { readUpTo } from "../../common/read_limited.ts";

export class BodyError extends Error {
  constructor(readonly status: 400 | 413 | 415, message: string) {
    super(message);
  }
}

/** Reads at most `limit` bytes of the body as text; more is a BodyError(413). */
export async function readLimited(req: Request, limit: number): Promise<string> {
  const declared = Number(req.headers.get("content-length") ?? NaN);
  if (Number.isFinite(declared) && declared > limit) {
    await req.body?.cancel();
    throw new BodyError(
      413,
      `request body of ${declared} bytes exceeds the limit of ${limit} bytes`,
    );
  }
  if (!req.body) return "";
  const all = await readUpTo(req.body, limit);
  if (!all) throw new BodyError(413, `request body exceeds the limit of ${limit} bytes`);
  return new TextDecoder().decode(all);
}

/** A manifest from a JSON or YAML body. */
export async function readManifest(req: Request, limit: number): Promise<unknown> {
  const type = (req.headers.get("content-type") ?? "application/json").split(";")[0].trim()
    .toLowerCase();
  const text = await readLimited(req, limit);
  if (text.trim() === "") {
    throw new BodyError(400, "request body is empty; send a Function manifest");
  }
  if (type === "application/json" || type === "text/json") {
    try {
      return parseJsonLimited(text, MANIFEST_LIMITS);
    } catch (e) {
      throw new BodyError(400, `body is not valid JSON: ${(e as Error).message}`);
    }
  }
  if (/^(application|text)\/(x-)?yaml$/.test(type) || type === "text/plain") {
    try {
      return parseYamlLimited(text, MANIFEST_LIMITS);
    } catch (e) {
      throw new BodyError(400, `body is not valid YAML: ${(e as Error).message}`);
    }
  }
  throw new BodyError(
    415,
    `content type "${type}" is not supported; use application/json or application/yaml`,
  );
}
