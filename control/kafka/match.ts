/**
 * Decides whether a Kafka message fires an action: every trigger of the action must match
 * (an action without triggers fires for every message). Keys, header values and message
 * values are compared as UTF-8 text.
 *
 * A missing key or header is "absent": `equal`/`contains` never match it and
 * `not equal`/`not contains` always do, so "not equal X" reads as "anything but X".
 */

import type { KafkaAction, KafkaTrigger } from "./config.ts";

/** The parts of a message triggers look at, already decoded. */
export interface MessageView {
  key: string | undefined;
  value: string;
  /** Header names in lower case; a repeated header keeps every value. */
  headers: Map<string, string[]>;
}

export function triggerMatches(trigger: KafkaTrigger, message: MessageView): boolean {
  const subjects = subjectsOf(trigger, message);
  const positive = trigger.filter === "equal" || trigger.filter === "contains";
  const hit = subjects.some((s) =>
    trigger.filter === "equal" || trigger.filter === "not equal"
      ? s === trigger.value
      : s.includes(trigger.value)
  );
  return positive ? hit : !hit;
}

export function actionMatches(action: KafkaAction, message: MessageView): boolean {
  return action.triggers.every((t) => triggerMatches(t, message));
}

function subjectsOf(trigger: KafkaTrigger, message: MessageView): string[] {
  switch (trigger.type) {
    case "key":
      return message.key === undefined ? [] : [message.key];
    case "value":
      return [message.value];
    case "header":
      return message.headers.get((trigger.name ?? "").toLowerCase()) ?? [];
  }
}
