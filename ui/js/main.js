/**
 * The F2S console's entry point: learns the auth mode, shows who is signed in, and maps
 * the URL's hash (`#/functions/hello`) to a screen. Each screen is a module in views/ with
 * `render(ctx)` → `{title, node}`; `ctx.onDispose` registers what to stop when the user
 * leaves (polling timers, metric subscriptions).
 */

import { send } from "./api.js";
import { banner, h, replace } from "./dom.js";
import { createMetricsPoller } from "./metrics.js";
import {
  canSome,
  needsSignIn,
  onSessionChange,
  session,
  signOut,
  startSession,
} from "./session.js";
import * as detailView from "./views/detail.js";
import * as formView from "./views/form.js";
import * as invokeView from "./views/invoke.js";
import * as listView from "./views/list.js";
import * as settingsView from "./views/settings.js";
import * as signinView from "./views/signin.js";

const ROUTES = [
  [/^\/?$/, listView],
  [/^\/functions\/?$/, listView],
  [/^\/new$/, formView],
  [/^\/functions\/([^/]+)\/edit$/, formView],
  [/^\/functions\/([^/]+)\/invoke$/, invokeView],
  [/^\/functions\/([^/]+)$/, detailView],
  [/^\/settings$/, settingsView],
];

const poller = createMetricsPoller({
  load: async () => {
    const res = await send("/metrics");
    if (!res.ok) throw new Error(`GET /metrics answered ${res.status}`);
    return await res.text();
  },
});

const main = document.getElementById("main");
const disposers = [];
let signinNotice;
let firstRender = true;

function navigate(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

function dispose() {
  for (const fn of disposers.splice(0)) {
    try {
      fn();
    } catch (e) {
      console.error("leaving a screen failed", e);
    }
  }
}

function render() {
  dispose();
  renderHeader();
  const ctx = { navigate, poller, onDispose: (fn) => disposers.push(fn), params: [] };
  let view;
  if (needsSignIn()) {
    view = signinView.render({ ...ctx, notice: signinNotice });
  } else {
    const path = decodeURI(location.hash.replace(/^#/, ""));
    const route = ROUTES.find(([re]) => re.test(path));
    if (route) {
      ctx.params = route[0].exec(path).slice(1);
      ctx.path = path;
      view = route[1].render(ctx);
    } else {
      view = {
        title: "Page not found",
        node: h(
          "section",
          {},
          h("h1", { tabindex: "-1" }, "Page not found"),
          banner(
            "error",
            `There is no screen at "${path}". `,
            h("a", { href: "#/functions" }, "Go to the functions."),
          ),
        ),
      };
    }
  }
  document.title = `${view.title} · F2S`;
  replace(main, view.node);
  markNav();
  // Screen-reader users hear the new screen's heading; skip it on first load.
  if (!firstRender) main.querySelector("h1")?.focus({ preventScroll: false });
  firstRender = false;
}

function renderHeader() {
  const user = document.getElementById("user");
  const nav = document.getElementById("nav");
  nav.hidden = needsSignIn();
  document.getElementById("nav-settings").parentElement.hidden = !canSome("settings:view");
  if (session.type === "none") {
    replace(user, h("span", { class: "who" }, "No sign-in needed (auth mode none)"));
  } else if (session.me) {
    const me = session.me;
    replace(
      user,
      h(
        "span",
        { class: "who" },
        "Signed in as ",
        h("strong", { id: "whoami" }, me.name),
        me.group ? ` (${me.group})` : "",
      ),
      h("button", { type: "button", class: "link", onclick: () => signOut() }, "Sign out"),
    );
  } else {
    replace(user);
  }
}

function markNav() {
  const path = location.hash.replace(/^#\/?/, "");
  for (const a of document.querySelectorAll("#nav a")) {
    const current = a.dataset.nav === "settings"
      ? path.startsWith("settings")
      : !path.startsWith("settings");
    if (current) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

async function start() {
  try {
    await startSession();
  } catch (e) {
    replace(
      main,
      h("h1", {}, "F2S"),
      banner(
        "error",
        e?.message ?? String(e),
        " ",
        h("button", { type: "button", onclick: () => location.reload() }, "Try again"),
      ),
    );
    return;
  }
  onSessionChange((reason) => {
    signinNotice = reason === "expired"
      ? "Your sign-in is no longer valid (it expired or was changed). Please sign in again."
      : reason === "signout"
      ? "You are signed out."
      : undefined;
    render();
  });
  addEventListener("hashchange", render);
  render();
}

start();
