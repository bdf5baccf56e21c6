// 电子监察 live page: initial state from the REST routes, updates from /api/v1/live (SSE).
"use strict";

const STATE_LABEL = { on_post: "在岗", off_post: "离岗" };
const halls = new Map(); // hall id -> {info, posts: Map(post id -> post), devices: Map(id -> device), el}
const alerts = new Map(); // off-post, device, hygiene and crowding alert id -> alert
const ALERT_LABEL = {
  off_post: "【离岗告警】", device_offline: "【设备离线】", hygiene_bad: "【环境差】", crowding: "【人员拥挤】",
};
const ALERT_KINDS = new Set(Object.keys(ALERT_LABEL)); // 异常办件 arrive as "anomaly" events
const anomalies = new Map(); // anomaly id -> anomaly (异常办件)
const WAIT_LIMIT_S = 30 * 60;
const KIND_LABEL = {
  wait_over_limit: "等待超时", trips_over_promise: "跑动超承诺", bad_rating: "差评",
  bad_attitude: "服务态度差", manual: "人工登记",
};
const CASE_STATE_LABEL = {
  open: "待整改", appealed: "申诉中", upheld: "申诉不成立", overturned: "申诉成立",
  rectified: "已整改", closed: "已办结",
};
const LEVEL_LABEL = { warning: "黄牌", red: "红牌" };

function fmtTime(iso, tz) {
  if (!iso) return "";
  const d = new Date(iso);
  return new Intl.DateTimeFormat("zh-CN", {
    timeZone: tz || undefined, month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  }).format(d);
}

function fmtDay(deadlineIso, tz) {
  // Deadlines are "end of day N" (hall-local midnight after it): show day N.
  const d = new Date(new Date(deadlineIso).getTime() - 1);
  return new Intl.DateTimeFormat("zh-CN", {
    timeZone: tz || undefined, year: "numeric", month: "2-digit", day: "2-digit",
  }).format(d) + " 日终";
}

function fmtDuration(fromIso) {
  if (!fromIso) return "";
  const s = Math.max(0, (Date.now() - new Date(fromIso).getTime()) / 1000);
  if (s < 60) return `${Math.floor(s)}秒`;
  if (s < 3600) return `${Math.floor(s / 60)}分钟`;
  return `${Math.floor(s / 3600)}小时${Math.floor((s % 3600) / 60)}分`;
}

async function getJson(url) {
  const r = await fetch(url, { headers: { Accept: "application/json" } });
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.json();
}

function tileClass(hall, post) {
  if (post.camera_online === false || hall.info.edge_online === false) return "offline";
  if (!post.state) return "unknown";
  return post.state === "on_post" ? "on" : "off";
}

function renderTile(hall, post) {
  let tile = post.el;
  if (!tile) {
    tile = document.createElement("div");
    tile.className = "tile";
    for (const cls of ["name", "state", "since"]) {
      const div = document.createElement("div");
      div.className = cls;
      tile.appendChild(div);
    }
    post.el = tile;
    hall.el.querySelector(".tiles").appendChild(tile);
  }
  const cls = tileClass(hall, post);
  tile.className = `tile ${cls}${post.open_alert ? " alerting" : ""}`;
  const named = !post.window || post.name.includes(post.window);
  tile.querySelector(".name").textContent = named ? post.name : `${post.name}（${post.window}号窗口）`;
  let label = post.state ? STATE_LABEL[post.state] : "未上报";
  if (cls === "offline") label = `摄像头离线 · ${label}`;
  tile.querySelector(".state").textContent = label;
  tile.querySelector(".since").textContent = post.since
    ? `自 ${fmtTime(post.since, hall.info.timezone)}（${fmtDuration(post.since)}）`
    : "";
  tile.title = `岗位 ${post.id} · 摄像头 ${post.camera}`;
}

function renderHall(hall) {
  if (!hall.el) {
    hall.el = document.getElementById("hall-tpl").content.firstElementChild.cloneNode(true);
    document.getElementById("halls").appendChild(hall.el);
  }
  const info = hall.info;
  hall.el.querySelector(".hall-name").textContent = info.name;
  const edge = info.edge_online === false ? "边缘节点离线" : info.edge_online ? "边缘节点在线" : "边缘节点未上报";
  const c = info.counts;
  hall.el.querySelector(".hall-meta").textContent =
    `${info.in_service ? "服务时间" : "非服务时间"} · ${edge} · 在岗 ${c.on_post} / 离岗 ${c.off_post} / 共 ${c.posts}`;
  for (const post of hall.posts.values()) renderTile(hall, post);
  renderQueues(hall);
  renderZones(hall);
}

function renderZones(hall) {
  const box = hall.el.querySelector(".zones");
  box.replaceChildren();
  for (const z of (hall.zones || new Map()).values()) {
    const chip = document.createElement("span");
    chip.dataset.zone = z.id;
    const parts = [];
    if (z.hygiene) parts.push(z.hygiene.state === "bad" ? "环境差" : "环境好");
    if (z.occupancy) parts.push(`${z.occupancy.count} 人`);
    if (!parts.length) continue;
    const bad = (z.hygiene && z.hygiene.state === "bad") || (z.occupancy && z.occupancy.crowded);
    chip.className = `zone${bad ? " over" : ""}`;
    chip.textContent = `${z.name} ${parts.join(" · ")}`;
    box.appendChild(chip);
  }
}

async function loadZones(hall) {
  try {
    const zones = await getJson(`/api/v1/halls/${encodeURIComponent(hall.info.id)}/zones`);
    hall.zones = new Map(zones.map((z) => [z.id, z]));
  } catch (err) {
    console.error(err);
  }
}

function renderQueues(hall) {
  const box = hall.el.querySelector(".queues");
  box.replaceChildren();
  const services = [...(hall.queues || new Map()).values()].sort((a, b) => (a.service < b.service ? -1 : 1));
  for (const q of services) {
    const chip = document.createElement("span");
    chip.className = `queue${q.longest_wait_s >= WAIT_LIMIT_S ? " over" : ""}`;
    chip.dataset.service = q.service;
    const wait = q.waiting ? ` · 最长 ${Math.floor(q.longest_wait_s / 60)} 分钟` : "";
    chip.textContent = `${q.name || q.service} 等候 ${q.waiting} 人${wait}`;
    box.appendChild(chip);
  }
}

function renderAnomalies() {
  const list = document.getElementById("anomalies");
  list.replaceChildren();
  const live = [...anomalies.values()].filter((a) => a.state !== "closed" && a.state !== "overturned");
  const sorted = live.sort((a, b) => (a.opened < b.opened ? 1 : -1)).slice(0, 100);
  for (const a of sorted) {
    const hall = halls.get(a.hall);
    const tz = hall ? hall.info.timezone : undefined;
    const li = document.createElement("li");
    li.className = `anomaly level-${a.level}`;
    li.dataset.id = a.id;
    li.dataset.kind = a.kind;
    const title = document.createElement("div");
    const where = a.window ? ` ${a.window}号窗口` : "";
    title.textContent = `【${LEVEL_LABEL[a.level] || a.level}】${KIND_LABEL[a.kind] || a.kind} · ${hall ? hall.info.name : a.hall}${where}`;
    const when = document.createElement("div");
    when.className = "when";
    const due = a.rectify_deadline ? ` · 整改期限 ${fmtDay(a.rectify_deadline, tz)}` : "";
    when.textContent = `${CASE_STATE_LABEL[a.state] || a.state} · ${fmtTime(a.opened, tz)}${due}`;
    const msg = document.createElement("div");
    msg.textContent = (a.description || "") + (a.case_no ? `（办件 ${a.case_no}）` : "");
    li.append(title, when, msg);
    list.appendChild(li);
  }
  const red = live.filter((a) => a.level === "red").length;
  document.getElementById("anomaly-count").textContent = live.length ? `${live.length} 件，红牌 ${red}` : "";
  document.getElementById("no-anomalies").hidden = live.length > 0;
}

function recount(hall) {
  const posts = [...hall.posts.values()];
  hall.info.counts.on_post = posts.filter((p) => p.state === "on_post").length;
  hall.info.counts.off_post = posts.filter((p) => p.state === "off_post").length;
}

function renderAlerts() {
  const list = document.getElementById("alerts");
  list.replaceChildren();
  const sorted = [...alerts.values()].sort((a, b) => (a.start < b.start ? 1 : -1)).slice(0, 100);
  for (const a of sorted) {
    const hall = halls.get(a.hall);
    const tz = hall ? hall.info.timezone : undefined;
    const post = hall && a.post ? hall.posts.get(a.post) : undefined;
    const device = hall && a.device && hall.devices ? hall.devices.get(a.device) : undefined;
    const isDevice = a.kind === "device_offline";
    const zone = hall && a.zone && hall.zones ? hall.zones.get(a.zone) : undefined;
    const li = document.createElement("li");
    li.className = a.state === "resolved" ? "resolved" : "open";
    li.dataset.kind = a.kind;
    const title = document.createElement("div");
    let where = post ? post.name : a.post || "";
    if (isDevice) where = device ? device.name : a.device || "";
    if (a.zone) where = zone ? zone.name : a.zone;
    const label = a.state === "resolved" ? "【已恢复】" : ALERT_LABEL[a.kind] || `【${a.kind}】`;
    title.textContent = `${label}${hall ? hall.info.name : a.hall} ${where}`;
    const when = document.createElement("div");
    when.className = "when";
    when.textContent = a.end
      ? `开始 ${fmtTime(a.start, tz)} · 结束 ${fmtTime(a.end, tz)}`
      : `开始 ${fmtTime(a.start, tz)} · 持续 ${fmtDuration(a.start)}`;
    const msg = document.createElement("div");
    msg.textContent = a.message || "";
    li.append(title, when, msg);
    if (a.evidence_url) {
      const link = document.createElement("a");
      link.href = a.evidence_url;
      link.target = "_blank";
      link.rel = "noopener";
      link.className = "evidence";
      link.textContent = "查看抓拍（已打码）";
      li.appendChild(link);
    }
    list.appendChild(li);
  }
  document.getElementById("no-alerts").hidden = alerts.size > 0;
}

async function loadAll() {
  const hallList = await getJson("/api/v1/halls");
  for (const info of hallList) {
    const hall = halls.get(info.id) || { posts: new Map(), el: null };
    hall.info = info;
    halls.set(info.id, hall);
    const posts = await getJson(`/api/v1/halls/${encodeURIComponent(info.id)}/posts`);
    for (const p of posts) {
      const old = hall.posts.get(p.id);
      hall.posts.set(p.id, Object.assign(old || {}, p));
    }
    const hallPath = `/api/v1/halls/${encodeURIComponent(info.id)}`;
    hall.devices = new Map((await getJson(`${hallPath}/devices`)).map((d) => [d.id, d]));
    hall.queues = new Map((await getJson(`${hallPath}/queue`)).map((q) => [q.service, q]));
    await loadZones(hall);
    const open = await getJson(`${hallPath}/anomalies?limit=200`);
    for (const a of open.items) anomalies.set(a.id, a);
    renderHall(hall);
  }
  const page = await getJson("/api/v1/alerts?limit=100");
  alerts.clear();
  for (const a of page.items) if (ALERT_KINDS.has(a.kind)) alerts.set(a.id, a);
  renderAlerts();
  renderAnomalies();
}

function onPresence(ev) {
  const d = JSON.parse(ev.data);
  const hall = halls.get(d.hall);
  const post = hall && hall.posts.get(d.post);
  if (!post) return;
  Object.assign(post, { state: d.state, since: d.since, window: d.window || post.window });
  recount(hall);
  renderHall(hall);
}

function onDevice(ev) {
  const d = JSON.parse(ev.data);
  const hall = halls.get(d.hall);
  if (!hall) return;
  hall.devices = hall.devices || new Map();
  const device = hall.devices.get(d.device) || { id: d.device, name: d.device };
  hall.devices.set(d.device, Object.assign(device, { kind: d.kind, state: d.state, since: d.since, reason: d.reason }));
  for (const post of hall.posts.values()) {
    if (d.kind === "camera" && post.camera === d.device) post.camera_online = d.state === "online";
  }
  renderHall(hall);
}

async function onEdge(ev) {
  const d = JSON.parse(ev.data);
  const hall = halls.get(d.hall);
  if (!hall) return;
  hall.info = await getJson(`/api/v1/halls/${encodeURIComponent(d.hall)}`);
  renderHall(hall);
}

function onAnomaly(ev) {
  const d = JSON.parse(ev.data);
  anomalies.set(d.id, Object.assign(anomalies.get(d.id) || {}, d));
  renderAnomalies();
}

function onQueue(ev) {
  const d = JSON.parse(ev.data);
  const hall = halls.get(d.hall);
  if (!hall) return;
  hall.queues = hall.queues || new Map();
  for (const q of d.services) hall.queues.set(q.service, Object.assign(hall.queues.get(q.service) || {}, q));
  renderQueues(hall);
}

function onAlert(ev) {
  const a = JSON.parse(ev.data);
  if (!ALERT_KINDS.has(a.kind)) return; // 异常办件 arrive as "anomaly" events
  alerts.set(a.id, a);
  const hall = halls.get(a.hall);
  const post = hall && a.post ? hall.posts.get(a.post) : undefined;
  if (post) {
    post.open_alert = a.state === "open" ? a.id : null;
    renderHall(hall);
  }
  if (hall && a.zone) loadZones(hall).then(() => renderHall(hall));
  renderAlerts();
}

function connect() {
  const conn = document.getElementById("conn");
  const es = new EventSource("/api/v1/live");
  let lost = false;
  es.onopen = () => {
    conn.className = "conn conn-ok";
    conn.textContent = "实时连接正常";
    if (lost) loadAll().catch(console.error); // catch up on what the gap missed
    lost = false;
  };
  es.onerror = () => {
    conn.className = "conn conn-lost";
    conn.textContent = "实时连接中断，重连中…";
    lost = true;
  };
  es.addEventListener("presence", onPresence);
  es.addEventListener("device", onDevice);
  es.addEventListener("edge", (ev) => onEdge(ev).catch(console.error));
  es.addEventListener("alert", onAlert);
  es.addEventListener("anomaly", onAnomaly);
  es.addEventListener("queue", onQueue);
}

loadAll()
  .catch((err) => {
    console.error(err);
    document.getElementById("conn").textContent = "加载失败";
  })
  .finally(connect);
setInterval(() => {
  for (const hall of halls.values()) loadZones(hall).then(() => renderHall(hall));
}, 10000);
setInterval(() => {
  for (const hall of halls.values()) renderHall(hall);
  renderAlerts();
  renderAnomalies();
}, 30000);
