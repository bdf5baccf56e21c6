// The hall view: windows and posts as a grid (在岗/离岗), queue per service, zones
// (people, 环境好/差), devices, open 异常办件 and today's alert timeline; live.
import { openAlert, openCase } from "./alert_detail.js";
import { h, fill, keepFocus } from "./dom.js";
import { duration, clock, isoDay, secondsSince } from "./format.js";
import { label, t } from "./i18n.js";
import { loadToday, store, WAIT_LIMIT_S, OPEN_CASE_STATES } from "./store.js";
import { renderTimeline } from "./timeline.js";

function postTile(hall, post) {
  const tz = hall.info.timezone;
  const cameraOff = post.camera_online === false || hall.info.edge_online === false;
  const state = post.state || "unknown";
  const cls = cameraOff ? "offline" : state === "on_post" ? "on" : state === "off_post" ? "off" : "unknown";
  const stateText = cameraOff ? `${t("post.camera_offline")} · ${t(`post.state.${state}`)}` : t(`post.state.${state}`);
  const since = post.since
    ? t("post.since", { time: clock(post.since, tz), duration: duration(secondsSince(post.since)) }) : "";
  const named = !post.window || post.name.includes(post.window);
  return h("div", { class: `post ${cls}${post.open_alert ? " alerting" : ""}`, dataset: { post: post.id, state: cls } },
    h("div", { class: "post-name" }, named ? post.name : `${post.name}（${post.window}）`),
    h("div", { class: "post-kind" }, label("post.kind.", post.kind)),
    h("div", { class: "post-state" }, stateText),
    h("div", { class: "post-since" }, since),
    post.last_call ? h("div", { class: "post-serving" }, t("post.serving", { ticket: post.last_call.ticket })) : null,
    post.open_alert ? h("button", {
      type: "button", class: "alert-button", dataset: { focus: `alert:${post.open_alert}` },
      onclick: () => openAlert(hall.info.id, post.open_alert),
    }, `⚠ ${t("post.alert")}`) : null);
}

function queueTable(hall) {
  const rows = [...hall.queues.values()].sort((a, b) => (a.service < b.service ? -1 : 1));
  if (!rows.length) return h("p", { class: "muted" }, t("queue.empty"));
  return h("table", { class: "data" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("queue.service")),
      h("th", { scope: "col", class: "num" }, t("queue.waiting")), h("th", { scope: "col", class: "num" }, t("queue.longest")))),
    h("tbody", {}, rows.map((q) => h("tr", { dataset: { service: q.service }, class: q.waiting && q.longest_wait_s >= WAIT_LIMIT_S ? "bad" : "" },
      h("th", { scope: "row" }, q.name ? `${q.name}（${q.service}）` : q.service),
      h("td", { class: "num" }, `${q.waiting}`),
      h("td", { class: "num" }, q.waiting ? duration(q.longest_wait_s) : "—")))));
}

function zoneTable(hall) {
  const zones = [...hall.zones.values()];
  if (!zones.length) return h("p", { class: "muted" }, t("zone.empty"));
  const alertButton = (id, text) => id
    ? h("button", { type: "button", class: "alert-button small", dataset: { focus: `alert:${id}` },
      onclick: () => openAlert(hall.info.id, id) }, `⚠ ${text}`) : null;
  return h("table", { class: "data" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("zone.name")),
      h("th", { scope: "col", class: "num" }, t("zone.people")), h("th", { scope: "col" }, t("zone.hygiene")))),
    h("tbody", {}, zones.map((z) => {
      const occ = z.occupancy;
      const bad = z.hygiene && z.hygiene.state === "bad";
      const people = occ ? `${occ.count}${occ.crowded ? ` · ${t("zone.crowded")}` : ""}` : t("zone.none");
      const hygiene = z.grades_hygiene ? t(bad ? "zone.hygiene.bad" : "zone.hygiene.good") : t("zone.none");
      return h("tr", { dataset: { zone: z.id } },
        h("th", { scope: "row" }, z.name, h("small", {}, ` ${label("zone.kind.", z.kind)}`)),
        h("td", { class: `num${occ && occ.crowded ? " bad" : ""}`, dataset: { field: "people" } }, people,
          alertButton(z.crowding_alert, t("alert.kind.crowding"))),
        h("td", { class: bad ? "bad" : "", dataset: { field: "hygiene" } }, hygiene,
          alertButton(z.hygiene_alert, t("alert.kind.hygiene_bad"))));
    })));
}

function deviceList(hall) {
  const devices = [...hall.devices.values()];
  if (!devices.length) return h("p", { class: "muted" }, t("device.empty"));
  return h("ul", { class: "devices" }, devices.map((d) => {
    const state = d.state || "unknown";
    return h("li", { class: `device ${state}`, dataset: { device: d.id } },
      h("span", { class: "dot", "aria-hidden": "true" }),
      h("span", { class: "device-name" }, d.name),
      h("small", {}, ` ${label("device.kind.", d.kind)} · ${t(`device.state.${state}`)}`
        + (d.since ? ` · ${clock(d.since, hall.info.timezone)}` : "") + (d.reason ? ` · ${d.reason}` : "")),
      d.open_alert ? h("button", { type: "button", class: "alert-button small", dataset: { focus: `alert:${d.open_alert}` },
        onclick: () => openAlert(hall.info.id, d.open_alert) },
        `⚠ ${t("alert.kind.device_offline")}`) : null);
  }));
}

function caseList(hall) {
  const open = [...hall.anomalies.values()].filter((a) => OPEN_CASE_STATES.includes(a.state))
    .sort((a, b) => (a.opened < b.opened ? 1 : -1));
  if (!open.length) return h("p", { class: "muted" }, "—");
  return h("ul", { class: "cases" }, open.slice(0, 50).map((a) => h("li", {},
    h("button", { type: "button", class: `case level-${a.level}`, dataset: { case: a.id, focus: `case:${a.id}` }, onclick: () => openCase(hall.info.id, a.id) },
      h("strong", {}, `【${label("level.", a.level)}】${label("alert.kind.", a.kind)}`),
      a.window ? ` · ${t("window.n", { n: a.window })}` : "",
      h("small", {}, ` ${label("case.state.", a.state)} · ${clock(a.opened, hall.info.timezone)}`),
      h("span", { class: "case-text" }, a.description || "")))));
}

function panel(id, titleKey, body) {
  return h("section", { class: `panel panel-${id}`, "aria-labelledby": `${id}-title` },
    h("h2", { id: `${id}-title` }, t(titleKey)), body);
}

/** The hall view of hallId: mount(root) renders it and keeps it live; returns unmount(). */
export function mountHall(root, hallId, subscribe) {
  const hall = store.halls.get(hallId);
  if (!hall) {
    fill(root, h("p", { class: "muted" }, t("overview.empty")));
    return () => {};
  }
  const body = h("div", { class: "hall-grid" });
  root.append(body);

  function render() {
    keepFocus(body, draw);
  }

  function draw() {
    const s = hall.info;
    const posts = h("div", { class: "post-grid" }, [...hall.posts.values()].map((p) => postTile(hall, p)));
    fill(body,
      panel("posts", "section.posts", posts),
      h("div", { class: "side" },
        panel("queue", "section.queue", queueTable(hall)),
        panel("zones", "section.zones", zoneTable(hall)),
        panel("devices", "section.devices", deviceList(hall))),
      panel("timeline", "section.timeline", renderTimeline(hall)),
      panel("cases", "section.anomalies", caseList(hall)));
    body.dataset.hall = s.id;
  }

  render();
  loadToday(hallId).catch(console.error);
  return subscribe((change) => {
    if (change.type === "tick" && hall.today && isoDay(new Date(), hall.info.timezone) !== hall.today) {
      loadToday(hallId).catch(console.error); // a new day in the hall: a new timeline
    }
    if ((change.type === "hall" && change.hall === hallId) || change.type === "halls" || change.type === "tick") render();
  });
}
