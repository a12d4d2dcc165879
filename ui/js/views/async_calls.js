/**
 * The function page's "Asynchronous calls" part: the recent queued calls (the caller's
 * own, or every call with settings:view) with their state, and the next scheduled runs,
 * from GET /functions/{name}/calls. Kept apart from detail.js, which only places it.
 */

import { api } from "../api.js";
import { banner, h, replace } from "../dom.js";
import { clockTime, formatMs } from "../format.js";
import { can } from "../session.js";

const REFRESH_MS = 4000;

/** The section and its refresh loop; call `dispose` when the page goes away. */
export function asyncCallsSection(name) {
  const box = h("div", { class: "async-calls", id: "async-calls" });
  let timer;
  let stopped = false;

  function draw(body) {
    const calls = body.calls ?? [];
    const schedule = body.schedule;
    replace(
      box,
      h("h2", { id: "async-title" }, "Asynchronous calls"),
      schedule
        ? h(
          "div",
          { class: "card", id: "schedule-runs" },
          h(
            "p",
            {},
            "Schedule ",
            h("code", {}, schedule.expression),
            schedule.timeZone ? ` (${schedule.timeZone})` : "",
            "; next runs:",
          ),
          h(
            "ol",
            { class: "next-runs" },
            schedule.nextRuns.map((t) => h("li", {}, h("time", { datetime: t }, clockTime(t)))),
          ),
        )
        : null,
      calls.length === 0
        ? h("p", { class: "muted" }, "No asynchronous calls yet (POST /async/invoke/…).")
        : h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "calls", "aria-labelledby": "async-title" },
            h(
              "thead",
              {},
              h(
                "tr",
                {},
                ["Queued", "Call", "State", "Attempts", "Status", "Duration", "Source"].map((c) =>
                  h("th", { scope: "col" }, c)
                ),
              ),
            ),
            h(
              "tbody",
              {},
              calls.slice(0, 20).map((c) =>
                h(
                  "tr",
                  { class: `call ${c.state}` },
                  h(
                    "td",
                    { "data-label": "Queued" },
                    h("time", { datetime: c.createdAt }, clockTime(c.createdAt)),
                  ),
                  h("td", { "data-label": "Call" }, h("code", { class: "small" }, c.id)),
                  h("td", { "data-label": "State" }, c.state),
                  h("td", { "data-label": "Attempts" }, String(c.attempts)),
                  h(
                    "td",
                    { "data-label": "Status" },
                    c.status === undefined ? "–" : String(c.status),
                  ),
                  h(
                    "td",
                    { "data-label": "Duration" },
                    c.durationMs === undefined ? "–" : formatMs(c.durationMs),
                  ),
                  h("td", { "data-label": "Source" }, c.source),
                )
              ),
            ),
          ),
        ),
    );
  }

  async function refresh() {
    if (!can("functions:invoke", name) && !can("settings:view")) return;
    try {
      draw(await api(`/functions/${encodeURIComponent(name)}/calls?limit=20`));
    } catch (e) {
      if (stopped) return;
      replace(box, h("h2", {}, "Asynchronous calls"), banner("error", e.message));
    }
    if (!stopped) timer = setTimeout(refresh, REFRESH_MS);
  }
  refresh();
  return {
    node: box,
    dispose() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
