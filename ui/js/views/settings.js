/**
 * Settings: the running configuration as the control plane reports it (`GET /config`,
 * secrets already replaced by `***` on the server), grouped for people: general, auth
 * mode with users and privileges, timeouts, autoscaling and Kafka listeners.
 */

import { api } from "../api.js";
import { banner, h, replace } from "../dom.js";
import { durationText, formatBytes } from "../format.js";
import { notAllowedMessage } from "../privileges.js";
import { can, session } from "../session.js";

export function render() {
  const head = h("h1", { tabindex: "-1" }, "Settings");
  if (!can("settings:view")) {
    return {
      title: "Settings",
      node: h("section", {}, head, banner("error", notAllowedMessage("settings:view"))),
    };
  }
  const body = h(
    "div",
    { class: "settings" },
    h("p", { class: "muted" }, "Loading the configuration…"),
  );
  Promise.all([api("/config"), api("/health").catch(() => undefined)]).then(([config, health]) => {
    replace(body, ...sections(config, health));
  }).catch((e) => replace(body, banner("error", e.message)));

  const node = h(
    "section",
    {},
    h("div", { class: "page-head" }, head),
    h(
      "p",
      { class: "muted" },
      "The configuration this control plane runs with (config.yaml and environment overrides). Secrets are never shown. Change it in config.yaml and restart.",
    ),
    body,
  );
  return { title: "Settings", node };
}

function sections(c, health) {
  const auth = c.auth ?? {};
  const kafka = c.kafka ?? {};
  return [
    card("General", [
      ["Runtime", health?.runtime ?? "–"],
      ["Version", health?.version ?? "–"],
      ["Functions", health?.functions ?? "–"],
      ["Debug logging", yesNo(c.debug)],
      ["Prometheus", c.prometheus?.url ?? "not configured"],
      ["Largest manifest", formatBytes(c.maxManifestBytes)],
    ]),
    card("Authentication", [
      ["Auth mode", h("strong", { id: "auth-mode" }, auth.type ?? session.type)],
      ["Clock tolerance", durationText(auth.clockTolerance)],
      ["Token lifetime", durationText(auth.token?.expiry)],
      ["Token secret", auth.token?.jwtSecret ? "set (hidden)" : "not set"],
      ["Allow-listed tokens", String(auth.token?.tokens?.length ?? 0)],
      ["OIDC issuer", auth.oidc?.issuer ?? "not configured"],
    ], [
      auth.basic?.length
        ? table(
          "Users",
          ["User", "Group", "Password"],
          auth.basic.map((u) => [u.username, u.group, u.password]),
        )
        : null,
      auth.authorization?.length
        ? table(
          "Groups and privileges",
          ["Group", "Privileges"],
          auth.authorization.map((a) => [a.group, a.privileges.join(", ")]),
        )
        : null,
    ]),
    card("Timeouts", [
      ["Whole request", durationText(c.timeouts?.requestTimeout)],
      ["Waiting for response headers", durationText(c.timeouts?.httpTimeout)],
      ["Waiting for an instance (scale from zero)", durationText(c.timeouts?.scalingTimeout)],
    ]),
    card("Autoscaling", [
      ["Decision interval (tick)", durationText(c.autoscaling?.tick)],
      ["Stable window", durationText(c.autoscaling?.stableWindow)],
      ["Panic window", durationText(c.autoscaling?.panicWindow)],
      ["Panic threshold", String(c.autoscaling?.panicThreshold ?? "–")],
      ["Target concurrency per instance", String(c.autoscaling?.targetConcurrency ?? "–")],
      ["Idle time before zero", durationText(c.autoscaling?.idleTimeout)],
      ["Signal source", c.autoscaling?.source ?? "–"],
    ]),
    card("Kafka", [
      ["Enabled", yesNo(kafka.enabled)],
      ["Brokers", kafka.brokers?.length ? kafka.brokers.join(", ") : "none"],
      ["Consumer group", kafka.consumerGroup ?? "–"],
      [
        "Retries",
        kafka.retries === undefined
          ? "–"
          : `${kafka.retries}, backoff ${durationText(kafka.retryBackoff)} up to ${
            durationText(kafka.retryBackoffMax)
          }`,
      ],
      ["Dead-letter topic", kafka.deadLetterTopic ?? "none"],
    ], [
      kafka.listeners?.length
        ? table(
          "Listeners",
          ["Topic", "Action", "Triggers", "Functions", "Response"],
          kafka.listeners.flatMap((l) =>
            (l.actions ?? []).map((a) => [
              l.topic,
              a.name,
              a.triggers?.length ? a.triggers.map(triggerText).join(" and ") : "every message",
              (a.functions ?? []).join(", "),
              [
                a.response?.topic ? `topic ${a.response.topic}` : null,
                a.response?.key ? `key ${a.response.key}` : null,
              ].filter(Boolean).join(", ") || "same topic and key",
            ])
          ),
          "kafka-listeners",
        )
        : h("p", { class: "muted" }, "No listeners configured."),
    ]),
    h(
      "details",
      { class: "card raw-config" },
      h("summary", {}, "The whole configuration as JSON (secrets redacted)"),
      h("pre", { tabindex: "0", id: "raw-config" }, JSON.stringify(c, null, 2)),
    ),
  ];
}

function card(title, rows, extra = []) {
  const id = `settings-${title.toLowerCase().replace(/[^a-z]+/g, "-")}`;
  return h(
    "section",
    { class: "card", "aria-labelledby": id },
    h("h2", { id }, title),
    h(
      "dl",
      { class: "facts-list" },
      rows.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v ?? "–"))),
    ),
    extra,
  );
}

function table(caption, columns, rows, id) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "plain", id },
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
      h(
        "tbody",
        {},
        rows.map((r) =>
          h(
            "tr",
            {},
            r.map((v, i) =>
              h(
                i === 0 ? "th" : "td",
                i === 0 ? { scope: "row", "data-label": columns[i] } : { "data-label": columns[i] },
                v,
              )
            ),
          )
        ),
      ),
    ),
  );
}

function triggerText(t) {
  const what = t.type === "header" ? `header ${t.name}` : t.type;
  return `${what} ${t.filter} "${t.value}"`;
}

function yesNo(v) {
  return v ? "yes" : "no";
}
