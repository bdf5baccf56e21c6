// Today's alerts of a hall: lanes per kind on the day's time axis (SVG), and the same
// alerts as a list of buttons (newest first) that open each alert's evidence and facts.
import { openAlert, openCase } from "./alert_detail.js";
import { h, s } from "./dom.js";
import { clock, duration, secondsSince, zonedMidnight } from "./format.js";
import { label, t } from "./i18n.js";

const LANES = ["off_post", "device_offline", "hygiene_bad", "crowding", "anomaly"];
const W = 1000;
const LANE_H = 26;
const LEFT = 120;
const RIGHT = 30;
const TOP = 8;
const HOUR_MS = 3600e3;

function where(hall, a) {
  if (a.kind === "off_post") return (hall.posts.get(a.post) || {}).name || a.post || "";
  if (a.kind === "device_offline") return (hall.devices.get(a.device) || {}).name || a.device || "";
  if (a.zone) return (hall.zones.get(a.zone) || {}).name || a.zone;
  return a.window ? t("window.n", { n: a.window }) : "";
}

/** Today's items of a hall: alerts and 异常办件, as {id, lane, kind, start, end, open, text, open()}. */
function items(hall) {
  const out = [];
  for (const a of hall.alerts.values()) {
    out.push({
      id: a.id, lane: a.kind, start: a.start, end: a.end, open: a.state === "open",
      acknowledged: Boolean(a.acknowledged_by),
      text: `${label("alert.kind.", a.kind)} · ${where(hall, a)}`,
      show: () => openAlert(hall.info.id, a.id),
    });
  }
  for (const c of hall.todayCases.values()) {
    out.push({
      id: c.id, lane: "anomaly", start: c.opened, end: null, open: false, point: true, level: c.level,
      text: `【${label("level.", c.level)}】${label("alert.kind.", c.kind)}${c.window ? ` · ${t("window.n", { n: c.window })}` : ""}`,
      show: () => openCase(hall.info.id, c.id),
    });
  }
  return out.sort((a, b) => (a.start < b.start ? 1 : -1));
}

function axis(hall, list) {
  // the hours with something to show: from the earliest alert today (at least the last
  // three hours) to just after now, whole hours, within today
  const tz = hall.info.timezone;
  const day = hall.today || new Intl.DateTimeFormat("en-CA", { timeZone: tz }).format(new Date());
  const midnight = zonedMidnight(day, tz).getTime();
  const now = Date.now();
  let from = now - 3 * HOUR_MS;
  for (const it of list) from = Math.min(from, new Date(it.start).getTime());
  from = Math.max(midnight, midnight + Math.floor((from - midnight) / HOUR_MS) * HOUR_MS);
  const to = Math.min(midnight + 24 * HOUR_MS, midnight + Math.ceil((now + HOUR_MS / 4 - midnight) / HOUR_MS) * HOUR_MS);
  return { from, to, x: (ms) => LEFT + ((Math.min(Math.max(ms, from), to) - from) / (to - from)) * (W - LEFT - RIGHT) };
}

function chart(hall, list) {
  const ax = axis(hall, list);
  const height = TOP + LANES.length * LANE_H + 24;
  const svg = s("svg", { viewBox: `0 0 ${W} ${height}`, class: "timeline-chart", role: "img",
    "aria-label": t("section.timeline") });
  LANES.forEach((lane, i) => {
    const y = TOP + i * LANE_H;
    svg.append(s("text", { x: 4, y: y + LANE_H * 0.65, class: "lane-label" }, label("alert.kind.", lane)),
      s("line", { x1: LEFT, x2: W - RIGHT, y1: y + LANE_H, y2: y + LANE_H, class: "lane-line" }));
  });
  const step = (ax.to - ax.from) / HOUR_MS > 12 ? 2 * HOUR_MS : HOUR_MS;
  for (let ms = ax.from; ms <= ax.to; ms += step) {
    const x = ax.x(ms);
    svg.append(s("line", { x1: x, x2: x, y1: TOP, y2: TOP + LANES.length * LANE_H, class: "grid" }),
      s("text", { x, y: height - 6, class: "tick", "text-anchor": "middle" }, clock(new Date(ms).toISOString(), hall.info.timezone)));
  }
  const now = ax.x(Date.now());
  svg.append(s("line", { x1: now, x2: now, y1: TOP, y2: TOP + LANES.length * LANE_H, class: "now" }));
  for (const it of list) {
    const lane = LANES.indexOf(it.lane);
    if (lane < 0) continue;
    const y = TOP + lane * LANE_H + 5;
    const x1 = ax.x(new Date(it.start).getTime());
    const title = s("title", {}, `${clock(it.start, hall.info.timezone)} ${it.text}`);
    const mark = it.point
      ? s("circle", { cx: x1, cy: y + 8, r: 7, class: `mark case level-${it.level}` }, title)
      : s("rect", { x: x1, y, height: LANE_H - 10, rx: 3,
        width: Math.max(4, ax.x(it.end ? new Date(it.end).getTime() : Date.now()) - x1),
        class: `mark ${it.lane}${it.open ? " open" : ""}` }, title);
    mark.addEventListener("click", it.show);
    svg.append(mark);
  }
  return svg;
}

/** The timeline panel's content for a hall (its alerts must be loaded: loadToday). */
export function renderTimeline(hall) {
  const list = items(hall);
  const tz = hall.info.timezone;
  const entries = list.map((it) => {
    const span = it.end ? `${clock(it.start, tz)}–${clock(it.end, tz)}` : clock(it.start, tz);
    const state = it.point ? "" : t(it.open ? "alert.state.open" : "alert.state.resolved");
    const lasted = it.point ? "" : ` · ${t("alert.duration", { duration: duration(secondsSince(it.start, it.end)) })}`;
    return h("li", {},
      h("button", { type: "button", class: `timeline-item ${it.lane}${it.open ? " open" : ""}`,
        dataset: { alert: it.id, focus: `tl:${it.id}` }, onclick: it.show,
        "aria-label": t("alert.open_detail", { what: `${span} ${it.text}` }) },
      h("span", { class: "when" }, span),
      h("span", { class: "what" }, it.text),
      h("small", {}, `${state}${lasted}${it.acknowledged ? ` · ${t("alert.acknowledged")}` : ""}`)));
  });
  return h("div", { class: "timeline" }, chart(hall, list),
    entries.length ? h("ol", { class: "timeline-list" }, entries) : h("p", { class: "muted" }, t("alert.none_today")));
}
