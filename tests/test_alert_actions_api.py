"""Acknowledge, resolve and comment alerts through the API (docs/alert-routing.md):
roles, hall scope (another hall's alert is 404), conflicts, the recorded actions and
notifications, the live event, and a manual resolve the rule does not undo."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aggregator.alerts import ListSink, alert_message
from aggregator.api.deps import ApiServices, Caller, Role, get_caller
from aggregator.api.main import create_app
from aggregator.cases.models import Anomaly
from aggregator.notify.routing import AlertRouter
from aggregator.rules.off_post import OffPostRule
from aggregator.store.state import Alert, PostStatus, StateStore
from hallwatch.contract import AlertState, new_id
from tests.conftest import build_hall
from tests.test_alert_routing import ZHANG, RecordingMqtt, RecordingSms, local, routed_hall
from tests.test_anomaly_register import RecordingBus

A, B = "h-alerts-a", "h-alerts-b"
NOW = local("10:30")


@dataclass
class Api:
    client: TestClient
    state: StateStore
    bus: RecordingBus
    sink: ListSink
    router: AlertRouter
    sms: RecordingSms

    def as_(self, role: Role, name: str, halls: set[str] | None = None) -> Api:
        caller = Caller(name=name, role=role, halls=None if halls is None else frozenset(halls))
        self.client.app.dependency_overrides[get_caller] = lambda: caller  # type: ignore[attr-defined]
        return self

    def post(self, alert_id: str, action: str, **body: Any) -> Any:
        url = f"/api/v1/alerts/{alert_id}/{action}"
        return self.client.post(url, json=body) if body else self.client.post(url)

    def get(self, path: str) -> Any:
        return self.client.get(f"/api/v1/alerts{path}")

    def alert(self, hall: str = A, kind: str = "off_post", post: str | None = "w1") -> str:
        row = Alert(id=new_id(), hall=hall, kind=kind, post=post, window=None, state="open",
                    start=NOW, end=None, opened_at=NOW, resolved_at=None, message="离岗告警",
                    device=None if post else "kiosk-1")  # fmt: skip
        with self.state.session() as session:
            session.add(row)
        return row.id


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    state = StateStore(f"sqlite:///{tmp_path / 'state.sqlite'}")
    state.create_all()
    halls = {A: routed_hall(A), B: build_hall(B)}
    bus = RecordingBus()
    sink = ListSink()
    app = create_app(ApiServices(state=state, halls=halls, bus=bus, alert_sink=sink))
    sms = RecordingSms()
    router = AlertRouter(state, halls, sms=sms, mqtt=RecordingMqtt(), clock=lambda: NOW)
    with TestClient(app) as client:
        yield Api(client, state, bus, sink, router, sms)
    state.dispose()


def test_acknowledge_by_role_and_hall(api: Api) -> None:
    a1, a2, b1 = api.alert(), api.alert(kind="device_offline", post=None), api.alert(B)
    assert api.as_(Role.AUDITOR, "audit").post(a1, "acknowledge").status_code == 403
    other = api.as_(Role.HALL_MANAGER, "manager-b", {B}).post(a1, "acknowledge")
    assert other.status_code == 404  # another hall's alert does not exist for them
    r = api.as_(Role.HALL_MANAGER, "manager-a", {A}).post(a1, "acknowledge", note="已通知窗口")
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in ("alert_id", "action", "actor", "role", "note")} == {
        "alert_id": a1, "action": "acknowledge", "actor": "manager-a", "role": "hall_manager",
        "note": "已通知窗口",
    }  # fmt: skip
    again = api.as_(Role.SUPERVISION_OFFICER, "officer").post(a1, "acknowledge")
    assert again.status_code == 409 and "manager-a" in again.json()["detail"]
    one = api.get(f"/{a1}").json()
    assert one["acknowledged_by"] == "manager-a" and one["acknowledged_at"] is not None
    listed = {a["id"]: a["acknowledged_by"] for a in api.get("").json()["items"]}
    assert listed == {a1: "manager-a", a2: None, b1: None}
    event = api.bus.events[-1]
    assert (event.type, event.hall, event.data["id"], event.data["kind"]) == (
        "alert", A, a1, "off_post",
    )  # fmt: skip
    assert event.data["acknowledged_by"] == "manager-a"
    assert event.data["action"]["action"] == "acknowledge"
    assert api.as_(Role.ADMIN, "admin").post(a2, "acknowledge").status_code == 200  # no note
    assert api.post("nope", "acknowledge").status_code == 404


def test_resolve_by_hand(api: Api) -> None:
    a1 = api.alert()
    assert (
        api.as_(Role.HALL_MANAGER, "manager-a", {A}).post(a1, "resolve", note="x").status_code
        == 403
    )
    officer = api.as_(Role.SUPERVISION_OFFICER, "officer-b", {B})
    assert officer.post(a1, "resolve", note="误报").status_code == 404
    officer = api.as_(Role.SUPERVISION_OFFICER, "officer")
    assert officer.post(a1, "resolve").status_code == 422  # a note is required
    assert officer.post(a1, "resolve", note="").status_code == 422
    r = officer.post(a1, "resolve", note="摄像头遮挡，误报")
    assert r.status_code == 200, r.text
    resolved = api.get(f"/{a1}").json()
    assert resolved["state"] == "resolved" and resolved["end"] is not None
    (published,) = api.sink.alerts  # to the hall's topic, the router and the bus
    assert (published.id, published.state) == (a1, AlertState.RESOLVED)
    assert officer.post(a1, "resolve", note="again").status_code == 409
    assert officer.post(a1, "acknowledge").status_code == 409
    note = api.as_(Role.HALL_MANAGER, "manager-a", {A}).post(a1, "comment", note="已整改")
    assert note.status_code == 200
    actions = api.get(f"/{a1}/actions").json()["actions"]
    assert [(x["action"], x["actor"], x["note"]) for x in actions] == [
        ("resolve", "officer", "摄像头遮挡，误报"), ("comment", "manager-a", "已整改"),
    ]  # fmt: skip


def test_the_rule_does_not_reopen_a_manually_resolved_absence(api: Api) -> None:
    hall = routed_hall(A)
    since = NOW - timedelta(minutes=20)
    with api.state.session() as session:
        session.add(PostStatus(hall=A, post="w1", camera="c1", window="1", source="edge-1",
                               state="off_post", since=since, last_fact_ts=since,
                               updated_at=since, clock_banked_s=0.0, clock_from=since))  # fmt: skip
    rule = OffPostRule(api.state, {A: hall})
    (opened,) = rule.evaluate(NOW)
    r = api.as_(Role.ADMIN, "admin").post(opened.id, "resolve", note="人员已在岗，位置偏移")
    assert r.status_code == 200
    assert rule.evaluate(NOW + timedelta(minutes=30)) == []  # the same absence: no new alert
    rows = api.state.list_alerts(hall=A)[0]
    assert [(a.id, a.state) for a in rows] == [(opened.id, "resolved")]


def test_actions_and_notifications_and_ack_stops_escalation(api: Api) -> None:
    alert_id = api.alert()
    row = api.state.get_alert(alert_id)
    assert row is not None
    api.router.publish(alert_message(row))
    api.as_(Role.HALL_MANAGER, "manager-a", {A}).post(alert_id, "acknowledge")
    api.router.tick(NOW + timedelta(minutes=30))  # acknowledged: no escalation
    body = api.as_(Role.AUDITOR, "audit").get(f"/{alert_id}/actions")
    assert body.status_code == 200
    out = body.json()
    assert (out["open"], out["acknowledged_by"]) == (True, "manager-a")
    told = sorted((n["recipient"], n["level"], n["channel"], n["outcome"])
                  for n in out["notifications"])  # fmt: skip
    assert told == [("wang", 1, "sms", "sent"), ("zhang", 1, "mqtt", "sent"),
                    ("zhang", 1, "sms", "sent")]  # fmt: skip
    assert ZHANG not in body.text  # phone numbers are not shown
    assert (
        api.as_(Role.HALL_MANAGER, "manager-b", {B}).get(f"/{alert_id}/actions").status_code == 404
    )


def test_a_case_alert_is_acknowledged_but_closed_through_its_register(api: Api) -> None:
    case_id = new_id()
    with api.state.session() as session:
        session.add(Anomaly(id=case_id, hall=A, dedup_key=f"manual:{case_id}", kind="manual",
                            state="open", level="warning", window="1", source="manual",
                            description="人工登记", opened=NOW, appeal_deadline=NOW,
                            rectify_deadline=None, red_at=None, closed_at=None,
                            created_at=NOW, updated_at=NOW))  # fmt: skip
    officer = api.as_(Role.SUPERVISION_OFFICER, "officer")
    assert officer.post(case_id, "acknowledge").status_code == 200
    refused = officer.post(case_id, "resolve", note="done")
    assert refused.status_code == 409 and "register" in refused.json()["detail"]
    assert api.bus.events[-1].data["kind"] == "manual"
    assert officer.get(f"/{case_id}/actions").json()["acknowledged_by"] == "officer"
