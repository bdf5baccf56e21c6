// The dashboard's state: every visible hall with its posts, devices, queues, zones,
// open 异常办件 and today's alerts; loaded from the REST routes, kept live by the SSE
// events (live.js calls applyEvent). Views subscribe() and re-render what changed.
import { getJson, hallPath } from "./api.js";
import { isoDay, zonedMidnight } from "./format.js";

export const WAIT_LIMIT_S = 30 * 60; // 窗口等待时间 limit (the hall's own is not in the API)
export const OPEN_CASE_STATES = ["open", "appealed", "upheld"]; // not rectified, closed, overturned
export const ALERT_KINDS = new Set(["off_post", "device_offline", "hygiene_bad", "crowding"]);

export const store = { me: null, halls: new Map(), conn: "wait" };
const listeners = new Set();

/** Call fn(change) on every change; change = {type, hall?}. Returns an unsubscribe. */
export function subscribe(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function emit(change) {
  for (const fn of [...listeners]) {
    try {
      fn(change);
    } catch (err) {
      console.error(err);
    }
  }
}

function byId(items, key = "id") {
  return new Map(items.map((item) => [item[key], item]));
}

function newHall(info) {
  return {
    info, posts: new Map(), devices: new Map(), queues: new Map(), zones: new Map(),
    anomalies: new Map(), alerts: new Map(), todayCases: new Map(), today: null,
  };
}

/** Load every visible hall (summary, posts, devices, queue, zones, open cases). */
export async function loadAll() {
  const list = await getJson("/api/v1/halls");
  const seen = new Set();
  await Promise.all(list.map(async (info) => {
    seen.add(info.id);
    const hall = store.halls.get(info.id) || newHall(info);
    hall.info = info;
    store.halls.set(info.id, hall);
    await loadHall(hall);
  }));
  for (const id of [...store.halls.keys()]) if (!seen.has(id)) store.halls.delete(id);
  emit({ type: "halls" });
}

async function loadHall(hall) {
  const id = hall.info.id;
  const cases = OPEN_CASE_STATES.map((s) => getJson(`${hallPath(id, "anomalies")}?state=${s}&limit=500`));
  const [posts, devices, queues, zones, ...pages] = await Promise.all([
    getJson(hallPath(id, "posts")), getJson(hallPath(id, "devices")), getJson(hallPath(id, "queue")),
    getJson(hallPath(id, "zones")), ...cases,
  ]);
  hall.posts = byId(posts);
  hall.devices = byId(devices);
  hall.queues = byId(queues, "service");
  hall.zones = byId(zones);
  hall.anomalies = byId(pages.flatMap((p) => p.items));
}

/** Today's alerts and 异常办件 of a hall (hall-local day), plus alerts still open. */
export async function loadToday(hallId) {
  const hall = store.halls.get(hallId);
  if (!hall) return;
  const day = isoDay(new Date(), hall.info.timezone);
  const since = zonedMidnight(day, hall.info.timezone).toISOString();
  const q = (params) => new URLSearchParams({ hall: hallId, limit: "500", ...params }).toString();
  const [today, open, cases] = await Promise.all([
    getJson(`/api/v1/alerts?${q({ since })}`),
    getJson(`/api/v1/alerts?${q({ state: "open" })}`),
    getJson(`${hallPath(hallId, "anomalies")}?${new URLSearchParams({ since, limit: "500" })}`),
  ]);
  hall.alerts = new Map();
  for (const a of [...today.items, ...open.items]) if (ALERT_KINDS.has(a.kind)) hall.alerts.set(a.id, a);
  hall.todayCases = byId(cases.items);
  hall.today = day;
  emit({ type: "hall", hall: hallId });
}

/** Figures of a hall's overview tile, and its colour (ok, warn, alarm). */
export function summarize(hall) {
  const posts = [...hall.posts.values()];
  const cameraOff = (p) => p.camera_online === false || hall.info.edge_online === false;
  const on = posts.filter((p) => p.state === "on_post" && !cameraOff(p)).length;
  const off = posts.filter((p) => p.state === "off_post" && !cameraOff(p)).length;
  const queues = [...hall.queues.values()];
  const cases = [...hall.anomalies.values()].filter((a) => OPEN_CASE_STATES.includes(a.state));
  const zones = [...hall.zones.values()];
  const s = {
    posts: posts.length, on, off, unknown: posts.length - on - off,
    offAlerts: posts.filter((p) => p.open_alert).length,
    longestWaitS: queues.reduce((m, q) => Math.max(m, q.waiting ? q.longest_wait_s : 0), 0),
    waiting: queues.reduce((n, q) => n + q.waiting, 0),
    cases: cases.length, redCards: cases.filter((a) => a.level === "red").length,
    hygieneBad: zones.filter((z) => z.hygiene && z.hygiene.state === "bad").length,
    crowded: zones.filter((z) => z.occupancy && z.occupancy.crowded).length,
    devicesOffline: [...hall.devices.values()].filter((d) => d.state === "offline").length,
  };
  const alarm = s.offAlerts || s.redCards || s.longestWaitS >= WAIT_LIMIT_S || hall.info.edge_online === false;
  const warn = s.off || s.cases || s.hygieneBad || s.crowded || s.devicesOffline;
  s.level = alarm ? "alarm" : warn ? "warn" : "ok";
  return s;
}

function onPresence(hall, d) {
  const post = hall.posts.get(d.post);
  if (!post) return;
  Object.assign(post, { state: d.state, since: d.since, window: d.window || post.window });
  post.last_report = new Date().toISOString();
}

function onDevice(hall, d) {
  const device = hall.devices.get(d.device) || { id: d.device, name: d.device, configured: false };
  Object.assign(device, { kind: d.kind, state: d.state, since: d.since, reason: d.reason || "" });
  hall.devices.set(d.device, device);
  for (const post of hall.posts.values()) {
    if (d.kind === "camera" && post.camera === d.device) post.camera_online = d.state === "online";
  }
}

function onEdge(hall, d) {
  const edges = (hall.info.edges || []).filter((e) => e.source !== d.source);
  edges.push({ source: d.source, state: d.state, ts: d.ts });
  hall.info.edges = edges;
  hall.info.edge_online = edges.every((e) => e.state === "online");
}

function onAlert(hall, d) {
  const known = hall.alerts.get(d.id);
  const alert = Object.assign(known || {}, d, { hall: hall.info.id });
  delete alert.action;
  const open = alert.state === "open" ? alert.id : null;
  if (ALERT_KINDS.has(alert.kind)) hall.alerts.set(alert.id, alert);
  else if (hall.anomalies.has(alert.id) && d.acknowledged_by !== undefined) {
    Object.assign(hall.anomalies.get(alert.id), { acknowledged_by: d.acknowledged_by });
  }
  if (alert.kind === "off_post" && hall.posts.has(alert.post)) hall.posts.get(alert.post).open_alert = open;
  if (alert.kind === "device_offline" && hall.devices.has(alert.device)) {
    hall.devices.get(alert.device).open_alert = open;
  }
  const zone = alert.zone && hall.zones.get(alert.zone);
  if (zone && alert.kind === "hygiene_bad") zone.hygiene_alert = open;
  if (zone && alert.kind === "crowding") zone.crowding_alert = open;
}

function onAnomaly(hall, d) {
  const merged = Object.assign(hall.anomalies.get(d.id) || hall.todayCases.get(d.id) || {}, d);
  if (OPEN_CASE_STATES.includes(merged.state)) hall.anomalies.set(d.id, merged);
  else hall.anomalies.delete(d.id);
  if (hall.today && isoDay(new Date(merged.opened), hall.info.timezone) === hall.today) {
    hall.todayCases.set(d.id, merged);
  }
}

function onQueue(hall, d) {
  for (const q of d.services) hall.queues.set(q.service, Object.assign(hall.queues.get(q.service) || {}, q));
}

function onHygiene(hall, d) {
  const zone = hall.zones.get(d.zone);
  if (zone) zone.hygiene = Object.assign(zone.hygiene || {}, { state: d.state, since: d.since, score: d.score });
}

function onOccupancy(hall, d) {
  const zone = hall.zones.get(d.zone);
  if (!zone) return;
  const was = zone.occupancy || {};
  zone.occupancy = Object.assign(was, { count: d.count, peak: d.peak, crowded: d.crowded, at: d.at });
}

const HANDLERS = {
  presence: onPresence, device: onDevice, edge: onEdge, alert: onAlert, anomaly: onAnomaly,
  queue: onQueue, hygiene: onHygiene, occupancy: onOccupancy,
};
export const EVENT_TYPES = Object.keys(HANDLERS);

/** Apply one live event (type, parsed data) and tell the views. */
export function applyEvent(type, data) {
  const hall = store.halls.get(data.hall);
  const handler = HANDLERS[type];
  if (!hall || !handler) return;
  handler(hall, data);
  emit({ type: "hall", hall: hall.info.id, event: type });
}
