/**
 * The environment a local instance (`f2s dev`) starts with. A function is untrusted code and
 * one `env` call would show it everything the control plane was started with (its JWT secret,
 * a cloud credential), so nothing is inherited except a short allow-list that programs need to
 * run at all: PATH, HOME, locale, time zone, temp folder, and where the pinned Deno keeps its
 * cache (the fizzlet is the control plane's own program and must find its modules). On top come
 * the function's `target.env`, then the platform's variables. A pod on Kubernetes likewise gets
 * only what its manifest names.
 */

/** Variables of the control plane's environment an instance may see. */
export const PASSED_ENV = [
  "PATH",
  "HOME",
  "LANG",
  "LANGUAGE",
  "TZ",
  "TMPDIR",
  "DENO_DIR",
  "XDG_CACHE_HOME",
];
/** Prefixes of passed variables (the locale categories). */
const PASSED_PREFIXES = ["LC_"];

/**
 * Names a function's env may not set for its local instance: the fizzlet reads its app command
 * from F2S_APP_COMMAND when no `--app-command` is given, and a shell command run on the host is
 * `target.local.command`, which only an operator may set.
 */
export const RESERVED_ENV = ["F2S_APP_COMMAND"];

export function instanceEnv(
  fnEnv: Record<string, string>,
  platform: Record<string, string>,
  from: Record<string, string> = Deno.env.toObject(),
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(from)) {
    if (PASSED_ENV.includes(name) || PASSED_PREFIXES.some((p) => name.startsWith(p))) {
      env[name] = value;
    }
  }
  for (const [name, value] of Object.entries(fnEnv)) {
    if (!RESERVED_ENV.includes(name)) env[name] = value;
  }
  return { ...env, ...platform };
}
