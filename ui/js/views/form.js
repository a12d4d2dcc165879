/**
 * Create and edit a function through a form. While the user types, the API validates the
 * manifest with a dry run (the same validator and conflict checks as a write) and its
 * field errors appear beside the fields; the YAML it would store is shown, ready to copy
 * or download for GitOps.
 */

import { api, ApiError } from "../api.js";
import { announce, banner, debounce, h, replace, uid } from "../dom.js";
import {
  emptyForm,
  formToManifest,
  labelOf,
  manifestToForm,
  METHODS,
  placeErrors,
  SECTIONS,
} from "../manifest.js";
import { notAllowedMessage } from "../privileges.js";
import { can } from "../session.js";

const VALIDATE_DELAY_MS = 350;

export function render(ctx) {
  const editing = ctx.params[0];
  const title = editing ? `Edit ${editing}` : "Create a function";
  const head = h(
    "h1",
    { tabindex: "-1" },
    editing ? `Edit function "${editing}"` : "Create a function",
  );
  const allowed = editing ? can("functions:update", editing) : can("functions:create");
  if (!allowed) {
    const privilege = editing ? "functions:update" : "functions:create";
    return {
      title,
      node: h(
        "section",
        {},
        head,
        banner(
          "error",
          notAllowedMessage(privilege, editing),
          " ",
          h("a", { href: "#/functions" }, "Back to the functions"),
        ),
      ),
    };
  }

  const form = emptyForm();
  let base; // the stored manifest when editing: keeps fields the form does not show
  const touched = new Set();
  let submitted = false;
  let placed = { fields: {}, env: {}, other: [] };
  let lastYaml = "";
  let generalError;
  let seq = 0;
  let inflight;

  const controls = new Map(); // path → {input, error}
  const summary = h("div", { class: "error-summary", tabindex: "-1", hidden: true });
  const status = h("div", { class: "form-status", "aria-live": "polite" });
  const envList = h("div", { class: "env-rows" });
  const yamlCode = h("code", {});
  const yamlNote = h("p", { class: "muted small", id: "yaml-note" });
  const copyButton = h(
    "button",
    { type: "button", id: "copy-yaml", onclick: copyYaml },
    "Copy YAML",
  );
  const downloadButton = h(
    "button",
    { type: "button", id: "download-yaml", onclick: downloadYaml },
    "Download YAML",
  );
  const submitButton = h(
    "button",
    { type: "submit", class: "primary", id: "save-function" },
    editing ? "Save changes" : "Create function",
  );

  function fieldControl(f) {
    const id = `field-${f.path.replaceAll(".", "-")}`;
    const helpId = f.help ? `${id}-help` : undefined;
    const errorId = `${id}-error`;
    const common = {
      id,
      name: f.path,
      "data-path": f.path,
      "aria-describedby": [helpId, errorId].filter(Boolean).join(" "),
      oninput: () => changed(f.path),
      onchange: () => changed(f.path),
    };
    let input;
    if (f.kind === "method") {
      input = h(
        "select",
        common,
        METHODS.map((m) => h("option", { value: m }, m === "ANY" ? "ANY (every method)" : m)),
      );
    } else {
      input = h("input", {
        ...common,
        type: "text",
        placeholder: f.placeholder,
        inputmode: f.kind === "int" || f.kind === "number" ? "decimal" : undefined,
        autocomplete: "off",
        spellcheck: "false",
        "aria-required": f.required ? "true" : undefined,
        readonly: editing && f.path === "metadata.name" ? true : undefined,
      });
    }
    const error = h("p", { class: "field-error", id: errorId, hidden: true });
    controls.set(f.path, { input, error });
    return h(
      "div",
      { class: "field" },
      h(
        "label",
        { for: id },
        f.label,
        f.required ? h("span", { class: "required", "aria-hidden": "true" }, " *") : null,
      ),
      input,
      f.help ? h("p", { class: "help", id: helpId }, f.help) : null,
      error,
    );
  }

  function fieldset(section) {
    // Inside a <details> the summary already shows the title; the legend still names the
    // group for screen readers.
    return h(
      "fieldset",
      { class: `section-${section.id}` },
      h("legend", { class: section.advanced ? "visually-hidden" : undefined }, section.title),
      h("div", { class: "grid" }, section.fields.map(fieldControl)),
    );
  }

  const envFieldset = h(
    "fieldset",
    { class: "section-env" },
    h("legend", {}, "Environment variables"),
    envList,
    h(
      "button",
      { type: "button", class: "small", id: "add-env", onclick: () => addEnvRow() },
      "Add variable",
    ),
  );

  function drawEnv(focusIndex, focusPart = "name") {
    replace(
      envList,
      form.env.length === 0
        ? h("p", { class: "muted small" }, "None. Variables are passed to the function's process.")
        : null,
      form.env.map((row, i) => {
        const n = i + 1;
        const errors = shouldShow("env") ? placed.env[i] ?? {} : {};
        const errorText = [
          ...(errors.name ?? []).map((m) => `Name ${m}`),
          ...(errors.value ?? []).map((m) => `Value ${m}`),
        ];
        const errorId = uid("env-error");
        const name = h("input", {
          type: "text",
          value: row.name,
          "aria-label": `Name of variable ${n}`,
          placeholder: "NAME",
          spellcheck: "false",
          autocomplete: "off",
          class: "env-name",
          "aria-invalid": errors.name ? "true" : undefined,
          "aria-describedby": errorText.length ? errorId : undefined,
          oninput: (ev) => {
            row.name = ev.target.value;
            changed("env");
          },
        });
        const value = h("input", {
          type: "text",
          value: row.value,
          "aria-label": `Value of variable ${n}`,
          placeholder: "value",
          spellcheck: "false",
          autocomplete: "off",
          class: "env-value",
          "aria-invalid": errors.value ? "true" : undefined,
          oninput: (ev) => {
            row.value = ev.target.value;
            changed("env");
          },
        });
        const remove = h("button", {
          type: "button",
          class: "small",
          "aria-label": `Remove variable ${n}`,
          onclick: () => {
            form.env.splice(i, 1);
            drawEnv(Math.min(i, form.env.length - 1));
            changed("env");
            if (form.env.length === 0) envFieldset.querySelector("#add-env").focus();
          },
        }, "Remove");
        const el = h(
          "div",
          { class: "env-row" },
          name,
          h("span", { "aria-hidden": "true" }, "="),
          value,
          remove,
          errorText.length
            ? h("p", { class: "field-error", id: errorId }, errorText.join("; "))
            : null,
        );
        if (focusIndex === i) queueMicrotask(() => (focusPart === "name" ? name : value).focus());
        return el;
      }),
    );
  }

  function addEnvRow() {
    form.env.push({ name: "", value: "" });
    drawEnv(form.env.length - 1);
  }

  const advanced = h(
    "details",
    { class: "advanced", id: "advanced-settings" },
    h("summary", {}, "Advanced settings (port, scaling, timeouts, resources)"),
    fieldset(SECTIONS.find((s) => s.id === "advanced")),
  );
  const local = h(
    "details",
    { class: "advanced", id: "local-runtime" },
    h("summary", {}, "Local runtime (f2s dev)"),
    h(
      "p",
      { class: "muted small" },
      "Only used when F2S runs on one machine with f2s dev; ignored on Kubernetes.",
    ),
    fieldset(SECTIONS.find((s) => s.id === "local")),
  );

  const formEl = h(
    "form",
    { class: "function-form", novalidate: true, onsubmit: submit, "aria-labelledby": "form-title" },
    summary,
    fieldset(SECTIONS.find((s) => s.id === "basics")),
    fieldset(SECTIONS.find((s) => s.id === "instances")),
    envFieldset,
    advanced,
    local,
    status,
    h(
      "div",
      { class: "form-actions" },
      submitButton,
      h("a", {
        class: "button",
        href: editing ? `#/functions/${encodeURIComponent(editing)}` : "#/functions",
      }, "Cancel"),
    ),
  );
  head.id = "form-title";

  const preview = h(
    "section",
    { class: "yaml-preview card", "aria-labelledby": "yaml-title" },
    h("h2", { id: "yaml-title" }, "Manifest (YAML)"),
    yamlNote,
    h("pre", {
      id: "yaml-preview",
      hidden: true,
      tabindex: "0",
      "aria-label": "Manifest in YAML",
      "aria-describedby": "yaml-note",
    }, yamlCode),
    h("div", { class: "row" }, copyButton, downloadButton),
    h(
      "p",
      { class: "muted small" },
      "Keep it in your repository to manage the function with GitOps, or apply it with ",
      h("code", {}, "f2s fn apply"),
      ".",
    ),
  );

  function readForm() {
    for (const [path, { input }] of controls) form.values[path] = input.value;
    return form;
  }

  function writeForm() {
    for (const [path, { input }] of controls) input.value = form.values[path] ?? "";
    drawEnv();
  }

  function shouldShow(path) {
    return submitted || touched.has(path);
  }

  function showErrors() {
    let anyAdvanced = false;
    for (const [path, { input, error }] of controls) {
      const messages = shouldShow(path) ? placed.fields[path] ?? [] : [];
      error.hidden = messages.length === 0;
      error.textContent = messages.join("; ");
      if (messages.length) {
        input.setAttribute("aria-invalid", "true");
        if (advanced.contains(input)) anyAdvanced = true;
        if (local.contains(input)) local.open = true;
      } else input.removeAttribute("aria-invalid");
    }
    if (anyAdvanced) advanced.open = true;
    drawEnvErrors();
    const other = placed.other;
    const visible = submitted ? allErrors() : other.map((e) => ({ ...e, target: undefined }));
    if (visible.length === 0 && !generalError) {
      summary.hidden = true;
      replace(summary);
      return;
    }
    summary.hidden = false;
    replace(
      summary,
      generalError ? h("p", { role: "alert" }, generalError) : null,
      visible.length
        ? [
          h(
            "p",
            { class: "summary-title" },
            submitted ? "Please fix these fields:" : "The manifest has problems:",
          ),
          h(
            "ul",
            {},
            visible.map((e) =>
              h(
                "li",
                {},
                e.target
                  ? h("a", {
                    href: `#${e.target.id}`,
                    onclick: (ev) => {
                      ev.preventDefault();
                      e.target.focus();
                    },
                  }, labelOf(e.path))
                  : h("code", {}, e.path || "manifest"),
                `: ${e.message}`,
              )
            ),
          ),
        ]
        : null,
    );
  }

  // The env rows redraw only when the set of messages changes, so typing keeps focus.
  let envErrorKey = "";
  function drawEnvErrors() {
    const key = shouldShow("env") ? JSON.stringify(placed.env) : "";
    if (key === envErrorKey) return;
    envErrorKey = key;
    const active = document.activeElement;
    const rows = [...envList.querySelectorAll(".env-row")];
    const index = rows.findIndex((r) => r.contains(active));
    const part = active?.classList?.contains("env-value") ? "value" : "name";
    drawEnv(index >= 0 ? index : undefined, part);
  }

  function allErrors() {
    const out = [];
    for (const [path, messages] of Object.entries(placed.fields)) {
      for (const message of messages) {
        out.push({ path, message, target: controls.get(path)?.input });
      }
    }
    for (const [row, parts] of Object.entries(placed.env)) {
      const inputs = envList.querySelectorAll(".env-row")[row]?.querySelectorAll("input");
      for (const [part, messages] of Object.entries(parts)) {
        for (const message of messages) {
          out.push({
            path: `target.env[${row}].${part}`,
            message: `variable ${Number(row) + 1} ${part} ${message}`,
            target: inputs?.[part === "name" ? 0 : 1],
          });
        }
      }
    }
    for (const e of placed.other) out.push({ ...e, target: undefined });
    return out;
  }

  function showYaml(text, fresh) {
    if (text !== undefined) lastYaml = text;
    yamlCode.textContent = lastYaml || "";
    yamlCode.parentElement.hidden = !lastYaml;
    preview.classList.toggle("stale", !fresh);
    yamlNote.textContent = fresh
      ? "Valid. This is exactly what F2S will store."
      : lastYaml
      ? "Showing the last valid version: fix the problems in the form to update it."
      : "The manifest appears here once the required fields are valid.";
    copyButton.disabled = !lastYaml;
    downloadButton.disabled = !lastYaml;
  }

  /** Puts the API's answer to a (dry-run) write onto the form. */
  function applyFailure(e, envRows) {
    generalError = undefined;
    // 400: invalid fields; 403: fields this user may not set (target.local needs functions:local).
    if (
      e instanceof ApiError && (e.status === 400 || e.status === 403) && e.fieldErrors.length > 0
    ) {
      placed = placeErrors(e.fieldErrors, envRows);
    } else if (e instanceof ApiError && e.status === 409) {
      const path = /already exists/.test(e.body?.error ?? "") ? "metadata.name" : "spec.endpoint";
      placed = placeErrors([{ path, message: e.body?.error ?? e.message }], envRows);
      touched.add(path);
    } else {
      placed = { fields: {}, env: {}, other: [] };
      generalError = e.message;
    }
  }

  const dryRunPath = editing
    ? `/functions/${encodeURIComponent(editing)}?dryRun=true`
    : "/functions?dryRun=true";

  async function validate() {
    const { manifest, envRows } = formToManifest(readForm(), base);
    const mine = ++seq;
    inflight?.abort();
    inflight = new AbortController();
    try {
      const yaml = await api(dryRunPath, {
        method: editing ? "PUT" : "POST",
        body: manifest,
        accept: "application/yaml",
        signal: inflight.signal,
      });
      if (mine !== seq) return;
      placed = { fields: {}, env: {}, other: [] };
      generalError = undefined;
      showYaml(yaml, true);
    } catch (e) {
      if (e?.name === "AbortError" || mine !== seq) return;
      applyFailure(e, envRows);
      showYaml(undefined, false);
    }
    showErrors();
    formEl.dataset.validated = String(mine);
  }
  const validateSoon = debounce(validate, VALIDATE_DELAY_MS);

  function changed(path) {
    touched.add(path);
    formEl.dataset.validated = "";
    validateSoon();
  }

  async function submit(ev) {
    ev.preventDefault();
    validateSoon.cancel();
    submitted = true;
    submitButton.disabled = true;
    replace(status, banner("info", editing ? "Saving…" : "Creating…"));
    const { manifest, envRows } = formToManifest(readForm(), base);
    ++seq; // answers to earlier dry runs no longer matter
    try {
      const saved = await api(
        editing ? `/functions/${encodeURIComponent(editing)}` : "/functions",
        {
          method: editing ? "PUT" : "POST",
          body: manifest,
        },
      );
      const name = saved?.metadata?.name ?? manifest.metadata.name;
      announce(editing ? `Function ${name} saved.` : `Function ${name} created.`);
      ctx.navigate(`#/functions/${encodeURIComponent(name)}`);
      return;
    } catch (e) {
      applyFailure(e, envRows);
      replace(status);
      showErrors();
      summary.focus();
    } finally {
      submitButton.disabled = false;
    }
  }

  async function copyYaml() {
    try {
      await navigator.clipboard.writeText(lastYaml);
      replace(status, banner("info", "The YAML manifest is copied to the clipboard."));
    } catch {
      // No clipboard permission (e.g. plain http on another host): select it for Ctrl+C.
      const range = document.createRange();
      range.selectNodeContents(yamlCode);
      getSelection()?.removeAllRanges();
      getSelection()?.addRange(range);
      replace(status, banner("info", "The manifest is selected: press Ctrl+C (⌘C) to copy it."));
    }
  }

  function downloadYaml() {
    const name = (form.values["metadata.name"] || "function").replace(/[^a-z0-9-]/g, "") ||
      "function";
    const url = URL.createObjectURL(new Blob([lastYaml], { type: "application/yaml" }));
    const a = h("a", { href: url, download: `${name}.yaml`, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }

  ctx.onDispose(() => {
    validateSoon.cancel();
    inflight?.abort();
    seq++;
  });

  const node = h(
    "section",
    { class: "form-page" },
    h("div", { class: "page-head" }, head),
    h(
      "p",
      { class: "muted" },
      editing
        ? "Changes apply when you save: instances restart with the new settings."
        : "Fill in the basics; everything else has sensible defaults. The form checks each field with the control plane as you type.",
    ),
    h("div", { class: "form-layout" }, formEl, preview),
  );

  writeForm();
  showYaml(undefined, false);
  // f2s dev runs functions as local processes: offer the local runtime part up front.
  fetch("/health", { credentials: "omit" }).then((r) => r.json()).then((health) => {
    if (health?.runtime === "local" && !editing) local.open = true;
  }).catch(() => {});
  if (editing) {
    // Until the stored manifest arrives the form is inert, so nothing typed is overwritten.
    replace(status, banner("info", "Loading…"));
    formEl.setAttribute("aria-busy", "true");
    formEl.inert = true;
    api(`/functions/${encodeURIComponent(editing)}`).then((m) => {
      formEl.removeAttribute("aria-busy");
      formEl.inert = false;
      base = m;
      Object.assign(form, manifestToForm(m));
      writeForm();
      if (form.values["target.local.command"] || form.values["target.local.dir"]) local.open = true;
      replace(status);
      validate();
    }).catch((e) => replace(status, banner("error", e.message)));
  }
  return { title, node };
}
