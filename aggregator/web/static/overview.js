// The overview (总览): one tile per visible hall, colour-coded, live.
import { h, fill } from "./dom.js";
import { t } from "./i18n.js";
import { store, summarize, WAIT_LIMIT_S } from "./store.js";

function figure(metric, value, labelKey, bad, { unit, extra } = {}) {
  return h("div", { class: `figure${bad ? " bad" : ""}`, dataset: { metric } },
    h("span", { class: "number" }, h("span", { class: "value" }, value), unit ? h("span", { class: "unit" }, unit) : null),
    h("span", { class: "label" }, t(labelKey), extra ? h("small", {}, extra) : null));
}

function postClass(hall, post) {
  if (post.camera_online === false || hall.info.edge_online === false) return "offline";
  return post.state === "on_post" ? "on" : post.state === "off_post" ? "off" : "unknown";
}

function tileBody(hall) {
  const info = hall.info;
  const s = summarize(hall);
  const edge = info.edge_online === false ? "hall.edge.offline" : info.edge_online ? "hall.edge.online" : "hall.edge.unknown";
  const waitMin = Math.floor(s.longestWaitS / 60);
  const strip = h("div", { class: "post-strip", "aria-hidden": "true" },
    [...hall.posts.values()].map((p) => h("span", { class: `dot ${postClass(hall, p)}`, title: p.name })));
  return [
    h("div", { class: "tile-head" },
      h("h2", { class: "hall-name" }, info.name),
      h("span", { class: "meta" }, `${t(info.in_service ? "hall.in_service" : "hall.out_of_service")} · ${t(edge)}`)),
    h("div", { class: "staffing" },
      figure("on_post", s.on, "tile.on_post", false),
      figure("off_post", s.off, "tile.off_post", s.off > 0),
      figure("unknown", s.unknown, "tile.unknown", false)),
    strip,
    h("div", { class: "figures" },
      figure("longest_wait", `${waitMin}`, "tile.longest_wait", s.longestWaitS >= WAIT_LIMIT_S,
        { unit: t("unit.min"), extra: ` · ${t("tile.waiting", { n: s.waiting })}` }),
      figure("anomalies", s.cases, "tile.anomalies", s.cases > 0),
      figure("red_cards", s.redCards, "tile.red_cards", s.redCards > 0),
      figure("off_alerts", s.offAlerts, "tile.off_alerts", s.offAlerts > 0),
      figure("hygiene", s.hygieneBad, "tile.hygiene", s.hygieneBad > 0),
      figure("devices", s.devicesOffline, "tile.devices", s.devicesOffline > 0)),
  ];
}

/** The overview view: mount(root) renders it and keeps it live; returns unmount(). */
export function mountOverview(root, subscribe) {
  const grid = h("section", { class: "tiles", "aria-labelledby": "overview-heading" });
  fill(root, h("h1", { id: "overview-heading", class: "view-title" }, t("overview.heading")), grid);
  const tiles = new Map();

  function renderTile(id) {
    const hall = store.halls.get(id);
    if (!hall) return;
    let tile = tiles.get(id);
    if (!tile) {
      tile = h("a", { class: "hall-tile", href: `#/hall/${encodeURIComponent(id)}`, dataset: { hall: id } });
      tiles.set(id, tile);
    }
    const s = summarize(hall);
    tile.className = `hall-tile level-${s.level}`;
    tile.dataset.level = s.level;
    tile.setAttribute("aria-label", t("tile.open", { name: hall.info.name }));
    fill(tile, ...tileBody(hall));
  }

  function renderAll() {
    const ids = [...store.halls.keys()].sort((a, b) =>
      store.halls.get(a).info.name.localeCompare(store.halls.get(b).info.name, "zh-CN"));
    for (const id of ids) renderTile(id);
    for (const id of [...tiles.keys()]) if (!store.halls.has(id)) tiles.delete(id);
    fill(grid, ...ids.map((id) => tiles.get(id)));
    if (!ids.length) grid.append(h("p", { class: "muted" }, t("overview.empty")));
  }

  renderAll();
  return subscribe((change) => {
    if (change.type === "hall" && tiles.has(change.hall)) renderTile(change.hall);
    else if (change.type === "halls" || change.type === "lang" || change.type === "tick") renderAll();
  });
}
