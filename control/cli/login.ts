/**
 * The CLI's stored sign-in, like `faas-cli login`: the control plane's URL and a token from
 * `POST /auth/signin`, in `f2s/login.json` under the user's config folder ($XDG_CONFIG_HOME,
 * else ~/.config). Only the user may read it (0600 in a 0700 folder): it holds a credential.
 */

import { dirname, join } from "node:path";

export interface StoredLogin {
  url: string;
  token?: string;
  user?: string;
  expiresAt?: string;
}

export function loginFile(): string {
  const xdg = Deno.env.get("XDG_CONFIG_HOME");
  const base = xdg && xdg !== "" ? xdg : join(Deno.env.get("HOME") ?? ".", ".config");
  return join(base, "f2s", "login.json");
}

/** The stored login, or undefined when there is none (or it is unreadable). */
export function readLogin(): StoredLogin | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(loginFile());
  } catch {
    return undefined;
  }
  try {
    const value = JSON.parse(text);
    return typeof value?.url === "string" ? value : undefined;
  } catch {
    return undefined;
  }
}

export async function writeLogin(login: StoredLogin): Promise<string> {
  const file = loginFile();
  await Deno.mkdir(dirname(file), { recursive: true, mode: 0o700 });
  // Written to a private temp file first: the token is never readable by others, not even
  // for a moment, and a crash cannot leave half a file.
  const temp = `${file}.${crypto.randomUUID()}.tmp`;
  await Deno.writeTextFile(temp, JSON.stringify(login, null, 2) + "\n", { mode: 0o600 });
  await Deno.chmod(temp, 0o600);
  await Deno.rename(temp, file);
  return file;
}
