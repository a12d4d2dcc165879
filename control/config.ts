/**
 * The control plane's configuration: `config.yaml` in the seed's shape, then environment
 * variables on top (the seed's debugging section: `Prometheus_URL`, ...). Every unknown key
 * and wrong type is reported with its path, and an invalid file stops start-up.
 *
 * ```yaml
 * debug: true
 * prometheus: { url: localhost:9090 }
 * f2s:
 *   timeouts: { request_timeout: 120000, http_timeout: 60000, scaling_timeout: 45000 }
 *   auth: { global_config: { type: none } }
 *   autoscaling: { tick: 2s, stable_window: 60s, panic_window: 6s, ... }
 *   kafka: { enabled: false }
 * ```
 */

import { parse as parseYaml } from "yaml";
import { AUTH_TYPES, type AuthConfig, parseAuthConfig, validateAuthConfig } from "./auth/config.ts";
import { ConfigError, Reader } from "../common/config_util.ts";
import type { Timeouts } from "../dispatcher/needs.ts";
import { type AsyncConfig, parseAsyncConfig } from "./async/config.ts";

// Start-up (dev.ts, serve.ts) catches it from here, beside loadConfig.
export { ConfigError };
import { type KafkaConfig, type KafkaOverrides, parseKafkaConfig } from "./kafka/config.ts";

export interface AutoscalingConfig {
  /** How often decisions are made (ms). */
  tick: number;
  stableWindow: number;
  panicWindow: number;
  /** Panic when panic-window demand reaches this multiple of current capacity. */
  panicThreshold: number;
  targetConcurrency: number;
  idleTimeout: number;
  /** Where the concurrency signal comes from. */
  source: "local" | "prometheus";
}

export interface Config {
  debug: boolean;
  prometheus: { url?: string };
  timeouts: Timeouts;
  auth: AuthConfig;
  autoscaling: AutoscalingConfig;
  kafka: KafkaConfig;
  /** Queued calls and callbacks (control/async/). */
  async: AsyncConfig;
  /** Largest request body the API accepts for function manifests (bytes). */
  maxManifestBytes: number;
  /** Open connections on the API port beyond which new ones get 503; 0: the default. */
  maxConnections: number;
}

export const DEFAULT_TIMEOUTS: Timeouts = {
  requestTimeout: 120_000,
  httpTimeout: 60_000,
  scalingTimeout: 45_000,
};

/** Parses configuration text (YAML or JSON); throws ConfigError listing every problem. */
export function parseConfig(
  text: string,
  source = "config.yaml",
  env: Record<string, string | undefined> = Deno.env.toObject(),
): Config {
  let raw: unknown;
  try {
    raw = text.trim() === "" ? {} : parseYaml(text);
  } catch (e) {
    throw new ConfigError(source, [{
      path: "",
      message: `not valid YAML: ${(e as Error).message}`,
    }]);
  }
  return configFromObject(raw ?? {}, source, env);
}

/** Reads `path`; a missing file is an error only when the caller named it. */
export async function loadConfig(
  path: string | undefined,
  env = Deno.env.toObject(),
): Promise<Config> {
  if (!path) return configFromObject({}, "defaults", env);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new ConfigError(path, [{
      path: "",
      message: `cannot read file: ${(e as Error).message}`,
    }]);
  }
  return parseConfig(text, path, env);
}

export function configFromObject(
  raw: unknown,
  source: string,
  env: Record<string, string | undefined>,
): Config {
  const r = new Reader();
  const root = r.obj(raw, "");
  r.known(root, "", ["debug", "prometheus", "f2s", "kafka"]);
  const prometheus = r.obj(root.prometheus, "prometheus");
  r.known(prometheus, "prometheus", ["url"]);
  const f2s = r.obj(root.f2s, "f2s");
  r.known(f2s, "f2s", [
    "timeouts",
    "auth",
    "autoscaling",
    "kafka",
    "max_manifest_bytes",
    "max_connections",
    "async",
  ]);
  const t = r.obj(f2s.timeouts, "f2s.timeouts");
  r.known(t, "f2s.timeouts", ["request_timeout", "http_timeout", "scaling_timeout"]);
  const a = r.obj(f2s.autoscaling, "f2s.autoscaling");
  r.known(a, "f2s.autoscaling", [
    "tick",
    "stable_window",
    "panic_window",
    "panic_threshold",
    "target_concurrency",
    "idle_timeout",
    "source",
  ]);
  // The seed nests kafka under f2s; a top-level `kafka` section is accepted too.
  if (root.kafka !== undefined && f2s.kafka !== undefined) {
    r.error("kafka", "is given twice (top level and under f2s); keep one");
  }
  const kafkaPath = root.kafka !== undefined ? "kafka" : "f2s.kafka";

  const config: Config = {
    debug: r.bool(root.debug, "debug", false),
    prometheus: { url: r.str(prometheus.url, "prometheus.url") },
    timeouts: {
      requestTimeout: r.duration(
        t.request_timeout,
        "f2s.timeouts.request_timeout",
        DEFAULT_TIMEOUTS.requestTimeout,
      ),
      httpTimeout: r.duration(
        t.http_timeout,
        "f2s.timeouts.http_timeout",
        DEFAULT_TIMEOUTS.httpTimeout,
      ),
      scalingTimeout: r.duration(
        t.scaling_timeout,
        "f2s.timeouts.scaling_timeout",
        DEFAULT_TIMEOUTS.scalingTimeout,
      ),
    },
    auth: parseAuthConfig(f2s.auth, "f2s.auth", r),
    autoscaling: {
      tick: r.duration(a.tick, "f2s.autoscaling.tick", 2000),
      stableWindow: r.duration(a.stable_window, "f2s.autoscaling.stable_window", 60_000),
      panicWindow: r.duration(a.panic_window, "f2s.autoscaling.panic_window", 6000),
      panicThreshold: r.num(a.panic_threshold, "f2s.autoscaling.panic_threshold", 2, 1, 1000),
      targetConcurrency: r.num(
        a.target_concurrency,
        "f2s.autoscaling.target_concurrency",
        10,
        0.01,
        100_000,
      ),
      idleTimeout: r.duration(a.idle_timeout, "f2s.autoscaling.idle_timeout", 60_000),
      source: r.str(a.source, "f2s.autoscaling.source", "local") as "local" | "prometheus",
    },
    kafka: parseKafkaConfig(root.kafka ?? f2s.kafka, kafkaPath, r, kafkaOverrides(env, r)),
    async: parseAsyncConfig(f2s.async, "f2s.async", r),
    maxManifestBytes: r.num(f2s.max_manifest_bytes, "f2s.max_manifest_bytes", 1 << 20, 1024),
    maxConnections: r.num(f2s.max_connections, "f2s.max_connections", 0, 0, 1_000_000),
  };
  if (!["local", "prometheus"].includes(config.autoscaling.source)) {
    r.error("f2s.autoscaling.source", "must be local or prometheus");
  }
  applyEnv(config, env, r);
  validateAuthConfig(config.auth, "f2s.auth", r);
  if (config.autoscaling.source === "prometheus" && !config.prometheus.url) {
    r.error("prometheus.url", "is required when f2s.autoscaling.source is prometheus");
  }
  if (r.errors.length > 0) throw new ConfigError(source, r.errors);
  return config;
}

/** Environment variables that override the file (documented in docs/configuration.md). */
export const ENV_OVERRIDES = [
  "F2S_DEBUG",
  "Prometheus_URL",
  "PROMETHEUS_URL",
  "F2S_REQUEST_TIMEOUT",
  "F2S_HTTP_TIMEOUT",
  "F2S_SCALING_TIMEOUT",
  "F2S_AUTH_TYPE",
  "F2S_JWT_SECRET",
  "F2S_AUTOSCALING_SOURCE",
  "F2S_KAFKA_ENABLED",
  "F2S_KAFKA_BROKERS",
] as const;

function applyEnv(c: Config, env: Record<string, string | undefined>, r: Reader): void {
  const get = (name: string) => {
    const v = env[name];
    return v === undefined || v === "" ? undefined : v;
  };
  const bool = (name: string, v: string) => {
    if (/^(1|true|yes)$/i.test(v)) return true;
    if (/^(0|false|no)$/i.test(v)) return false;
    r.error(`env ${name}`, `must be true or false, got "${v}"`);
    return false;
  };
  let v: string | undefined;
  if ((v = get("F2S_DEBUG"))) c.debug = bool("F2S_DEBUG", v);
  if ((v = get("Prometheus_URL") ?? get("PROMETHEUS_URL"))) c.prometheus.url = v;
  if ((v = get("F2S_REQUEST_TIMEOUT"))) {
    c.timeouts.requestTimeout = r.duration(asNum(v), "env F2S_REQUEST_TIMEOUT", 0);
  }
  if ((v = get("F2S_HTTP_TIMEOUT"))) {
    c.timeouts.httpTimeout = r.duration(asNum(v), "env F2S_HTTP_TIMEOUT", 0);
  }
  if ((v = get("F2S_SCALING_TIMEOUT"))) {
    c.timeouts.scalingTimeout = r.duration(asNum(v), "env F2S_SCALING_TIMEOUT", 0);
  }
  if ((v = get("F2S_AUTH_TYPE"))) {
    if (!AUTH_TYPES.includes(v as AuthConfig["type"])) {
      r.error("env F2S_AUTH_TYPE", `"${v}" is not an auth type`);
    }
    c.auth.type = v as AuthConfig["type"];
  }
  if ((v = get("F2S_JWT_SECRET"))) c.auth.token.jwtSecret = v;
  if ((v = get("F2S_AUTOSCALING_SOURCE"))) c.autoscaling.source = v as AutoscalingConfig["source"];
}

/** F2S_KAFKA_ENABLED and F2S_KAFKA_BROKERS, applied before the kafka section is checked. */
function kafkaOverrides(env: Record<string, string | undefined>, r: Reader): KafkaOverrides {
  const out: KafkaOverrides = {};
  const enabled = env.F2S_KAFKA_ENABLED;
  if (enabled !== undefined && enabled !== "") {
    if (/^(1|true|yes)$/i.test(enabled)) out.enabled = true;
    else if (/^(0|false|no)$/i.test(enabled)) out.enabled = false;
    else r.error("env F2S_KAFKA_ENABLED", `must be true or false, got "${enabled}"`);
  }
  const brokers = env.F2S_KAFKA_BROKERS;
  if (brokers !== undefined && brokers !== "") {
    out.brokers = {
      values: brokers.split(",").map((b) => b.trim()).filter(Boolean),
      path: "env F2S_KAFKA_BROKERS",
    };
  }
  return out;
}

function asNum(v: string): number | string {
  return /^\d+$/.test(v) ? Number(v) : v;
}

/** The configuration with every secret replaced, for `GET /config` and logs. */
export function redactConfig(c: Config): unknown {
  const copy = structuredClone(c) as Config;
  copy.auth.basic = copy.auth.basic.map((u) => ({ ...u, password: "***" }));
  if (copy.auth.token.jwtSecret) copy.auth.token.jwtSecret = "***";
  copy.auth.token.tokens = copy.auth.token.tokens.map(() => "***");
  return copy;
}
