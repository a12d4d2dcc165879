/**
 * Function detail: what the function is, live charts of request rate, latency and
 * instances over the last minutes (from the control plane's `/metrics`), and its recent
 * events and scaling decisions with their reasons (`/events`).
 */

import { deleteFunction } from "../actions.js";
import { api } from "../api.js";
import { banner, h, replace } from "../dom.js";
import { lineChart } from "../chart.js";
import {
  clockTime,
  durationText,
  formatCount,
  formatMs,
  formatPercent,
  formatRate,
  timeAgo,
} from "../format.js";
import { can } from "../session.js";
import { instancesBadge, startFailure } from "./status.js";
import { asyncCallsSection } from "./async_calls.js";

const REFRESH_MS = 2000;
const EVENTS_MS = 4000;

export function render(ctx) {
  const name = ctx.params[0];
  const self = `#/functions/${encodeURIComponent(name)}`;
  let manifest;
  let events;
  let eventsError;

  const status = h("div", { class: "form-status" });
  const facts = h("div", { class: "facts card" });
  const charts = h("div", { class: "charts" });
  const eventsBox = h("div", { class: "events" });
  const keptMinutes = Math.round(ctx.poller.keepMs / 60_000);
  const range = h(
    "select",
    { id: "chart-range", onchange: () => drawCharts(), value: String(keptMinutes) },
    [1, 2, keptMinutes].filter((m, i, all) => m <= keptMinutes && all.indexOf(m) === i).map((m) =>
      h("option", { value: String(m) }, `last ${m} minute${m === 1 ? "" : "s"}`)
    ),
  );

  const actions = h(
    "div",
    { class: "row actions" },
    can("functions:invoke", name)
      ? h("a", { class: "button primary", href: `${self}/invoke`, id: "invoke-function" }, "Invoke")
      : null,
    can("functions:update", name)
      ? h("a", { class: "button", href: `${self}/edit`, id: "edit-function" }, "Edit")
      : null,
    h(
      "button",
      { type: "button", id: "download-function-yaml", onclick: downloadYaml },
      "Download YAML",
    ),
    can("functions:delete", name)
      ? h("button", {
        type: "button",
        class: "danger-outline",
        id: "delete-function",
        onclick: async () => {
          try {
            if (await deleteFunction(name)) ctx.navigate("#/functions");
          } catch (e) {
            replace(status, banner("error", e.message));
          }
        },
      }, "Delete")
      : null,
  );

  async function downloadYaml() {
    try {
      const yaml = await api(`/functions/${encodeURIComponent(name)}`, {
        accept: "application/yaml",
      });
      const url = URL.createObjectURL(new Blob([yaml], { type: "application/yaml" }));
      const a = h("a", { href: url, download: `${name}.yaml`, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (e) {
      replace(status, banner("error", e.message));
    }
  }

  function drawFacts() {
    if (!manifest) return;
    const stats = ctx.poller.latest(name);
    const t = manifest.target;
    const st = manifest.status ?? {};
    const invokeUrl = `${location.origin}${st.invokeUrl ?? `/invoke${manifest.spec.endpoint}`}`;
    const rows = [
      ["Endpoint", h("code", { id: "invoke-url" }, invokeUrl)],
      ["Method", manifest.spec.method],
      ["Image", h("code", {}, t.containerImage)],
      [
        "Instances",
        h(
          "span",
          { id: "instances-status" },
          instancesBadge(st.readyReplicas ?? 0, st.desiredReplicas ?? 0),
          ` min ${t.minReplicas ?? 1}, max ${t.maxReplicas ?? 1}`,
        ),
      ],
      ...problemRow(st),
      ["In flight", formatCount(st.inflight ?? 0)],
      ["Invocations", formatCount(stats?.invocations ?? 0)],
      [
        "Error rate",
        formatPercent(
          stats && stats.invocations > 0 ? stats.errors / stats.invocations : undefined,
        ),
      ],
      [
        "Last activity",
        timeAgo(stats?.lastActivity !== undefined ? stats.lastActivity * 1000 : undefined),
      ],
    ];
    if (t.scaling?.idleTimeout !== undefined) {
      rows.push(["Idle before zero", durationText(t.scaling.idleTimeout)]);
    }
    replace(
      facts,
      manifest.spec.description
        ? h("p", { class: "description" }, manifest.spec.description)
        : null,
      h(
        "dl",
        { class: "facts-list" },
        rows.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v))),
      ),
    );
  }

  function drawCharts() {
    const points = ctx.poller.series(name);
    const now = Date.now();
    const windowMs = Number(range.value) * 60_000;
    const pick = (key) => points.map((p) => ({ t: p.t, v: p[key] }));
    replace(
      charts,
      lineChart({
        id: "chart-rate",
        title: "Requests per second",
        windowMs,
        now,
        format: (v) => formatRate(v),
        series: [
          { label: "all answers", style: "s1", points: pick("rps") },
          {
            label: "5xx answers",
            style: "s3",
            points: points.map((p) => ({ t: p.t, v: (p.errorRatio ?? 0) * p.rps })),
          },
        ],
      }),
      lineChart({
        id: "chart-latency",
        title: "Latency",
        windowMs,
        now,
        floor: 10,
        format: (v) => formatMs(v),
        series: [
          { label: "average", style: "s1", points: pick("avgMs") },
          { label: "95th percentile", style: "s2", points: pick("p95Ms") },
        ],
      }),
      lineChart({
        id: "chart-instances",
        title: "Instances",
        windowMs,
        now,
        format: (v, axis) => (axis ? String(Math.round(v * 10) / 10) : formatCount(v)),
        series: [
          { label: "ready", style: "s1", step: true, points: pick("ready") },
          { label: "desired", style: "s2", step: true, points: pick("desired") },
        ],
      }),
    );
    if (ctx.poller.error) {
      charts.append(banner("error", `Cannot read the metrics: ${ctx.poller.error.message}`));
    }
  }

  function drawEvents() {
    if (!can("settings:view")) {
      replace(
        eventsBox,
        h("h2", {}, "Events"),
        h(
          "p",
          { class: "muted" },
          "Events and scaling decisions need the settings:view privilege.",
        ),
      );
      return;
    }
    if (eventsError) {
      replace(eventsBox, h("h2", {}, "Events"), banner("error", eventsError));
      return;
    }
    if (!events) return;
    const decisions = events.filter((e) => e.type === "scaling.decision").reverse().slice(0, 20);
    const others = events.filter((e) => e.type !== "scaling.decision").reverse().slice(0, 30);
    replace(
      eventsBox,
      h("h2", { id: "decisions-title" }, "Scaling decisions"),
      decisions.length === 0
        ? h(
          "p",
          { class: "muted" },
          "No scaling decisions yet. They appear when load or idleness changes the number of instances.",
        )
        : h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "decisions", "aria-labelledby": "decisions-title" },
            h(
              "thead",
              {},
              h(
                "tr",
                {},
                ["Time", "Change", "Reason", "Observed concurrency", "Target per instance"].map((
                  c,
                ) => h("th", { scope: "col" }, c)),
              ),
            ),
            h(
              "tbody",
              {},
              decisions.map((e) => {
                const d = e.data ?? {};
                return h(
                  "tr",
                  {},
                  h(
                    "td",
                    { "data-label": "Time" },
                    h("time", { datetime: e.time }, clockTime(e.time)),
                  ),
                  h("td", { "data-label": "Change" }, `${d.from ?? "?"} → ${d.to ?? "?"}`),
                  h(
                    "td",
                    { "data-label": "Reason" },
                    h("strong", {}, String(d.reason ?? "")),
                    h("span", { class: "muted small block" }, e.message),
                  ),
                  h(
                    "td",
                    { "data-label": "Observed" },
                    `stable ${d.stableConcurrency ?? "–"} over ${
                      durationText(d.stableWindowMs)
                    }, panic ${d.panicConcurrency ?? "–"} over ${durationText(d.panicWindowMs)}${
                      d.panic ? " (panic mode)" : ""
                    }`,
                  ),
                  h(
                    "td",
                    { "data-label": "Target" },
                    `${d.targetConcurrency ?? "–"} (bounds ${d.minReplicas ?? "?"}–${
                      d.maxReplicas ?? "?"
                    })`,
                  ),
                );
              }),
            ),
          ),
        ),
      h("h2", { id: "events-title" }, "Recent events"),
      others.length === 0 ? h("p", { class: "muted" }, "No events yet.") : h(
        "ol",
        { class: "event-list", "aria-labelledby": "events-title", reversed: true },
        others.map((e) =>
          h(
            "li",
            { class: `event ${e.type.replace(/[^a-z]+/g, "-")}` },
            h("time", { datetime: e.time }, clockTime(e.time)),
            h("span", { class: "event-type" }, e.type),
            h("span", { class: "event-message" }, e.message),
          )
        ),
      ),
    );
  }

  let stopped = false;
  let fnTimer, eventsTimer;
  async function refreshFunction() {
    try {
      manifest = await api(`/functions/${encodeURIComponent(name)}`);
      if (stopped) return;
      drawFacts();
      if (status.dataset.kind === "load") replace(status);
    } catch (e) {
      if (stopped) return;
      status.dataset.kind = "load";
      replace(
        status,
        banner("error", e.message, " ", h("a", { href: "#/functions" }, "Back to the functions")),
      );
    }
    fnTimer = setTimeout(refreshFunction, REFRESH_MS);
  }
  async function refreshEvents() {
    if (!can("settings:view")) return drawEvents();
    try {
      events = await api(`/events?function=${encodeURIComponent(name)}&limit=200`);
      eventsError = undefined;
    } catch (e) {
      eventsError = e.message;
    }
    if (stopped) return;
    drawEvents();
    eventsTimer = setTimeout(refreshEvents, EVENTS_MS);
  }
  ctx.onDispose(() => {
    stopped = true;
    clearTimeout(fnTimer);
    clearTimeout(eventsTimer);
  });
  ctx.onDispose(ctx.poller.subscribe(() => {
    drawCharts();
    drawFacts();
  }));
  refreshFunction();
  refreshEvents();
  drawCharts();
  const asyncCalls = asyncCallsSection(name);
  ctx.onDispose(asyncCalls.dispose);

  const node = h(
    "section",
    { class: "detail" },
    h("p", { class: "crumbs" }, h("a", { href: "#/functions" }, "Functions"), " / ", name),
    h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, name), actions),
    status,
    facts,
    h(
      "div",
      { class: "row charts-head" },
      h("h2", {}, "Activity"),
      h("label", { for: "chart-range", class: "visually-hidden" }, "Time range of the charts"),
      range,
    ),
    charts,
    asyncCalls.node,
    eventsBox,
  );
  return { title: name, node };
}

/** A row naming why the function does not start, when it does not. */
function problemRow(status) {
  const failure = startFailure(status);
  if (!failure) return [];
  return [[
    "Problem",
    h("span", { id: "start-failure", class: "problem" }, `${failure.reason}: ${failure.message}`),
  ]];
}
