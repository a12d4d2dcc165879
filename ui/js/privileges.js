/**
 * Which actions the signed-in user may take, decided like the API does
 * (control/auth/privileges.ts): a privilege is plain (`functions:invoke`) or scoped to
 * function names by a pattern (`functions:invoke:orders-*`, `*` any run, `?` one
 * character). The UI only hides what would be refused; the API still decides.
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
];

const PATTERN_RE = /^[a-z0-9*?][-a-z0-9*?]{0,62}$/;

/** `{privilege, scope?: RegExp}` for a configured privilege string, or undefined. */
export function parseGrant(text) {
  if (PRIVILEGES.includes(text)) return { privilege: text };
  const at = text.indexOf(":", text.indexOf(":") + 1);
  if (at < 0) return undefined;
  const name = text.slice(0, at);
  const pattern = text.slice(at + 1);
  if (!name.startsWith("functions:") || !PRIVILEGES.includes(name)) return undefined;
  if (name === "functions:local") return undefined; // a power over the host: never scoped
  if (!PATTERN_RE.test(pattern)) return undefined;
  const body = pattern.replaceAll("*", ".*").replaceAll("?", ".");
  return { privilege: name, scope: new RegExp(`^${body}$`) };
}

/**
 * Whether `privileges` allow `privilege`; a scoped grant counts only for a matching
 * `functionName`, never for requests about no single function.
 */
export function allows(privileges, privilege, functionName) {
  for (const text of privileges ?? []) {
    const g = parseGrant(text);
    if (!g || g.privilege !== privilege) continue;
    if (!g.scope) return true;
    if (functionName !== undefined && g.scope.test(functionName)) return true;
  }
  return false;
}

/** Whether `privileges` allow `privilege` for at least some function (scoped or not). */
export function allowsSome(privileges, privilege) {
  return (privileges ?? []).some((text) => parseGrant(text)?.privilege === privilege);
}

const ACTIONS = {
  "functions:list": ["see the functions", "see function"],
  "functions:invoke": ["invoke functions", "invoke function"],
  "functions:create": ["create functions", "create function"],
  "functions:update": ["change functions", "change function"],
  "functions:delete": ["delete functions", "delete function"],
  "functions:local": ["set host commands and folders", "set the host command and folder of"],
  "settings:view": ["view the settings", "view the settings"],
  "settings:update": ["change the settings", "change the settings"],
};

/** "You are not allowed to create functions (missing privilege functions:create)". */
export function notAllowedMessage(privilege, functionName) {
  const [general, one] = ACTIONS[privilege] ?? [`use ${privilege}`, `use ${privilege} on`];
  const what = functionName && !privilege.startsWith("settings:")
    ? `${one} "${functionName}"`
    : general;
  return `You are not allowed to ${what} (missing privilege ${privilege}).`;
}
