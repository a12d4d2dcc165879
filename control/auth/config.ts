/**
 * The `f2s.auth` section of config.yaml, in the seed's shape:
 * `global_config.type` (none | basic | token), `basic` users, `token` (jwt_secret and an
 * optional allow-list of tokens) and `authorization` (groups and their privileges).
 */

import { type Obj, Reader } from "../config_util.ts";

export type AuthType = "none" | "basic" | "token";

export interface BasicUser {
  username: string;
  /** Plain text or a bcrypt hash ($2a$/$2b$/$2y$). */
  password: string;
  group: string;
}

export interface AuthConfig {
  type: AuthType;
  basic: BasicUser[];
  token: { jwtSecret?: string; tokens: string[]; expiry: number };
  authorization: { group: string; privileges: string[] }[];
}

const TYPES: AuthType[] = ["none", "basic", "token"];

export function parseAuthConfig(raw: unknown, path: string, r: Reader): AuthConfig {
  const o: Obj = r.obj(raw, path);
  r.known(o, path, ["global_config", "basic", "token", "authorization"]);
  const global = r.obj(o.global_config, `${path}.global_config`);
  const type = r.str(global.type, `${path}.global_config.type`, "none");
  if (!TYPES.includes(type as AuthType)) {
    r.error(`${path}.global_config.type`, `"${type}" is not an auth type (none, basic, token)`);
  }
  const basic = r.list(o.basic, `${path}.basic`).map((u, i) => {
    const p = `${path}.basic[${i}]`;
    const uo = r.obj(u, p);
    r.known(uo, p, ["username", "password", "group"]);
    return {
      username: r.str(uo.username, `${p}.username`, ""),
      password: r.str(uo.password, `${p}.password`, ""),
      group: r.str(uo.group, `${p}.group`, ""),
    };
  });
  const token = r.obj(o.token, `${path}.token`);
  r.known(token, `${path}.token`, ["jwt_secret", "tokens", "expiry"]);
  const tokens = r.list(token.tokens, `${path}.token.tokens`).map((t, i) => {
    const to = r.obj(t, `${path}.token.tokens[${i}]`);
    return r.str(to.token, `${path}.token.tokens[${i}].token`, "");
  });
  const authorization = r.list(o.authorization, `${path}.authorization`).map((g, i) => {
    const p = `${path}.authorization[${i}]`;
    const go = r.obj(g, p);
    r.known(go, p, ["group", "privileges"]);
    return {
      group: r.str(go.group, `${p}.group`, ""),
      privileges: r.list(go.privileges, `${p}.privileges`).map((x, j) =>
        r.str(x, `${p}.privileges[${j}]`, "")
      ),
    };
  });
  return {
    type: type as AuthType,
    basic,
    token: {
      jwtSecret: r.str(token.jwt_secret, `${path}.token.jwt_secret`),
      tokens,
      expiry: r.duration(token.expiry, `${path}.token.expiry`, 3_600_000),
    },
    authorization,
  };
}
