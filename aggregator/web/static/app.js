// 电子监察 dashboard: sign-in, the overview of every visible hall, a hall's live view and
// its charts (hash routes #/, #/hall/{id}, #/hall/{id}/charts), live over SSE.
import { logout, onUnauthorized, whoAmI } from "./api.js";
import { mountCharts } from "./charts.js";
import { h, fill } from "./dom.js";
import { mountHall } from "./hall.js";
import { applyI18n, getLang, label, onLangChange, setLang, t } from "./i18n.js";
import { connect, disconnect } from "./live.js";
import { mountLogin } from "./login.js";
import { mountOverview } from "./overview.js";
import { emit, loadAll, store, subscribe } from "./store.js";

const $ = (id) => document.getElementById(id);
let unmount = () => {};
let timers = [];

function showConn() {
  const el = $("conn");
  el.className = `conn conn-${store.conn}`;
  el.textContent = t(`conn.${store.conn}`);
}

function hallShell(root, hall, tab) {
  const id = encodeURIComponent(hall.info.id);
  const tabLink = (name, href) => h("a", { href, class: "tab", "aria-current": tab === name ? "page" : null },
    t(`nav.${name}`));
  const head = h("div", { class: "hall-head" },
    h("a", { href: "#/", class: "back" }, `← ${t("nav.back")}`),
    h("h1", { class: "view-title" }, hall.info.name),
    h("nav", { class: "tabs", "aria-label": hall.info.name }, tabLink("live", `#/hall/${id}`), tabLink("charts", `#/hall/${id}/charts`)));
  const body = h("div", { class: "hall-body" });
  fill(root, head, body);
  return body;
}

function route() {
  unmount();
  unmount = () => {};
  const view = $("view");
  const match = location.hash.match(/^#\/hall\/([^/]+)(\/charts)?$/);
  const hall = match && store.halls.get(decodeURIComponent(match[1]));
  if (match && hall) {
    const body = hallShell(view, hall, match[2] ? "charts" : "live");
    unmount = match[2] ? mountCharts(body, hall.info.id) : mountHall(body, hall.info.id, subscribe);
    view.dataset.view = match[2] ? "charts" : "hall";
  } else {
    unmount = mountOverview(view, subscribe);
    view.dataset.view = "overview";
  }
}

async function start(me) {
  store.me = me;
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;
  $("conn").hidden = false;
  $("user").textContent = `${me.username} · ${label("user.role.", me.role)}`;
  try {
    await loadAll();
  } catch (err) {
    console.error(err);
    fill($("view"), h("p", { class: "error" }, t("load.failed", { detail: err.message })));
  }
  route();
  connect(() => signOut("login.expired"));
  timers = [
    setInterval(() => emit({ type: "tick" }), 30000), // durations ("自 10:05（12分钟）")
    setInterval(() => loadAll().catch(console.error), 300000),
  ];
}

function signOut(messageKey) {
  disconnect();
  for (const timer of timers) clearInterval(timer);
  timers = [];
  unmount();
  unmount = () => {};
  fill($("view"));
  store.me = null;
  store.halls.clear();
  const dlg = $("detail");
  if (dlg.open) dlg.close();
  $("app").hidden = true;
  $("logout").hidden = true;
  $("conn").hidden = true;
  $("user").textContent = "";
  $("login").hidden = false;
  mountLogin($("login"), start, messageKey);
}

function tickClock() {
  $("clock").textContent = new Intl.DateTimeFormat(getLang() === "en" ? "en-GB" : "zh-CN", {
    month: "2-digit", day: "2-digit", weekday: "short", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  }).format(new Date());
}

async function boot() {
  applyI18n(document);
  document.documentElement.lang = getLang() === "en" ? "en" : "zh-CN";
  $("lang").addEventListener("click", () => setLang(getLang() === "en" ? "zh" : "en"));
  $("logout").addEventListener("click", async () => {
    await logout();
    signOut();
  });
  onLangChange(() => {
    showConn();
    if (store.me) {
      $("user").textContent = `${store.me.username} · ${label("user.role.", store.me.role)}`;
      route();
    } else {
      mountLogin($("login"), start);
    }
  });
  onUnauthorized(() => store.me && signOut("login.expired"));
  subscribe((change) => change.type === "conn" && showConn());
  window.addEventListener("hashchange", () => store.me && route());
  tickClock();
  setInterval(tickClock, 1000);
  const me = await whoAmI().catch(() => null);
  if (me) start(me);
  else signOut();
}

boot();
