// The charts of a hall (图表): waits, people per zone, off-post minutes and ratings, for
// today, yesterday, the last 7 or 30 days or a chosen range, from /halls/{hall}/charts/*.
import { getJson, hallPath } from "./api.js";
import { h, fill, keepFocus } from "./dom.js";
import { dayOffset } from "./format.js";
import { t } from "./i18n.js";
import { store } from "./store.js";
import { barChart, lineChart } from "./svg.js";

const PRESETS = { today: [0, 1, "hour"], yesterday: [-1, 0, "hour"], week: [-6, 1, "day"], month: [-29, 1, "day"] };
const CHARTS = ["waits", "occupancy", "off_post", "ratings"];
const choice = { preset: "today", from: "", to: "", bucket: "auto" }; // kept across views
const cls = (i) => `s${(i % 6) + 1}`;

function range(tz) {
  if (choice.preset !== "custom") {
    const [a, b, size] = PRESETS[choice.preset];
    return { since: dayOffset(tz, a), until: dayOffset(tz, b), size, live: b === 1 };
  }
  const to = new Date(`${choice.to}T00:00:00Z`);
  to.setUTCDate(to.getUTCDate() + 1); // the "to" day is included
  const days = (to - new Date(`${choice.from}T00:00:00Z`)) / 864e5;
  return { since: choice.from, until: to.toISOString().slice(0, 10), size: days > 2 ? "day" : "hour", live: false };
}

function hasData(series) {
  return series.some((sr) => sr.values.some((v) => v !== null && v !== 0));
}

function seriesLabel(sr) {
  return sr.name ? `${sr.name} · ${t(`series.${sr.key}`)}` : t(`series.${sr.key}`);
}

function draw(name, c) {
  const common = { title: t(`charts.${name}`), buckets: c.buckets, size: c.bucket, tz: c.timezone };
  const pick = (key) => c.series.filter((sr) => sr.key === key);
  if (name === "waits") {
    const lines = ["longest_wait_min", "mean_wait_min"].flatMap(pick).map((sr, i) => ({ label: seriesLabel(sr), values: sr.values, cls: cls(i) }));
    return lineChart({ ...common, series: lines, ref: c.limit_min ? { value: c.limit_min, label: t("series.limit") } : null });
  }
  if (name === "occupancy") {
    return lineChart({ ...common, series: pick("peak").map((sr, i) => ({ label: sr.name, values: sr.values, cls: cls(i) })) });
  }
  if (name === "off_post") {
    const posts = c.series.filter((sr) => sr.subject && hasData([sr]));
    const stacks = posts.length ? posts.map((sr, i) => ({ label: sr.name, values: sr.values, cls: cls(i) }))
      : pick("off_post_min").map((sr) => ({ label: t("series.off_post_min"), values: sr.values, cls: "s1" }));
    return barChart({ ...common, stacks });
  }
  const [all] = pick("ratings");
  const [bad] = pick("bad");
  const good = all.values.map((v, i) => (v === null ? null : v - (bad.values[i] || 0)));
  return barChart({ ...common, stacks: [
    { label: t("series.good"), values: good, cls: "ok" }, { label: t("series.bad"), values: bad.values, cls: "bad" }] });
}

function subtitle(name, c) {
  if (name !== "ratings") return null;
  const [all] = c.series.filter((sr) => sr.key === "ratings");
  const [mean] = c.series.filter((sr) => sr.key === "mean_score");
  const n = all.values.reduce((a, v) => a + (v || 0), 0);
  const sum = mean.values.reduce((a, v, i) => a + (v || 0) * (all.values[i] || 0), 0);
  return n ? `${t("series.mean_score")} ${(sum / n).toFixed(2)} · ${t("series.ratings")} ${n}` : null;
}

function controls(onChange) {
  const presetButtons = ["today", "yesterday", "week", "month", "custom"].map((p) => h("button", {
    type: "button", class: "seg", "aria-pressed": String(choice.preset === p), dataset: { preset: p, focus: `preset:${p}` },
    onclick: () => { choice.preset = p; onChange(); },
  }, t(`charts.${p}`)));
  const from = h("input", { type: "date", value: choice.from, "aria-label": t("charts.from") });
  const to = h("input", { type: "date", value: choice.to, "aria-label": t("charts.to") });
  const custom = h("span", { class: "custom", hidden: choice.preset !== "custom" }, from, ` ${t("charts.to")} `, to,
    h("button", { type: "button", onclick: () => { choice.from = from.value; choice.to = to.value; if (from.value && to.value) onChange(); } }, t("charts.apply")));
  const bucket = h("select", { "aria-label": t("charts.bucket"), dataset: { focus: "bucket" }, onchange: (e) => { choice.bucket = e.target.value; onChange(); } },
    ["auto", "15min", "hour", "day"].map((b) => h("option", { value: b, selected: choice.bucket === b },
      b === "auto" ? `${t("charts.bucket")}: —` : t(`charts.bucket.${b}`))));
  return h("div", { class: "chart-controls", role: "group", "aria-label": t("charts.range") },
    h("span", { class: "seg-group" }, presetButtons), custom, bucket);
}

/** The charts view of hallId: mount(root); returns unmount(). */
export function mountCharts(root, hallId) {
  const hall = store.halls.get(hallId);
  if (!hall) return () => {};
  const tz = hall.info.timezone;
  const bar = h("div");
  const grid = h("div", { class: "chart-grid" });
  root.append(bar, grid);
  let timer = null;
  let generation = 0;

  async function load() {
    if (choice.preset === "custom" && (!choice.from || !choice.to)) {
      choice.from = choice.from || dayOffset(tz, -6);
      choice.to = choice.to || dayOffset(tz, 0);
    }
    keepFocus(bar, () => fill(bar, controls(load)));
    const r = range(tz);
    const size = choice.bucket === "auto" ? r.size : choice.bucket;
    const mine = ++generation;
    const params = new URLSearchParams({ since: r.since, until: r.until, bucket: size });
    const cards = CHARTS.map((name) => h("figure", { class: "panel chart-card", dataset: { chart: name } },
      h("figcaption", {}, h("h2", {}, t(`charts.${name}`)))));
    fill(grid, ...cards);
    await Promise.all(CHARTS.map(async (name, i) => {
      try {
        const c = await getJson(`${hallPath(hallId, "charts", name)}?${params}`);
        if (mine !== generation) return;
        const sub = subtitle(name, c);
        if (sub) cards[i].firstChild.append(h("p", { class: "muted" }, sub));
        cards[i].append(...draw(name, c));
        if (!hasData(c.series)) cards[i].append(h("p", { class: "muted nodata" }, t("charts.nodata")));
        cards[i].dataset.loaded = "true";
      } catch (err) {
        cards[i].append(h("p", { class: "error" }, t("load.failed", { detail: err.message })));
      }
    }));
    clearTimeout(timer);
    if (r.live) timer = setTimeout(() => mine === generation && load(), 60000);
  }

  load();
  return () => {
    generation++;
    clearTimeout(timer);
  };
}
