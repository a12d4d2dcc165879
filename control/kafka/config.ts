/**
 * The `kafka` section of config.yaml, in the seed's shape (`enabled`, `brokers`,
 * `consumergroup`, `listeners[].topic`, `listeners[].actions[]` with `triggers`,
 * `f2sfunctions` and `response.key`).
 */

import { type Obj, Reader } from "../config_util.ts";

export interface KafkaTrigger {
  type: "key" | "header" | "value";
  /** Header name, for type "header". */
  name?: string;
  filter: "equal" | "not equal" | "contains" | "not contains";
  value: string;
}

export interface KafkaAction {
  name: string;
  triggers: KafkaTrigger[];
  /** Function names or Kubernetes UIDs. */
  functions: string[];
  response: { key?: string; topic?: string };
}

export interface KafkaListener {
  topic: string;
  consumerGroup?: string;
  actions: KafkaAction[];
}

export interface KafkaConfig {
  enabled: boolean;
  brokers: string[];
  consumerGroup: string;
  listeners: KafkaListener[];
}

export function parseKafkaConfig(raw: unknown, path: string, r: Reader): KafkaConfig {
  const o: Obj = r.obj(raw, path);
  const enabled = r.bool(o.enabled, `${path}.enabled`, false);
  const brokers = r.list(o.brokers, `${path}.brokers`).map((b, i) =>
    r.str(b, `${path}.brokers[${i}]`, "")
  );
  if (enabled && brokers.length === 0) {
    r.error(`${path}.brokers`, "needs at least one broker when kafka is enabled");
  }
  const listeners = r.list(o.listeners, `${path}.listeners`).map((l, i) => {
    const p = `${path}.listeners[${i}]`;
    const lo = r.obj(l, p);
    const topic = r.str(lo.topic, `${p}.topic`, "");
    if (!topic) r.error(`${p}.topic`, "is required");
    const actions = r.list(lo.actions, `${p}.actions`).map((a, j) => {
      const ap = `${p}.actions[${j}]`;
      const ao = r.obj(a, ap);
      const triggers = r.list(ao.triggers, `${ap}.triggers`).map((t, k) => {
        const tp = `${ap}.triggers[${k}]`;
        const to = r.obj(t, tp);
        return {
          type: r.str(to.type, `${tp}.type`, "key") as KafkaTrigger["type"],
          name: r.str(to.name, `${tp}.name`),
          filter: r.str(to.filter, `${tp}.filter`, "equal") as KafkaTrigger["filter"],
          value: r.str(to.value, `${tp}.value`, ""),
        };
      });
      const response = r.obj(ao.response, `${ap}.response`);
      return {
        name: r.str(ao.name, `${ap}.name`, `action-${j}`),
        triggers,
        functions: r.list(ao.f2sfunctions, `${ap}.f2sfunctions`).map((f, k) =>
          r.str(f, `${ap}.f2sfunctions[${k}]`, "")
        ),
        response: {
          key: r.str(response.key, `${ap}.response.key`),
          topic: r.str(response.topic, `${ap}.response.topic`),
        },
      };
    });
    return { topic, consumerGroup: r.str(lo.consumergroup, `${p}.consumergroup`), actions };
  });
  return {
    enabled,
    brokers,
    consumerGroup: r.str(o.consumergroup, `${path}.consumergroup`, "f2s"),
    listeners,
  };
}
