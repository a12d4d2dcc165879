/**
 * Small DOM helpers for the views: build elements from plain data (text always goes in as
 * text, never parsed as HTML), and announce changes to screen readers.
 */

const SVG_NS = "http://www.w3.org/2000/svg";

/**
 * An element: `h("button", { class: "primary", onclick }, "Save")`. Props starting with
 * "on" become listeners; `value`, `checked` and `disabled` are set as properties;
 * null/undefined/false props and children are skipped.
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  setProps(el, props);
  append(el, children);
  // Set after the children exist, so a <select> can pick one of its options.
  if (props && props.value !== undefined && props.value !== null) el.value = props.value;
  return el;
}

/** An SVG element with attributes (no listeners needed so far). */
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v !== undefined && v !== null && v !== false) el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function setProps(el, props) {
  for (const [k, v] of Object.entries(props ?? {})) {
    if (v === undefined || v === null || v === false || k === "value") continue;
    if (k.startsWith("on") && typeof v === "function") {
      el.addEventListener(k.slice(2), v);
    } else if (k === "class") {
      el.className = v;
    } else if (k === "dataset") {
      Object.assign(el.dataset, v);
    } else if (k === "checked" || k === "disabled" || k === "hidden") {
      el[k] = Boolean(v);
    } else {
      el.setAttribute(k, v === true ? "" : String(v));
    }
  }
}

/** Appends children, flattening arrays and skipping null/undefined/false. */
export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** Replaces the element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let ids = 0;
/** A document-unique id with a readable prefix (labels and aria-describedby need ids). */
export function uid(prefix) {
  return `${prefix}-${++ids}`;
}

/** Reads `message` to screen-reader users without moving focus. */
export function announce(message) {
  const region = document.getElementById("announcer");
  if (!region) return;
  region.textContent = "";
  // A fresh text node after a tick, so the same message twice is read twice.
  setTimeout(() => (region.textContent = message), 30);
}

/** Calls `fn` once `ms` have passed without another call; `cancel()` drops a pending call. */
export function debounce(fn, ms) {
  let timer;
  const wrapped = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  wrapped.cancel = () => clearTimeout(timer);
  return wrapped;
}

/** A message box; kind "error" is read out at once (role alert), others politely. */
export function banner(kind, ...children) {
  return h(
    "div",
    { class: `banner ${kind}`, role: kind === "error" ? "alert" : "status" },
    ...children,
  );
}
