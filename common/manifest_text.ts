/**
 * Parsing manifest text (YAML or JSON) from untrusted hands with bounded cost. The `yaml`
 * package builds its whole document tree before it counts aliases, so a few hundred kB of
 * `*a,*a,...` cost seconds and hundreds of MB before it refuses. Here a streaming pass of
 * its lexer counts aliases, tokens and flow nesting first and stops at the first limit
 * crossed, so over-limit text is refused in milliseconds without building anything.
 */

import { Lexer, parse, parseAllDocuments } from "yaml";

export interface TextLimits {
  /** Alias nodes (`*name`) in the whole text. */
  maxAliases: number;
  /** Tokens (scalars, indicators, ...) in the whole text: bounds the tree's size. */
  maxTokens: number;
  /** Nesting of objects and arrays. */
  maxDepth: number;
}

/** For one manifest sent to the API: a Function has some dozens of fields. */
export const MANIFEST_LIMITS: TextLimits = { maxAliases: 100, maxTokens: 20_000, maxDepth: 32 };

/** For a file of the functions folder, which may hold many manifests. */
export const FILE_LIMITS: TextLimits = { maxAliases: 1_000, maxTokens: 200_000, maxDepth: 32 };

export class ManifestTextError extends Error {}

/** Why `text` exceeds `limits` as YAML, or undefined when it does not. */
export function yamlOverLimit(text: string, limits: TextLimits): string | undefined {
  let tokens = 0;
  let aliases = 0;
  let flow = 0;
  for (const token of new Lexer().lex(text)) {
    if (++tokens > limits.maxTokens) {
      return `more than ${limits.maxTokens} YAML tokens (a manifest has far fewer)`;
    }
    const c = token[0];
    if (c === "*" && ++aliases > limits.maxAliases) {
      return `more than ${limits.maxAliases} YAML aliases`;
    } else if (c === "[" || c === "{") {
      if (++flow > limits.maxDepth) return `nested deeper than ${limits.maxDepth} levels`;
    } else if (c === "]" || c === "}") flow--;
    else if (token.length > 2 * limits.maxDepth && /^ +$/.test(token)) {
      // Block nesting shows as indentation: each level indents by at least one space.
      return `nested deeper than ${limits.maxDepth} levels`;
    }
  }
  return undefined;
}

/** Throws a ManifestTextError when `value` nests deeper than `maxDepth` (no recursion). */
export function checkDepth(value: unknown, maxDepth: number): void {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== "object" || v === null) continue;
    if (depth > maxDepth) throw new ManifestTextError(`nested deeper than ${maxDepth} levels`);
    for (const child of Object.values(v)) {
      if (typeof child === "object" && child !== null) stack.push([child, depth + 1]);
    }
  }
}

/** One YAML document within limits; throws ManifestTextError (over a limit or invalid). */
export function parseYamlLimited(text: string, limits: TextLimits): unknown {
  const over = yamlOverLimit(text, limits);
  if (over) throw new ManifestTextError(over);
  let value: unknown;
  try {
    value = parse(text, { maxAliasCount: limits.maxAliases });
  } catch (e) {
    throw new ManifestTextError((e as Error).message);
  }
  checkDepth(value, limits.maxDepth);
  return value;
}

/** JSON within the depth limit; throws ManifestTextError. */
export function parseJsonLimited(text: string, limits: TextLimits): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ManifestTextError((e as Error).message);
  }
  checkDepth(value, limits.maxDepth);
  return value;
}

/**
 * Every document of a YAML text as JS values (or an error per document), within limits;
 * throws ManifestTextError when the text as a whole is over them.
 */
export function parseYamlDocumentsLimited(
  text: string,
  limits: TextLimits,
): ({ value: unknown } | { error: string })[] {
  const over = yamlOverLimit(text, limits);
  if (over) throw new ManifestTextError(over);
  return parseAllDocuments(text).map((doc) => {
    if (doc.errors.length > 0) return { error: doc.errors[0].message };
    try {
      const value = doc.toJS({ maxAliasCount: limits.maxAliases });
      checkDepth(value, limits.maxDepth);
      return { value };
    } catch (e) {
      return { error: (e as Error).message };
    }
  });
}
