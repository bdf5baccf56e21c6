"""The 异常办件 routes: list and filters, detail, manual entry, the lifecycle through the
API, 409 / 422 / 404, role checks, and the current queue."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aggregator.api.deps import ApiServices, Caller, Role, get_caller
from aggregator.bus import LiveBus
from aggregator.cases.register import CaseRegister
from aggregator.ingest import Ingestor
from aggregator.store.state import StateStore
from aggregator.store.timeseries import SqliteTimeSeriesStore
from hallwatch.contract import (
    QueueBody,
    QueueFact,
    RatingBody,
    RatingFact,
    RatingLevel,
    ServiceQueue,
    TicketBody,
    TicketEventType,
    TicketFact,
    TripsBody,
    TripsFact,
    WaitBody,
    WaitFact,
    encode,
    fact_topic,
    utcnow,
)
from tests.support.api import signed_in_app
from tests.test_anomaly_register import case_hall, t

A, B = "h-cases-a", "h-cases-b"


@dataclass
class Api:
    client: TestClient
    ingestor: Ingestor
    clock: list[datetime]

    def feed(self, fact: Any) -> None:
        self.clock[0] = max(self.clock[0], fact.ts)
        self.ingestor.handle(fact_topic(fact.hall, fact.kind), encode(fact))

    def url(self, hall: str = A, suffix: str = "") -> str:
        return f"/api/v1/halls/{hall}/anomalies{suffix}"

    def items(self, **params: Any) -> list[dict[str, Any]]:
        r = self.client.get(self.url(), params=params)
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    def post(self, anomaly_id: str, action: str, hall: str = A, **body: Any) -> Any:
        return self.client.post(self.url(hall, f"/{anomaly_id}/{action}"), json=body)

    def as_role(self, role: Role, name: str = "someone", halls: set[str] | None = None) -> None:
        app = self.client.app
        caller = Caller(name=name, role=role, halls=None if halls is None else frozenset(halls))
        app.dependency_overrides[get_caller] = lambda: caller  # type: ignore[attr-defined]


def wait(hall: str, at: datetime, ticket: str = "A017") -> WaitFact:
    body = WaitBody(ticket=ticket, ticket_id=f"20261102-{ticket}", leg=1, service="A",
                    clock_start=at, waited_s=1900, limit_s=1800)  # fmt: skip
    return WaitFact(hall=hall, source="edge-1", ts=at, body=body)


def rating(hall: str, at: datetime, rid: str, window: str = "1") -> RatingFact:
    body = RatingBody(rating_id=rid, at=at, level=RatingLevel.DISSATISFIED, window=window,
                      case_no=f"K-{rid}")  # fmt: skip
    return RatingFact(hall=hall, source="edge-1", ts=at, body=body)


def trips(hall: str, at: datetime) -> TripsFact:
    body = TripsBody(case_ref="case:C1", case_no="C1", service="A", trips=2, promised=1,
                     visits=[], ticket_id="20261102-A020", window="2")  # fmt: skip
    return TripsFact(hall=hall, source="edge-1", ts=at, body=body)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    state = StateStore(f"sqlite:///{tmp_path / 'api.sqlite'}")
    state.create_all()
    series = SqliteTimeSeriesStore(":memory:")
    halls = {A: case_hall(A), B: case_hall(B)}
    clock = [t("09:00")]
    bus = LiveBus()
    cases = CaseRegister(state, halls, bus=bus, clock=lambda: clock[0])
    ingestor = Ingestor(state, series, halls, bus, cases=cases, clock=lambda: clock[0])
    services = ApiServices(state=state, halls=halls, bus=bus, cases=cases)
    with TestClient(signed_in_app(services)) as client:
        api = Api(client, ingestor, clock)
        api.feed(wait(A, t("10:30")))
        api.feed(rating(A, t("11:00"), "r1", window="1"))
        api.feed(trips(A, t("11:30")))
        api.feed(rating(B, t("11:10"), "rb"))
        yield api
    series.close()
    state.dispose()


def test_list_and_filters(api: Api) -> None:
    r = api.client.get(api.url())
    page = r.json()
    assert (page["total"], page["limit"], page["offset"]) == (3, 50, 0)
    kinds = [a["kind"] for a in page["items"]]
    assert kinds == ["trips_over_promise", "bad_rating", "wait_over_limit"]  # newest first
    first = page["items"][0]
    assert set(first) >= {
        "id", "hall", "kind", "state", "level", "decision", "window", "department", "staff",
        "service", "case_no", "case_ref", "ticket_id", "leg", "rating_id", "source",
        "description", "opened", "appeal_deadline", "rectify_deadline", "red_at", "closed_at",
        "updated_at",
    }  # fmt: skip
    assert "applicant_key" not in first and "dedup_key" not in first
    assert first["opened"] == "2026-11-02T03:30:00Z"
    assert [a["kind"] for a in api.items(kind="bad_rating")] == ["bad_rating"]
    assert [a["window"] for a in api.items(window="2")] == ["2"]
    assert [a["kind"] for a in api.items(department="tax")] == ["bad_rating"]
    assert len(api.items(state="open", level="warning")) == 3
    assert api.items(level="red") == []
    assert len(api.items(since="2026-11-02T03:00:00Z", until="2026-11-02T03:30:00Z")) == 1
    assert [a["kind"] for a in api.items(limit=1, offset=1)] == ["bad_rating"]
    assert api.client.get(api.url(), params={"state": "bogus"}).status_code == 422
    assert api.client.get(api.url("nowhere")).status_code == 404


def test_detail_with_evidence_and_transitions(api: Api) -> None:
    (w,) = api.items(kind="wait_over_limit")
    r = api.client.get(api.url(suffix=f"/{w['id']}"))
    assert r.status_code == 200
    detail = r.json()
    assert detail["id"] == w["id"] and detail["window"] is None
    (ev,) = detail["evidence"]
    assert (ev["fact_kind"], ev["payload"]["body"]["ticket_id"]) == ("wait", "20261102-A017")
    (tr,) = detail["transitions"]
    assert (tr["action"], tr["actor"], tr["from_state"], tr["to_state"], tr["to_level"]) == (
        "opened", "system", None, "open", "warning",
    )  # fmt: skip


def test_manual_entry(api: Api) -> None:
    api.clock[0] = t("14:00")
    body = {"source": "complaint_phone", "description": "群众来电投诉窗口推诿", "window": "2",
            "staff": "s02", "case_no": "C9"}  # fmt: skip
    r = api.client.post(api.url(), json=body)
    assert r.status_code == 201, r.text
    a = r.json()
    assert (a["kind"], a["source"], a["state"], a["level"]) == (
        "manual", "complaint_phone", "open", "warning",
    )  # fmt: skip
    assert (a["window"], a["department"], a["opened"]) == ("2", "social", "2026-11-02T06:00:00Z")
    detail = api.client.get(api.url(suffix=f"/{a['id']}")).json()
    assert detail["transitions"][0]["actor"] == "test-admin"
    assert detail["evidence"][0]["fact_kind"] == "manual"
    earlier = {"source": "inspection", "description": "现场检查", "opened": "2026-11-02T01:00:00Z"}
    assert api.client.post(api.url(), json=earlier).json()["opened"] == "2026-11-02T01:00:00Z"
    for bad in (
        {**body, "window": "99"},
        {**body, "department": "nope"},
        {**body, "source": "rumour"},
        {"source": "inspection"},
        {**body, "opened": "2026-11-03T00:00:00Z"},  # in the future
    ):
        assert api.client.post(api.url(), json=bad).status_code == 422, bad


def test_lifecycle_through_the_api(api: Api) -> None:
    (w,) = api.items(kind="wait_over_limit")
    wid = w["id"]
    r = api.post(wid, "close")
    assert r.status_code == 409 and "cannot close" in r.json()["detail"]
    r = api.post(wid, "appeal", note="系统故障")
    assert r.status_code == 200 and r.json()["state"] == "appealed"
    assert r.json()["rectify_deadline"] is None
    assert api.post(wid, "appeal").status_code == 409
    r = api.post(wid, "decision", decision="upheld", note="维持")
    assert (r.json()["state"], r.json()["decision"]) == ("upheld", "upheld")
    assert r.json()["rectify_deadline"] == "2026-11-09T16:00:00Z"  # end of Mon 11-09
    assert api.post(wid, "rectify", note="已培训").json()["state"] == "rectified"
    assert api.post(wid, "close").json()["state"] == "closed"
    detail = api.client.get(api.url(suffix=f"/{wid}")).json()
    assert [tr["action"] for tr in detail["transitions"]] == [
        "opened", "appeal", "decision", "rectify", "close",
    ]  # fmt: skip
    assert detail["transitions"][1]["note"] == "系统故障"
    assert api.post(wid, "rectify").status_code == 409
    # a second evaluation entered by an officer decides an appeal
    (rt,) = api.items(kind="bad_rating")
    api.post(rt["id"], "appeal")
    r = api.post(rt["id"], "second-evaluation", level="satisfied", attitude="good")
    assert (r.json()["state"], r.json()["decision"]) == ("overturned", "overturned")
    assert api.post(rt["id"], "close").json()["state"] == "closed"
    assert api.post(rt["id"], "decision", decision="bogus").status_code == 422


def test_appeal_past_its_deadline_is_422(api: Api) -> None:
    (w,) = api.items(kind="wait_over_limit")
    api.clock[0] = t("00:00", day=17)  # 10 working days after Mon 11-02 have ended
    r = api.post(w["id"], "appeal")
    assert r.status_code == 422 and "deadline" in r.json()["detail"]


def test_another_halls_anomaly_is_404(api: Api) -> None:
    other = api.client.get(api.url(B)).json()["items"][0]["id"]
    assert api.client.get(api.url(A, f"/{other}")).status_code == 404
    assert api.post(other, "appeal", hall=A).status_code == 404
    assert api.post(other, "appeal", hall=B).status_code == 200
    assert api.client.get(api.url(A, "/nope")).status_code == 404


def test_a_hall_manager_sees_and_acts_on_own_halls_only(api: Api) -> None:
    (w,) = api.items(kind="wait_over_limit")
    other = api.client.get(api.url(B)).json()["items"][0]["id"]
    api.as_role(Role.HALL_MANAGER, "王经理", halls={A})
    assert api.client.get(api.url(B)).status_code == 404
    assert api.client.get(api.url(B, f"/{other}")).status_code == 404
    assert api.post(other, "appeal", hall=B).status_code == 404
    assert api.client.get(f"/api/v1/halls/{B}/queue").status_code == 404
    assert [h["id"] for h in api.client.get("/api/v1/halls").json()] == [A]
    assert api.post(w["id"], "appeal").status_code == 200


def test_id_numbers_in_officers_text_are_blanked(api: Api) -> None:
    body = {"source": "complaint_phone", "description": "投诉人身份证 110105 19491231 002X 来电"}
    a = api.client.post(api.url(), json=body).json()
    assert a["description"] == "投诉人身份证 ******************** 来电"
    r = api.post(a["id"], "rectify", note="已回访 110105194912310021 本人")
    assert r.status_code == 200, r.text
    detail = api.client.get(api.url(suffix=f"/{a['id']}")).json()
    assert "110105194912310021" not in str(detail) and "19491231" not in str(detail)


def test_roles(api: Api) -> None:
    (w,) = api.items(kind="wait_over_limit")
    manual = {"source": "inspection", "description": "检查"}
    api.as_role(Role.AUDITOR)
    assert api.client.get(api.url()).status_code == 200
    assert api.client.get(api.url(suffix=f"/{w['id']}")).status_code == 200
    assert api.client.post(api.url(), json=manual).status_code == 403
    for action in ("appeal", "rectify", "close"):
        assert api.post(w["id"], action).status_code == 403
    assert api.post(w["id"], "decision", decision="upheld").status_code == 403
    api.as_role(Role.HALL_MANAGER, "王经理")
    assert api.client.post(api.url(), json=manual).status_code == 403
    assert api.post(w["id"], "appeal").status_code == 200
    assert api.post(w["id"], "decision", decision="overturned").status_code == 403
    api.as_role(Role.SUPERVISION_OFFICER, "李监察")
    assert api.post(w["id"], "decision", decision="upheld").status_code == 200
    api.as_role(Role.HALL_MANAGER, "王经理")
    assert api.post(w["id"], "rectify").status_code == 200
    detail = api.client.get(api.url(suffix=f"/{w['id']}")).json()
    assert [tr["actor"] for tr in detail["transitions"]] == ["system", "王经理", "李监察", "王经理"]


def test_queue(api: Api) -> None:
    assert api.client.get(f"/api/v1/halls/{A}/queue").json() == []
    body = QueueBody(services=[ServiceQueue(service="A", waiting=4, longest_wait_s=1250.5),
                               ServiceQueue(service="B", waiting=0, longest_wait_s=0)])  # fmt: skip
    api.feed(QueueFact(hall=A, source="edge-1", ts=t("10:00"), body=body))
    r = api.client.get(f"/api/v1/halls/{A}/queue")
    assert r.json() == [
        {"service": "A", "name": "社保业务", "waiting": 4, "longest_wait_s": 1250.5,
         "ts": "2026-11-02T02:00:00Z"},
        {"service": "B", "name": "", "waiting": 0, "longest_wait_s": 0.0,
         "ts": "2026-11-02T02:00:00Z"},
    ]  # fmt: skip
    assert api.client.get(f"/api/v1/halls/{B}/queue").json() == []


def test_posts_show_the_ticket_their_window_called_last_today(api: Api) -> None:
    now = utcnow()
    yesterday = now - timedelta(days=1)

    def called(at: datetime, ticket: str, window: str) -> TicketFact:
        body = TicketBody(event=TicketEventType.CALLED, ticket=ticket, service="A",
                          ticket_id=f"{at:%Y%m%d}-{ticket}", at=at, window=window)  # fmt: skip
        return TicketFact(hall=A, source="edge-1", ts=at, body=body)

    api.clock[0] = now
    api.feed(called(yesterday, "A001", "2"))
    api.feed(called(now - timedelta(seconds=2), "A016", "1"))
    api.feed(called(now - timedelta(seconds=1), "A017", "1"))
    posts = {p["window"]: p for p in api.client.get(f"/api/v1/halls/{A}/posts").json()}
    assert posts["1"]["last_call"]["ticket"] == "A017"
    assert posts["2"]["last_call"] is None  # yesterday's call is not today's
