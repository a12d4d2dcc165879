/**
 * Sign-in screen: username and password (basic mode, or token mode's `/auth/signin`), or
 * an access token (token and oidc modes). Mode `none` never shows it.
 */

import { ApiError } from "../api.js";
import { banner, h, replace } from "../dom.js";
import { session, signIn, useToken } from "../session.js";

export function render(ctx) {
  const status = h("div", { class: "form-status", "aria-live": "polite" });
  if (ctx.notice) replace(status, banner("info", ctx.notice));
  const withPassword = session.type === "basic" || session.signin;
  const withToken = session.type === "token" || session.type === "oidc";

  async function attempt(form, run) {
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    replace(status, banner("info", "Signing in…"));
    try {
      await run();
      // main.js re-renders on the session change.
    } catch (e) {
      replace(status, banner("error", wordsFor(e)));
      button.disabled = false;
      form.querySelector("input, textarea")?.focus();
    }
  }

  const passwordForm = withPassword
    ? h(
      "form",
      {
        class: "stack",
        "aria-labelledby": "signin-title",
        onsubmit: (ev) => {
          ev.preventDefault();
          const f = ev.currentTarget;
          attempt(f, () => signIn(f.username.value.trim(), f.password.value));
        },
      },
      h(
        "div",
        { class: "field" },
        h("label", { for: "signin-username" }, "Username"),
        h("input", {
          id: "signin-username",
          name: "username",
          autocomplete: "username",
          required: true,
          autocapitalize: "none",
          spellcheck: "false",
        }),
      ),
      h(
        "div",
        { class: "field" },
        h("label", { for: "signin-password" }, "Password"),
        h("input", {
          id: "signin-password",
          name: "password",
          type: "password",
          autocomplete: "current-password",
          required: true,
        }),
      ),
      h("button", { type: "submit", class: "primary" }, "Sign in"),
    )
    : null;

  const tokenForm = withToken
    ? h(
      "form",
      {
        class: "stack",
        onsubmit: (ev) => {
          ev.preventDefault();
          const f = ev.currentTarget;
          attempt(f, () => useToken(f.token.value));
        },
      },
      h(
        "div",
        { class: "field" },
        h("label", { for: "signin-token" }, "Access token"),
        h("textarea", {
          id: "signin-token",
          name: "token",
          rows: "3",
          required: true,
          spellcheck: "false",
          "aria-describedby": "signin-token-help",
        }),
        h(
          "p",
          { class: "help", id: "signin-token-help" },
          session.type === "oidc"
            ? "A bearer token from your identity provider."
            : "A bearer token (JWT) made for this server.",
        ),
      ),
      h("button", { type: "submit", class: withPassword ? "" : "primary" }, "Use token"),
    )
    : null;

  const node = h(
    "section",
    { class: "signin card" },
    h("h1", { id: "signin-title", tabindex: "-1" }, "Sign in to F2S"),
    h(
      "p",
      { class: "muted" },
      `This control plane uses ${describeMode()}. Your sign-in is kept in this browser tab only.`,
    ),
    status,
    passwordForm,
    withPassword && tokenForm
      ? h(
        "details",
        { class: "token-details" },
        h("summary", {}, "Use an access token instead"),
        tokenForm,
      )
      : tokenForm,
  );
  queueMicrotask(() => node.querySelector("input, textarea")?.focus());
  return { title: "Sign in", node };
}

function describeMode() {
  switch (session.type) {
    case "basic":
      return "username and password (basic authentication)";
    case "token":
      return session.signin ? "tokens, which you get by signing in" : "access tokens";
    case "oidc":
      return "access tokens from your identity provider";
    default:
      return `auth mode "${session.type}"`;
  }
}

function wordsFor(e) {
  if (e instanceof ApiError && e.status === 401) {
    const reason = e.body?.error ?? "";
    if (/username or password/i.test(reason)) {
      return "The username or password is not right. Check both and try again.";
    }
    return `This sign-in was refused: ${reason || "not authenticated"}.`;
  }
  return e?.message ?? String(e);
}
