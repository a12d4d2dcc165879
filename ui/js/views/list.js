/**
 * Functions list: every function the user may see with its endpoint, method, image,
 * ready/desired instances, invocations, error rate and last activity (from `/metrics`);
 * search, sort, and the actions the user's privileges allow.
 */

import { deleteFunction } from "../actions.js";
import { api } from "../api.js";
import { banner, h, replace, uid } from "../dom.js";
import { formatCount, formatPercent, timeAgo } from "../format.js";
import { can, canSome } from "../session.js";
import { instancesBadge } from "./status.js";

const STATE_KEY = "f2s.list";
const REFRESH_MS = 3000;

const COLUMNS = [
  { key: "name", label: "Name" },
  { key: "endpoint", label: "Endpoint" },
  { key: "method", label: "Method" },
  { key: "image", label: "Image" },
  { key: "instances", label: "Instances", numeric: true },
  { key: "invocations", label: "Invocations", numeric: true },
  { key: "errors", label: "Error rate", numeric: true },
  { key: "activity", label: "Last activity", numeric: true },
];

export function render(ctx) {
  const state = loadState();
  const status = h("div", { class: "form-status" });
  const count = h("p", { class: "muted count", role: "status" });
  const tableWrap = h("div", { class: "table-wrap" });
  let functions;
  let loadError;

  const search = h("input", {
    id: "function-search",
    type: "search",
    value: state.search,
    placeholder: "Name, endpoint, image…",
    autocomplete: "off",
    oninput: (ev) => {
      state.search = ev.target.value;
      saveState(state);
      draw();
    },
  });

  const createButton = can("functions:create")
    ? h("a", { class: "button primary", href: "#/new", id: "create-function" }, "Create function")
    : null;

  function rowsOf(list) {
    const q = state.search.trim().toLowerCase();
    const rows = list.map((m) => {
      const name = m.metadata.name;
      const stats = ctx.poller.latest(name);
      return {
        manifest: m,
        name,
        endpoint: m.spec.endpoint,
        method: m.spec.method,
        image: m.target.containerImage,
        description: m.spec.description ?? "",
        ready: m.status?.readyReplicas ?? 0,
        desired: m.status?.desiredReplicas ?? 0,
        invocations: stats?.invocations ?? 0,
        errors: stats && stats.invocations > 0 ? stats.errors / stats.invocations : undefined,
        activity: stats?.lastActivity !== undefined ? stats.lastActivity * 1000 : undefined,
      };
    }).filter((r) =>
      !q || [r.name, r.endpoint, r.image, r.description].some((t) => t.toLowerCase().includes(q))
    );
    const dir = state.dir === "desc" ? -1 : 1;
    const key = state.sort;
    const value = (r) => (key === "instances" ? r.ready : r[key]);
    rows.sort((a, b) => {
      const va = value(a), vb = value(b);
      if (va === vb) return a.name.localeCompare(b.name);
      if (va === undefined) return 1; // "never" and "–" stay last either way
      if (vb === undefined) return -1;
      return (typeof va === "string" ? va.localeCompare(vb) : va - vb) * dir;
    });
    return rows;
  }

  function header() {
    return h(
      "tr",
      {},
      COLUMNS.map((c) => {
        const active = state.sort === c.key;
        const sortLabel = active ? (state.dir === "asc" ? "ascending" : "descending") : undefined;
        return h(
          "th",
          { scope: "col", "aria-sort": sortLabel ?? "none", class: c.numeric ? "num" : "" },
          h(
            "button",
            {
              type: "button",
              class: "sort",
              "data-sort": c.key,
              onclick: () => {
                if (state.sort === c.key) state.dir = state.dir === "asc" ? "desc" : "asc";
                else [state.sort, state.dir] = [c.key, c.numeric ? "desc" : "asc"];
                saveState(state);
                draw(`sort:${c.key}`);
              },
            },
            c.label,
            h(
              "span",
              { class: "sort-mark", "aria-hidden": "true" },
              active ? (state.dir === "asc" ? "▲" : "▼") : "",
            ),
          ),
        );
      }),
      h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")),
    );
  }

  function row(r) {
    const name = r.name;
    const detail = `#/functions/${encodeURIComponent(name)}`;
    return h(
      "tr",
      { "data-name": name },
      h(
        "th",
        { scope: "row", "data-label": "Name" },
        h("a", { href: detail, class: "fn-name" }, name),
        r.description ? h("span", { class: "muted small desc" }, r.description) : null,
      ),
      h("td", { "data-label": "Endpoint" }, h("code", {}, r.endpoint)),
      h("td", { "data-label": "Method" }, r.method),
      h("td", { "data-label": "Image", class: "image" }, h("code", {}, breakable(r.image))),
      h("td", { "data-label": "Instances", class: "num" }, instancesBadge(r.ready, r.desired)),
      h("td", { "data-label": "Invocations", class: "num" }, formatCount(r.invocations)),
      h(
        "td",
        { "data-label": "Error rate", class: "num", title: "Share of 5xx answers" },
        formatPercent(r.errors),
      ),
      h("td", { "data-label": "Last activity", class: "num" }, timeAgo(r.activity)),
      h(
        "td",
        { class: "actions" },
        can("functions:invoke", name)
          ? h("a", {
            class: "button small",
            href: `${detail}/invoke`,
            "data-focus": `${name}:invoke`,
            "aria-label": `Invoke ${name}`,
          }, "Invoke")
          : null,
        can("functions:update", name)
          ? h("a", {
            class: "button small",
            href: `${detail}/edit`,
            "data-focus": `${name}:edit`,
            "aria-label": `Edit ${name}`,
          }, "Edit")
          : null,
        can("functions:delete", name)
          ? h(
            "button",
            {
              type: "button",
              class: "small danger-outline",
              "data-focus": `${name}:delete`,
              "aria-label": `Delete ${name}`,
              onclick: async () => {
                try {
                  if (await deleteFunction(name)) {
                    replace(status, banner("info", `Function "${name}" was deleted.`));
                    refresh();
                  }
                } catch (e) {
                  replace(status, banner("error", e.message));
                }
              },
            },
            "Delete",
          )
          : null,
      ),
    );
  }

  /** Redraws the table; keeps keyboard focus on the same control across redraws. */
  function draw(focusKey) {
    if (loadError) {
      replace(tableWrap, banner("error", loadError));
      count.textContent = "";
      return;
    }
    if (!functions) {
      replace(tableWrap, h("p", { class: "muted" }, "Loading functions…"));
      return;
    }
    const active = document.activeElement;
    const keep = focusKey ??
      (tableWrap.contains(active) ? active?.dataset?.focus ?? activeSortKey(active) : undefined);
    if (functions.length === 0) {
      replace(
        tableWrap,
        h(
          "div",
          { class: "empty card" },
          h("p", {}, "No functions yet."),
          can("functions:create")
            ? h(
              "p",
              {},
              h("a", { class: "button primary", href: "#/new" }, "Create your first function"),
            )
            : h("p", { class: "muted" }, "Functions you may see appear here."),
        ),
      );
      count.textContent = "No functions";
      return;
    }
    const rows = rowsOf(functions);
    const captionId = uid("caption");
    replace(
      tableWrap,
      h(
        "table",
        { class: "functions", "aria-describedby": captionId },
        h(
          "caption",
          { id: captionId, class: "visually-hidden" },
          "Functions; column headers sort the table",
        ),
        h("thead", {}, header()),
        h("tbody", {}, rows.map(row)),
      ),
      rows.length === 0
        ? h("p", { class: "muted" }, `No function matches "${state.search}".`)
        : null,
    );
    count.textContent = rows.length === functions.length
      ? `${functions.length} function${functions.length === 1 ? "" : "s"}`
      : `${rows.length} of ${functions.length} functions match`;
    if (keep) {
      const sel = keep.startsWith("sort:")
        ? `[data-sort="${keep.slice(5)}"]`
        : `[data-focus="${CSS.escape(keep)}"]`;
      tableWrap.querySelector(sel)?.focus();
    }
  }

  let timer;
  let stopped = false;
  async function refresh() {
    clearTimeout(timer);
    try {
      functions = await api("/functions");
      loadError = undefined;
    } catch (e) {
      loadError = e.message;
    }
    if (stopped) return;
    draw();
    timer = setTimeout(refresh, REFRESH_MS);
  }
  ctx.onDispose(() => {
    stopped = true;
    clearTimeout(timer);
  });
  ctx.onDispose(ctx.poller.subscribe(() => functions && draw()));
  refresh();
  draw();

  const node = h(
    "section",
    { class: "list" },
    h(
      "div",
      { class: "page-head" },
      h("h1", { tabindex: "-1" }, "Functions"),
      createButton,
    ),
    !canSome("functions:create") && !canSome("functions:update")
      ? h(
        "p",
        { class: "muted" },
        "You can look at functions here; your privileges do not include creating or changing them.",
      )
      : null,
    status,
    h(
      "div",
      { class: "toolbar" },
      h("label", { for: "function-search" }, "Search"),
      search,
      count,
    ),
    tableWrap,
  );
  return { title: "Functions", node };
}

/** The text with a line-break opportunity after each "/" (long image names wrap there). */
function breakable(text) {
  return text.split("/").flatMap((part, i) => (i === 0 ? [part] : ["/", h("wbr"), part]));
}

function activeSortKey(el) {
  return el?.dataset?.sort ? `sort:${el.dataset.sort}` : undefined;
}

function loadState() {
  try {
    const s = JSON.parse(sessionStorage.getItem(STATE_KEY) ?? "{}");
    return {
      search: typeof s.search === "string" ? s.search : "",
      sort: COLUMNS.some((c) => c.key === s.sort) ? s.sort : "name",
      dir: s.dir === "desc" ? "desc" : "asc",
    };
  } catch {
    return { search: "", sort: "name", dir: "asc" };
  }
}

function saveState(state) {
  sessionStorage.setItem(STATE_KEY, JSON.stringify(state));
}
