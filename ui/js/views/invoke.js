/**
 * Invoke a function: method, path, headers and a body (checked as JSON while typing);
 * shows the answer's status, duration, headers and body, and keeps a short history of
 * calls in this browser tab.
 */

import { api, plainMessage, send } from "../api.js";
import { announce, banner, h, replace, uid } from "../dom.js";
import { clockTime, formatBytes, formatMs } from "../format.js";
import { METHODS } from "../manifest.js";
import { notAllowedMessage } from "../privileges.js";
import { can } from "../session.js";

const HISTORY_SIZE = 10;
const SHOWN_BODY_BYTES = 200_000;
const KEPT_BODY_BYTES = 20_000;

export function render(ctx) {
  const name = ctx.params[0];
  const self = `#/functions/${encodeURIComponent(name)}`;
  const head = h("h1", { tabindex: "-1" }, `Invoke "${name}"`);
  const crumbs = h(
    "p",
    { class: "crumbs" },
    h("a", { href: "#/functions" }, "Functions"),
    " / ",
    h("a", { href: self }, name),
    " / invoke",
  );
  if (!can("functions:invoke", name)) {
    return {
      title: `Invoke ${name}`,
      node: h(
        "section",
        {},
        crumbs,
        head,
        banner("error", notAllowedMessage("functions:invoke", name)),
      ),
    };
  }

  let fn;
  const status = h("div", { class: "form-status" });
  const methodSelect = h("select", { id: "invoke-method", name: "method", onchange: bodyAllowed });
  const prefix = h("span", { class: "prefix", id: "invoke-prefix" }, "/invoke/…");
  const pathInput = h("input", {
    id: "invoke-path",
    name: "path",
    type: "text",
    placeholder: "/optional/path?query=1",
    autocomplete: "off",
    spellcheck: "false",
    "aria-describedby": "invoke-prefix invoke-path-help",
  });
  const headersInput = h("textarea", {
    id: "invoke-headers",
    name: "headers",
    rows: "3",
    spellcheck: "false",
    placeholder: "X-Example: value",
    "aria-describedby": "invoke-headers-help invoke-headers-error",
    oninput: checkHeaders,
    onkeydown: sendOnCtrlEnter,
  });
  const headersError = h("p", { class: "field-error", id: "invoke-headers-error", hidden: true });
  const jsonToggle = h("input", {
    type: "checkbox",
    id: "invoke-json",
    checked: true,
    onchange: checkBody,
  });
  const bodyInput = h("textarea", {
    id: "invoke-body",
    name: "body",
    rows: "8",
    spellcheck: "false",
    class: "code",
    placeholder: '{"name": "F2S"}',
    "aria-describedby": "invoke-body-help invoke-body-error",
    oninput: checkBody,
    onkeydown: sendOnCtrlEnter,
  });
  const bodyError = h("p", { class: "field-error", id: "invoke-body-error", hidden: true });
  const bodyHelp = h(
    "p",
    { class: "help", id: "invoke-body-help" },
    "Sent as application/json unless a Content-Type header says otherwise.",
  );
  const formatButton = h("button", {
    type: "button",
    class: "small",
    id: "format-json",
    onclick: formatJson,
  }, "Format JSON");
  const sendButton = h(
    "button",
    { type: "submit", class: "primary", id: "invoke-send" },
    "Send request",
  );
  const result = h("section", {
    class: "invoke-result card",
    id: "invoke-result",
    "aria-labelledby": "invoke-result-title",
    hidden: true,
  });
  const historyBox = h("section", { class: "history", "aria-labelledby": "history-title" });

  function sendOnCtrlEnter(ev) {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      formEl.requestSubmit();
    }
  }

  function bodyAllowed() {
    const none = ["GET", "HEAD"].includes(methodSelect.value);
    bodyInput.disabled = none;
    formatButton.disabled = none;
    bodyHelp.textContent = none
      ? `${methodSelect.value} requests carry no body.`
      : "Sent as application/json unless a Content-Type header says otherwise.";
    checkBody();
  }

  /** The headers as pairs, or the problem with a line. */
  function parseHeaders() {
    const out = [];
    const lines = headersInput.value.split("\n");
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i].trim();
      if (!line) continue;
      const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*:\s*(.*)$/.exec(line);
      if (!m) return { error: `Line ${i + 1} is not "Name: value".` };
      out.push([m[1], m[2]]);
    }
    return { headers: out };
  }

  function checkHeaders() {
    const { error } = parseHeaders();
    headersError.hidden = !error;
    headersError.textContent = error ?? "";
    if (error) headersInput.setAttribute("aria-invalid", "true");
    else headersInput.removeAttribute("aria-invalid");
    return !error;
  }

  function checkBody() {
    let error;
    if (!bodyInput.disabled && jsonToggle.checked && bodyInput.value.trim() !== "") {
      try {
        JSON.parse(bodyInput.value);
      } catch (e) {
        error = `The body is not valid JSON: ${e.message}`;
      }
    }
    bodyError.hidden = !error;
    bodyError.textContent = error ?? "";
    if (error) bodyInput.setAttribute("aria-invalid", "true");
    else bodyInput.removeAttribute("aria-invalid");
    return !error;
  }

  function formatJson() {
    try {
      bodyInput.value = JSON.stringify(JSON.parse(bodyInput.value), null, 2);
      checkBody();
    } catch {
      checkBody();
      bodyInput.focus();
    }
  }

  async function invoke(ev) {
    ev.preventDefault();
    if (!fn) return;
    const headersOk = checkHeaders();
    const bodyOk = checkBody();
    if (!headersOk || !bodyOk) {
      (headersOk ? bodyInput : headersInput).focus();
      return;
    }
    const method = methodSelect.value;
    let path = pathInput.value.trim();
    if (path && !path.startsWith("/") && !path.startsWith("?")) path = `/${path}`;
    const { headers } = parseHeaders();
    const request = {
      method,
      path,
      headers,
      body: bodyInput.disabled ? "" : bodyInput.value,
      json: jsonToggle.checked,
    };
    const init = { method, headers: new Headers(headers) };
    if (!bodyInput.disabled && request.body !== "") {
      init.body = request.body;
      if (request.json && !init.headers.has("content-type")) {
        init.headers.set("content-type", "application/json");
      }
    }
    const url = `/invoke${fn.spec.endpoint}${path}`;
    sendButton.disabled = true;
    replace(status, banner("info", `Sending ${method} ${url}…`));
    const started = performance.now();
    let response;
    try {
      const res = await send(url, init);
      const bytes = new Uint8Array(await res.arrayBuffer());
      const ms = performance.now() - started;
      response = {
        status: res.status,
        statusText: res.statusText,
        ms,
        headers: [...res.headers],
        size: bytes.length,
        ...bodyText(bytes, res.headers.get("content-type") ?? ""),
      };
      replace(status);
    } catch (e) {
      response = {
        status: 0,
        ms: performance.now() - started,
        headers: [],
        size: 0,
        body: "",
        error: `No answer: ${e.message}. Is the control plane running?`,
      };
      replace(status);
    } finally {
      sendButton.disabled = false;
    }
    const entry = { time: new Date().toISOString(), request, response };
    showResult(entry);
    remember(entry);
    announce(
      response.status ? `Answer ${response.status} in ${formatMs(response.ms)}` : response.error,
    );
  }

  function showResult(entry) {
    const r = entry.response;
    const kind = r.status === 0
      ? "error"
      : r.status < 300
      ? "ok"
      : r.status < 500
      ? "warn"
      : "error";
    const requestId = r.headers.find(([k]) => k === "x-request-id")?.[1];
    const explanation = explain(r);
    result.hidden = false;
    replace(
      result,
      h("h2", { id: "invoke-result-title" }, "Answer"),
      h(
        "p",
        { class: "answer-line" },
        h(
          "span",
          { class: `status-code ${kind}`, id: "invoke-status" },
          r.status ? `${r.status} ${r.statusText || ""}`.trim() : "No answer",
        ),
        h("span", { id: "invoke-duration" }, formatMs(r.ms)),
        h("span", {}, formatBytes(r.size)),
        requestId
          ? h("span", { class: "muted small" }, "request id ", h("code", {}, requestId))
          : null,
      ),
      explanation
        ? banner(kind === "error" || kind === "warn" ? "error" : "info", explanation)
        : null,
      r.headers.length
        ? h(
          "details",
          { class: "answer-headers" },
          h("summary", {}, `Headers (${r.headers.length})`),
          h(
            "table",
            { class: "kv" },
            h(
              "tbody",
              {},
              r.headers.map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, v))),
            ),
          ),
        )
        : null,
      h("h3", {}, "Body"),
      h("pre", {
        class: "answer-body",
        id: "invoke-response-body",
        tabindex: "0",
        "aria-label": "Answer body",
      }, r.body || (r.size ? "" : "(empty)")),
      r.truncated
        ? h(
          "p",
          { class: "muted small" },
          "The body is cut short here; the full answer was longer.",
        )
        : null,
    );
  }

  function explain(r) {
    if (r.status === 0) return r.error;
    if (r.status === 401 || r.status === 403 || r.status >= 502) {
      try {
        const body = JSON.parse(r.body);
        if (body && typeof body.error === "string") return plainMessage(r.status, body);
      } catch {
        // the function's own answer: shown as it is
      }
    }
    return undefined;
  }

  // History of this tab's calls to the function, newest first.
  const historyKey = `f2s.invoke.${name}`;
  function history() {
    try {
      const v = JSON.parse(sessionStorage.getItem(historyKey) ?? "[]");
      return Array.isArray(v) ? v : [];
    } catch {
      return [];
    }
  }
  function remember(entry) {
    const list = [entry, ...history()].slice(0, HISTORY_SIZE);
    const kept = list.map((e) => ({
      ...e,
      response: {
        ...e.response,
        body: e.response.body?.slice(0, KEPT_BODY_BYTES),
        truncated: e.response.truncated || (e.response.body?.length ?? 0) > KEPT_BODY_BYTES,
      },
    }));
    try {
      sessionStorage.setItem(historyKey, JSON.stringify(kept));
    } catch {
      // storage full: the history is a convenience
    }
    drawHistory();
  }
  function restore(entry) {
    const r = entry.request;
    if ([...methodSelect.options].some((o) => o.value === r.method)) methodSelect.value = r.method;
    pathInput.value = r.path;
    headersInput.value = r.headers.map(([k, v]) => `${k}: ${v}`).join("\n");
    bodyInput.value = r.body;
    jsonToggle.checked = r.json;
    bodyAllowed();
    showResult(entry);
    methodSelect.focus();
  }
  function drawHistory() {
    const list = history();
    replace(
      historyBox,
      h("h2", { id: "history-title" }, "Recent calls"),
      list.length === 0
        ? h("p", { class: "muted" }, "Calls you make appear here (this tab only).")
        : h(
          "ol",
          { class: "history-list", id: "invoke-history" },
          list.map((e) =>
            h(
              "li",
              {},
              h(
                "button",
                {
                  type: "button",
                  class: "history-item",
                  onclick: () => restore(e),
                  "aria-label": `Show ${e.request.method} ${e.request.path || "/"}, answered ${
                    e.response.status || "nothing"
                  }, at ${clockTime(e.time)}`,
                },
                h("span", { class: "method" }, e.request.method),
                h("code", {}, e.request.path || "/"),
                h("span", {
                  class: `status-code ${
                    e.response.status >= 200 && e.response.status < 300 ? "ok" : "error"
                  }`,
                }, String(e.response.status || "–")),
                h(
                  "span",
                  { class: "muted small" },
                  `${formatMs(e.response.ms)} · ${clockTime(e.time)}`,
                ),
              ),
            )
          ),
        ),
      list.length
        ? h("button", {
          type: "button",
          class: "link small",
          onclick: () => {
            sessionStorage.removeItem(historyKey);
            drawHistory();
          },
        }, "Clear history")
        : null,
    );
  }

  const headersId = uid("headers-label");
  const formEl = h(
    "form",
    {
      class: "invoke-form card",
      onsubmit: invoke,
      "aria-labelledby": "invoke-request-title",
      novalidate: true,
    },
    h("h2", { id: "invoke-request-title" }, "Request"),
    h(
      "div",
      { class: "request-line" },
      h(
        "div",
        { class: "field method-field" },
        h("label", { for: "invoke-method" }, "Method"),
        methodSelect,
      ),
      h(
        "div",
        { class: "field path-field" },
        h("label", { for: "invoke-path" }, "Path and query"),
        h("div", { class: "with-prefix" }, prefix, pathInput),
        h(
          "p",
          { class: "help", id: "invoke-path-help" },
          "Optional: added after the function's endpoint.",
        ),
      ),
    ),
    h(
      "div",
      { class: "field" },
      h("label", { for: "invoke-headers", id: headersId }, "Headers"),
      headersInput,
      h("p", { class: "help", id: "invoke-headers-help" }, "One per line, as Name: value."),
      headersError,
    ),
    h(
      "div",
      { class: "field" },
      h("label", { for: "invoke-body" }, "Body"),
      bodyInput,
      h(
        "div",
        { class: "row" },
        h("label", { class: "check" }, jsonToggle, " Check the body as JSON"),
        formatButton,
      ),
      bodyHelp,
      bodyError,
    ),
    h(
      "div",
      { class: "form-actions" },
      sendButton,
      h("span", { class: "muted small" }, "Ctrl+Enter sends from the text boxes."),
    ),
  );

  api(`/functions/${encodeURIComponent(name)}`).then((m) => {
    fn = m;
    const methods = m.spec.method === "ANY"
      ? METHODS.filter((x) => x !== "ANY")
      : m.spec.method === "GET"
      ? ["GET", "HEAD"]
      : [m.spec.method];
    replace(methodSelect, methods.map((x) => h("option", { value: x }, x)));
    methodSelect.value = methods[0];
    prefix.textContent = `/invoke${m.spec.endpoint}`;
    bodyAllowed();
  }).catch((e) => replace(status, banner("error", e.message)));
  drawHistory();

  const node = h(
    "section",
    { class: "invoke" },
    crumbs,
    h("div", { class: "page-head" }, head),
    status,
    h("div", { class: "invoke-layout" }, h("div", { class: "stack" }, formEl, result), historyBox),
  );
  return { title: `Invoke ${name}`, node };
}

/** The body as text for display: pretty JSON, plain text, or a note for binary data. */
function bodyText(bytes, contentType) {
  const textual = bytes.length === 0 ||
    /json|text|xml|yaml|javascript|x-www-form-urlencoded/i.test(contentType);
  if (!textual) {
    return { body: `(${formatBytes(bytes.length)} of ${contentType || "binary data"}, not shown)` };
  }
  const shown = bytes.subarray(0, SHOWN_BODY_BYTES);
  let text = new TextDecoder().decode(shown);
  const truncated = bytes.length > SHOWN_BODY_BYTES;
  if (!truncated && /json/i.test(contentType)) {
    try {
      text = JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      // not JSON after all: show it as sent
    }
  }
  return { body: text, truncated };
}
