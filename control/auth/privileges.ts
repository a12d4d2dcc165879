/**
 * Privilege names and grants. A group's configured privilege is either a plain name
 * (`functions:invoke`) or, for the function privileges, a name scoped to functions by a
 * name pattern (`functions:invoke:orders-*`, where `*` matches any run of characters and
 * `?` one character); `functions:local` cannot be scoped. This module parses those strings and answers "may this grant set do
 * X (to function F)?"; it knows nothing about requests.
 */

export const PRIVILEGES = [
  "functions:list",
  "functions:invoke",
  "functions:create",
  "functions:delete",
  "functions:update",
  "functions:local",
  "settings:view",
  "settings:update",
] as const;

export type Privilege = typeof PRIVILEGES[number];

/**
 * Privileges that are never scoped: `functions:local` lets a caller set `target.local`
 * (the command and folder `f2s dev` runs on its host), which is an operator's power.
 */
export const UNSCOPED: ReadonlySet<Privilege> = new Set(["functions:local"]);

/** One parsed privilege string: the privilege and, when scoped, the names it covers. */
export interface Grant {
  privilege: Privilege;
  /** Matches the function names the grant covers; absent = every function. */
  scope?: RegExp;
}

// Function names are DNS-1123 labels (common/function.ts); patterns add `*` and `?`.
const PATTERN_RE = /^[a-z0-9*?][-a-z0-9*?]{0,62}$/;

export function isPrivilege(value: string): value is Privilege {
  return (PRIVILEGES as readonly string[]).includes(value);
}

/** Parses a configured privilege string, or returns why it is not one. */
export function parseGrant(text: string): Grant | string {
  if (isPrivilege(text)) return { privilege: text };
  const at = text.indexOf(":", text.indexOf(":") + 1);
  const name = at < 0 ? text : text.slice(0, at);
  if (!isPrivilege(name)) {
    return `"${text}" is not a privilege (expected one of: ${PRIVILEGES.join(", ")}, ` +
      `or a function privilege scoped by name pattern like functions:invoke:orders-*)`;
  }
  if (!name.startsWith("functions:")) {
    return `"${text}": only functions:* privileges can be scoped to function names`;
  }
  if (UNSCOPED.has(name)) {
    return `"${text}": ${name} is a power over the host, not over some functions; ` +
      "it cannot be scoped";
  }
  const pattern = text.slice(at + 1);
  if (!PATTERN_RE.test(pattern)) {
    return `"${text}": the scope "${pattern}" must be a function name pattern ` +
      `(lower-case letters, digits, "-", "*" and "?")`;
  }
  return { privilege: name, scope: patternToRegExp(pattern) };
}

function patternToRegExp(pattern: string): RegExp {
  // Only `-` needs no escaping among the allowed characters; `*` and `?` become wildcards.
  const body = pattern.replaceAll("*", ".*").replaceAll("?", ".");
  return new RegExp(`^${body}$`);
}

/**
 * Whether `grants` allow `privilege`; for a scoped grant only when `functionName` is given
 * and matches. Without a function name only an unscoped grant counts.
 */
export function grantsAllow(grants: Grant[], privilege: Privilege, functionName?: string): boolean {
  for (const g of grants) {
    if (g.privilege !== privilege) continue;
    if (!g.scope) return true;
    if (functionName !== undefined && g.scope.test(functionName)) return true;
  }
  return false;
}

/** Parses privilege strings, skipping (already reported) invalid ones; results are cached. */
export function grantsOf(privileges: readonly string[]): Grant[] {
  const out: Grant[] = [];
  for (const p of privileges) {
    let g = cache.get(p);
    if (g === undefined) {
      const parsed = parseGrant(p);
      g = typeof parsed === "string" ? null : parsed;
      if (cache.size < 10_000) cache.set(p, g);
    }
    if (g) out.push(g);
  }
  return out;
}

const cache = new Map<string, Grant | null>();
