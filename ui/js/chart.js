/**
 * Hand-written SVG line charts for the function detail screen: a time window ending now,
 * one or more series of `{t, v}` points, gaps where a value is missing, and a text summary
 * for screen readers (the chart is an image with a label).
 */

import { h, svg } from "./dom.js";

const WIDTH = 400, HEIGHT = 150;
const PAD = { left: 54, right: 10, top: 10, bottom: 22 };

/**
 * A `<figure>` with the chart. `series`: `[{label, points: [{t, v}], style, step?}]`
 * (style is a CSS class: s1, s2); `format(v)` writes a value with its unit.
 */
export function lineChart({ id, title, series, windowMs, now, format, floor = 1 }) {
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const start = now - windowMs;
  const values = series.flatMap((s) =>
    s.points.filter((p) => p.t >= start && Number.isFinite(p.v)).map((p) => p.v)
  );
  const peak = values.length > 0 ? Math.max(...values) : 0;
  const top = niceCeil(Math.max(peak, floor));
  const x = (t) => PAD.left + ((t - start) / windowMs) * plotW;
  const y = (v) => PAD.top + plotH - (v / top) * plotH;

  const grid = [0, top / 2, top].map((v) =>
    svg(
      "g",
      { class: "grid" },
      svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(v), y2: y(v) }),
      svg(
        "text",
        { x: PAD.left - 6, y: y(v) + 4, "text-anchor": "end" },
        v === 0 ? "0" : format(v, true),
      ),
    )
  );
  const minutes = Math.round(windowMs / 60_000);
  const step = windowMs <= 60_000 ? 15_000 : windowMs <= 120_000 ? 30_000 : 60_000;
  const ticks = [];
  for (let ago = Math.floor(windowMs / step) * step; ago >= 0; ago -= step) {
    const anchor = ago === windowMs ? "start" : ago === 0 ? "end" : "middle";
    const label = ago === 0 ? "now" : step < 60_000 ? `−${ago / 1000} s` : `−${ago / 60_000} min`;
    ticks.push(svg("text", { x: x(now - ago), y: HEIGHT - 6, "text-anchor": anchor }, label));
  }
  const lines = series.map((s) =>
    svg("path", { class: `line ${s.style}`, d: pathOf(s.points, start, x, y, s.step) })
  );

  const first = series[0];
  const visible = first.points.filter((p) => p.t >= start && Number.isFinite(p.v));
  const latest = visible.length > 0 ? visible[visible.length - 1].v : undefined;
  const firstPeak = visible.length > 0 ? Math.max(...visible.map((p) => p.v)) : 0;
  const summary = latest === undefined
    ? `${title}: no data yet`
    : `${title}: now ${format(latest)}, highest ${format(firstPeak)} in the last ${
      minutes === 1 ? "minute" : `${minutes} minutes`
    }`;

  return h(
    "figure",
    {
      class: "chart",
      id,
      dataset: { latest: latest ?? "", max: firstPeak, points: visible.length },
    },
    h(
      "figcaption",
      {},
      h("span", { class: "chart-title" }, title),
      h("span", { class: "chart-now" }, latest === undefined ? "no data yet" : format(latest)),
    ),
    svg(
      "svg",
      {
        viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
        role: "img",
        "aria-label": summary,
        preserveAspectRatio: "xMidYMid meet",
      },
      svg("title", {}, summary),
      grid,
      svg("g", { class: "ticks" }, ticks),
      lines,
    ),
    series.length > 1
      ? h(
        "ul",
        { class: "legend" },
        series.map((s) => h("li", { class: s.style }, h("span", { class: "swatch" }), s.label)),
      )
      : null,
  );
}

/**
 * An SVG path through the points, broken where a value is missing. A point with no
 * neighbour gets a dot (a zero-length segment with round caps), or it would not show.
 */
function pathOf(points, start, x, y, step) {
  let d = "";
  let run = 0;
  const endRun = () => {
    if (run === 1) d += "h0.01";
    run = 0;
  };
  for (const p of points) {
    if (p.t < start || !Number.isFinite(p.v)) {
      endRun();
      continue;
    }
    const px = x(p.t).toFixed(1), py = y(p.v).toFixed(1);
    if (run === 0) d += `M${px},${py}`;
    else if (step) d += `H${px}V${py}`;
    else d += `L${px},${py}`;
    run++;
  }
  endRun();
  return d;
}

/** The smallest of 1, 2, 5 × 10^n at or above `v`, so the axis and its half stay round. */
export function niceCeil(v) {
  if (!(v > 0)) return 1;
  const exp = Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) {
    const c = m * 10 ** exp;
    if (c >= v - 1e-12) return c;
  }
  return 10 ** (exp + 1);
}
