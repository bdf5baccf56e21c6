// Small SVG charts (no library): lines and stacked bars over time buckets, with a y axis,
// hall-local time ticks, an optional reference line, a legend and the data as a table.
import { h, s } from "./dom.js";
import { locale, t } from "./i18n.js";

const W = 800;
const H = 260;
const M = { left: 52, right: 12, top: 12, bottom: 30 };

const TICKS = 4;

/** The top of a y axis at or above v whose TICKS steps are round (1, 2, 2.5, 5 × 10^n),
 * at least one per step: niceMax(31) = 40, niceMax(14) = 20, niceMax(0) = 4. */
export function niceMax(v) {
  const raw = Math.max(v, 0) / TICKS;
  if (raw <= 1) return TICKS;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= raw) return m * p * TICKS;
  return 10 * p * TICKS;
}

function tickLabel(iso, size, tz) {
  const opts = size === "day" ? { month: "2-digit", day: "2-digit" } : { hour: "2-digit", minute: "2-digit", hour12: false };
  return new Intl.DateTimeFormat(locale(), { timeZone: tz, ...opts }).format(new Date(iso));
}

function frame(buckets, size, tz, top) {
  const n = Math.max(1, buckets.length);
  const band = (W - M.left - M.right) / n;
  const y = (v) => M.top + (1 - v / top) * (H - M.top - M.bottom);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img" });
  for (let i = 0; i <= TICKS; i++) {
    const v = (top * i) / TICKS;
    svg.append(s("line", { x1: M.left, x2: W - M.right, y1: y(v), y2: y(v), class: "grid" }),
      s("text", { x: M.left - 6, y: y(v) + 4, class: "tick", "text-anchor": "end" }, Number.isInteger(v) ? v : v.toFixed(1)));
  }
  const every = Math.ceil(n / 12);
  buckets.forEach((b, i) => {
    if (i % every) return;
    svg.append(s("text", { x: M.left + i * band, y: H - 10, class: "tick" }, tickLabel(b, size, tz)));
  });
  return { svg, band, y, x: (i) => M.left + (i + 0.5) * band };
}

function legend(items) {
  return h("ul", { class: "legend" }, items.map((it) => h("li", {},
    h("span", { class: `key ${it.cls}`, "aria-hidden": "true" }), it.label)));
}

function table(buckets, size, tz, series) {
  return h("details", { class: "chart-table" }, h("summary", {}, t("charts.table")),
    h("table", { class: "data" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("charts.time")), series.map((sr) => h("th", { scope: "col", class: "num" }, sr.label)))),
      h("tbody", {}, buckets.map((b, i) => h("tr", {}, h("th", { scope: "row" }, tickLabel(b, size, tz)),
        series.map((sr) => h("td", { class: "num" }, sr.values[i] ?? "—")))))));
}

function maxOf(values) {
  return values.reduce((m, v) => (v === null || v === undefined ? m : Math.max(m, v)), 0);
}

/** Lines: series [{label, values, cls}], ref {value, label} (a dashed reference line). */
export function lineChart({ title, buckets, size, tz, series, ref }) {
  const top = niceMax(Math.max(...series.map((sr) => maxOf(sr.values)), ref ? ref.value : 0));
  const f = frame(buckets, size, tz, top);
  f.svg.setAttribute("aria-label", title);
  if (ref) {
    f.svg.append(s("line", { x1: M.left, x2: W - M.right, y1: f.y(ref.value), y2: f.y(ref.value), class: "ref" }));
  }
  for (const sr of series) {
    let d = "";
    let pen = false;
    sr.values.forEach((v, i) => {
      if (v === null || v === undefined) {
        pen = false;
        return;
      }
      d += `${pen ? "L" : "M"}${f.x(i).toFixed(1)},${f.y(v).toFixed(1)}`;
      pen = true;
      f.svg.append(s("circle", { cx: f.x(i), cy: f.y(v), r: 3, class: `point ${sr.cls}` }, s("title", {}, `${sr.label}: ${v}`)));
    });
    if (d) f.svg.prepend(s("path", { d, class: `line ${sr.cls}` }));
  }
  const keys = [...series, ...(ref ? [{ label: `${ref.label} ${ref.value}`, cls: "ref" }] : [])];
  return [f.svg, legend(keys), table(buckets, size, tz, series)];
}

/** Stacked bars: stacks [{label, values, cls}], bottom first. */
export function barChart({ title, buckets, size, tz, stacks }) {
  const totals = buckets.map((_, i) => stacks.reduce((sum, st) => sum + (st.values[i] || 0), 0));
  const f = frame(buckets, size, tz, niceMax(maxOf(totals)));
  f.svg.setAttribute("aria-label", title);
  const width = Math.max(2, f.band * 0.7);
  buckets.forEach((_, i) => {
    let base = 0;
    for (const st of stacks) {
      const v = st.values[i];
      if (!v) continue;
      const y0 = f.y(base);
      const y1 = f.y(base + v);
      f.svg.append(s("rect", { x: f.x(i) - width / 2, y: y1, width, height: Math.max(1, y0 - y1), class: `bar ${st.cls}` },
        s("title", {}, `${st.label}: ${v}`)));
      base += v;
    }
  });
  return [f.svg, legend(stacks), table(buckets, size, tz, stacks)];
}
