/**
 * Which actions the signed-in user may take, decided like the API does
 * (control/auth/privileges.ts, whose privilege list the UI receives from `/auth/type`): a
 * privilege is plain (`functions:invoke`) or scoped to function names by a pattern
 * (`functions:invoke:orders-*`, `*` any run, `?` one character). The UI only hides what
 * would be refused; the API still decides.
 */

/** The privilege names and the never-scoped ones, as the API lists them (`GET /auth/type`). */
const known = { privileges: [], unscoped: [] };

/** Takes the lists from the `/auth/type` answer; until then no grant parses. */
export function setKnownPrivileges({ privileges, unscoped } = {}) {
  known.privileges = Array.isArray(privileges) ? privileges : [];
  known.unscoped = Array.isArray(unscoped) ? unscoped : [];
}

const PATTERN_RE = /^[a-z0-9*?][-a-z0-9*?]{0,62}$/;

/** `{privilege, scope?: RegExp}` for a configured privilege string, or undefined. */
export function parseGrant(text) {
  if (known.privileges.includes(text)) return { privilege: text };
  const at = text.indexOf(":", text.indexOf(":") + 1);
  if (at < 0) return undefined;
  const name = text.slice(0, at);
  const pattern = text.slice(at + 1);
  if (!name.startsWith("functions:") || !known.privileges.includes(name)) return undefined;
  if (known.unscoped.includes(name)) return undefined; // a power over the host: never scoped
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
