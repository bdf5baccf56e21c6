// One alert (or 异常办件) in a modal dialog: its evidence snapshot, its facts, what people
// did about it, and Acknowledge / Resolve (docs/dashboard.md). The snapshot is fetched
// with the session cookie and shown from a blob, so a refusal (auditor: 403) or a purged
// snapshot (410) can be told apart from a broken image.
import { ApiError, getJson, hallPath, postJson } from "./api.js";
import { h, fill } from "./dom.js";
import { dateTime, duration, secondsSince } from "./format.js";
import { label, t } from "./i18n.js";
import { store } from "./store.js";

const ACK_ROLES = ["supervision_officer", "hall_manager", "admin"];
const RESOLVE_ROLES = ["supervision_officer", "admin"];
let blobUrl = null;

function dialog() {
  return document.getElementById("detail");
}

function close() {
  const dlg = dialog();
  if (dlg.open) dlg.close();
}

function forgetSnapshot() {
  if (blobUrl) URL.revokeObjectURL(blobUrl);
  blobUrl = null;
}

function show(title, ...content) {
  const dlg = dialog();
  if (!dlg.dataset.wired) {
    dlg.addEventListener("close", forgetSnapshot);
    dlg.dataset.wired = "true";
  }
  fill(dlg,
    h("div", { class: "detail-head" },
      h("h2", { id: "detail-title" }, title),
      h("button", { type: "button", class: "close", onclick: close, "aria-label": t("detail.close") }, "×")),
    h("div", { class: "detail-body" }, ...content));
  dlg.setAttribute("aria-labelledby", "detail-title");
  if (!dlg.open) dlg.showModal();
}

function facts(rows) {
  return h("dl", { class: "facts" }, rows.filter(([, v]) => v !== null && v !== undefined && v !== "")
    .flatMap(([k, v]) => [h("dt", {}, t(k)), h("dd", {}, String(v))]));
}

async function evidence(url) {
  const box = h("figure", { class: "evidence" }, h("figcaption", {}, t("detail.evidence")));
  if (!url) {
    box.append(h("p", { class: "muted" }, t("detail.evidence.none")));
    return box;
  }
  const response = await fetch(url, { credentials: "same-origin" });
  if (!response.ok) {
    const key = response.status === 403 ? "detail.evidence.denied" : response.status === 410 ? "detail.evidence.gone" : "detail.evidence.failed";
    box.append(h("p", { class: "muted", dataset: { evidenceStatus: String(response.status) } }, t(key)));
    return box;
  }
  const blob = await response.blob();
  forgetSnapshot();
  blobUrl = URL.createObjectURL(blob);
  box.append(h("img", { src: blobUrl, alt: t("detail.evidence"), class: "snapshot" }));
  return box;
}

function history(actions) {
  if (actions === null) return h("p", { class: "muted" }, t("action.unavailable"));
  if (!actions.actions.length) return h("p", { class: "muted" }, t("detail.history.none"));
  return h("ol", { class: "history" }, actions.actions.map((a) => h("li", {},
    `${dateTime(a.at)} · ${a.actor}（${label("user.role.", a.role)}）· ${label("action.", `${a.action}.label`) }`,
    a.note ? ` · ${a.note}` : "")));
}

async function loadActions(alertId) {
  try {
    return await getJson(`/api/v1/alerts/${encodeURIComponent(alertId)}/actions`);
  } catch (err) {
    if (err instanceof ApiError && [404, 405].includes(err.status)) return null; // not there yet
    throw err;
  }
}

function actionError(err) {
  if (!(err instanceof ApiError)) return String(err);
  if (err.status === 404 || err.status === 405) return t("action.unavailable");
  if (err.status === 403) return t("action.denied");
  return t("action.conflict", { detail: err.detail });
}

function actionBar(alertId, { canAck, canResolve }, reopen) {
  if (!canAck && !canResolve) return null;
  const note = h("input", { type: "text", id: "detail-note", maxlength: "500",
    placeholder: t("detail.note.placeholder") });
  const status = h("p", { class: "action-status", role: "status", "aria-live": "polite" });
  async function act(kind) {
    const text = note.value.trim();
    if (kind === "resolve" && !text) {
      status.textContent = t("detail.note.required");
      note.focus();
      return;
    }
    try {
      await postJson(`/api/v1/alerts/${encodeURIComponent(alertId)}/${kind}`, text ? { note: text } : {});
      status.textContent = t("action.done");
      reopen();
    } catch (err) {
      status.textContent = actionError(err);
    }
  }
  return h("div", { class: "actions" },
    h("label", { for: "detail-note" }, t("detail.note")), note,
    canAck ? h("button", { type: "button", class: "primary", dataset: { action: "acknowledge" },
      onclick: () => act("acknowledge") }, t("action.acknowledge")) : null,
    canResolve ? h("button", { type: "button", class: "danger", dataset: { action: "resolve" },
      onclick: () => act("resolve") }, t("action.resolve")) : null,
    status);
}

function whereOf(hall, a) {
  if (!hall) return a.post || a.device || a.zone || "";
  if (a.post) return (hall.posts.get(a.post) || {}).name || a.post;
  if (a.device) return (hall.devices.get(a.device) || {}).name || a.device;
  if (a.zone) return (hall.zones.get(a.zone) || {}).name || a.zone;
  return a.window ? t("window.n", { n: a.window }) : "";
}

/** Open the detail of alert alertId of hall hallId. */
export async function openAlert(hallId, alertId) {
  const hall = store.halls.get(hallId);
  const tz = hall ? hall.info.timezone : undefined;
  const reopen = () => openAlert(hallId, alertId);
  try {
    const [a, actions] = await Promise.all([
      getJson(`/api/v1/alerts/${encodeURIComponent(alertId)}`), loadActions(alertId)]);
    const role = store.me ? store.me.role : "";
    const open = a.state === "open";
    const place = whereOf(hall, a);
    const ack = a.acknowledged_by ? `${a.acknowledged_by} · ${dateTime(a.acknowledged_at, tz)}` : null;
    show(`${label("alert.kind.", a.kind)}${place ? ` · ${place}` : ""}`,
      await evidence(a.evidence_url),
      h("section", { class: "detail-facts" }, h("h3", {}, t("detail.facts")), facts([
        ["detail.kind", label("alert.kind.", a.kind)], ["detail.hall", hall ? hall.info.name : a.hall],
        ["detail.where", place], ["detail.start", dateTime(a.start, tz)],
        ["detail.end", a.end ? dateTime(a.end, tz) : null],
        ["detail.duration", duration(a.duration_s ?? secondsSince(a.start, a.end))],
        ["detail.state", t(`alert.state.${a.state}`)], ["detail.message", a.message], ["detail.ack", ack],
      ])),
      actionBar(alertId, {
        canAck: open && !a.acknowledged_by && ACK_ROLES.includes(role),
        canResolve: open && RESOLVE_ROLES.includes(role),
      }, reopen),
      h("section", { class: "detail-history" }, h("h3", {}, t("detail.history")), history(actions)));
  } catch (err) {
    show(t("detail.title"), h("p", { class: "error" }, t("load.failed", { detail: err.message })));
  }
}

function payloadText(payload) {
  return Object.entries(payload.body || payload).filter(([, v]) => v !== null && typeof v !== "object")
    .map(([k, v]) => `${k}: ${v}`).join(" · ");
}

/** Open the detail of 异常办件 caseId of hall hallId: its facts and transitions. */
export async function openCase(hallId, caseId) {
  const hall = store.halls.get(hallId);
  const tz = hall ? hall.info.timezone : undefined;
  try {
    const [c, actions] = await Promise.all([getJson(hallPath(hallId, "anomalies", encodeURIComponent(caseId))), loadActions(caseId)]);
    const role = store.me ? store.me.role : "";
    const acked = actions && actions.acknowledged_by;
    show(`【${label("level.", c.level)}】${label("alert.kind.", c.kind)}`,
      h("section", { class: "detail-facts" }, h("h3", {}, t("detail.facts")), facts([
        ["detail.kind", label("alert.kind.", c.kind)], ["detail.level", label("level.", c.level)],
        ["detail.state", label("case.state.", c.state)], ["detail.hall", hall ? hall.info.name : c.hall],
        ["detail.where", c.window ? t("window.n", { n: c.window }) : null], ["detail.case_no", c.case_no], ["detail.ticket", c.ticket_id],
        ["detail.start", dateTime(c.opened, tz)], ["detail.deadline", c.rectify_deadline ? dateTime(c.rectify_deadline, tz) : null],
        ["detail.message", c.description],
      ])),
      h("section", {}, h("h3", {}, t("detail.source_facts")), h("ol", { class: "history" },
        c.evidence.map((e) => h("li", {}, `${dateTime(e.ts, tz)} · ${e.fact_kind} · ${payloadText(e.payload)}`)),
        c.transitions.map((x) => h("li", {}, `${dateTime(x.ts, tz)} · ${x.actor} · ${x.action} → ${label("case.state.", x.to_state)}${x.note ? ` · ${x.note}` : ""}`)))),
      actionBar(caseId, { canAck: !acked && OPEN_STATES.has(c.state) && ACK_ROLES.includes(role), canResolve: false },
        () => openCase(hallId, caseId)),
      h("section", { class: "detail-history" }, h("h3", {}, t("detail.history")), history(actions)));
  } catch (err) {
    show(t("detail.title"), h("p", { class: "error" }, t("load.failed", { detail: err.message })));
  }
}

const OPEN_STATES = new Set(["open", "appealed", "upheld"]);
