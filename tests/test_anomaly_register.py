"""The 异常办件 register from facts (docs/cases.md §3–5), through the real ingestor.

Every scenario feeds facts to :class:`~aggregator.ingest.Ingestor` (so dedup, the one
transaction and publishing after commit are exercised) with a settable clock, and checks
the anomalies, their evidence and their transitions. Times are Shanghai wall-clock times
in the week of Monday 2026-11-02.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from aggregator.alerts import ListSink
from aggregator.bus import LiveBus, LiveEvent
from aggregator.cases.lifecycle import DeadlineError, Decision, TransitionError
from aggregator.cases.models import Anomaly, AnomalyEvidence, AnomalyTransition
from aggregator.cases.notify import CaseNotifier
from aggregator.cases.register import CaseRegister
from aggregator.ingest import Ingestor, IngestOutcome
from aggregator.store.state import StateStore
from aggregator.store.timeseries import SqliteTimeSeriesStore
from hallwatch.config.models import HallConfig
from hallwatch.contract import (
    AlertMessage,
    Attitude,
    QueueBody,
    QueueFact,
    RatingBody,
    RatingDimension,
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
)
from tests.conftest import build_hall

SH = ZoneInfo("Asia/Shanghai")
HALL = "h-cases"
KEY = "0123456789abcdef0123456789abcdef"


def t(hhmm: str, day: int = 2, month: int = 11) -> datetime:
    """``"10:30"`` on 2026-11-``day`` in Shanghai → aware UTC."""
    h, m = (int(x) for x in hhmm.split(":"))
    return datetime(2026, month, day, h, m, tzinfo=SH).astimezone(UTC)


def case_hall(hall_id: str = HALL, **cases: Any) -> HallConfig:
    """The test hall with departments, windows, queue services and SMS recipients."""
    data = build_hall(hall_id).model_dump(
        mode="json", by_alias=True, context={"reveal_secrets": True}
    )
    data["departments"] = [{"id": "tax", "name": "县税务局"}, {"id": "social", "name": "人社局"}]
    data["windows"] = [
        {"id": "1", "name": "1号窗口", "department": "tax"},
        {"id": "2", "name": "2号窗口", "department": "social"},
        {"id": "3", "name": "3号窗口"},
    ]
    data["queue"] = {
        "topic": "queue/{hall}",
        "applicant_salt": "0123456789abcdef-salt",
        "services": [{"id": "A", "name": "社保业务", "department": "social"}],
    }
    data["cases"] = cases
    data["notify"] = {
        "sms": [
            {"name": "主任", "phone": "13800000001"},
            {"name": "科长", "phone": "13800000002", "min_level": "red"},
            {"name": "评价专员", "phone": "13800000003", "kinds": ["bad_rating"]},
        ]
    }
    return HallConfig.model_validate(data)


class FakeSms:
    """Records texts; the same (phone, key) is sent once, like the real notifier."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    def send(self, phone: str, text: str, dedup_key: str) -> bool:
        if any(p == phone and k == dedup_key for p, _, k in self.sent):
            return False
        self.sent.append((phone, text, dedup_key))
        return True


class RecordingBus(LiveBus):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[LiveEvent] = []

    def publish(self, event: LiveEvent) -> None:
        self.events.append(event)


class Harness:
    """Real stores, ingestor and register over one hall, with a settable clock."""

    def __init__(self, tmp_path: Path, hall: HallConfig) -> None:
        self.hall = hall
        self.state = StateStore(f"sqlite:///{tmp_path / 'state.sqlite'}")
        self.state.create_all()
        self.series = SqliteTimeSeriesStore(":memory:")
        self.sink = ListSink()
        self.sms = FakeSms()
        self.bus = RecordingBus()
        halls = {hall.hall.id: hall}
        self.now = t("09:00")
        self.register = CaseRegister(
            self.state,
            halls,
            CaseNotifier(halls, self.sink, self.sms),
            bus=self.bus,
            clock=lambda: self.now,
        )
        self.ingestor = Ingestor(
            self.state, self.series, halls, self.bus, cases=self.register, clock=lambda: self.now
        )
        self.hall_id = hall.hall.id

    def close(self) -> None:
        self.series.close()
        self.state.dispose()

    def feed(self, fact: Any) -> IngestOutcome:
        self.now = max(self.now, fact.ts)
        return self.ingestor.handle(fact_topic(fact.hall, fact.kind), encode(fact))

    # -- fact builders ---------------------------------------------------------------------

    def wait(self, at: datetime, ticket: str = "A017", leg: int = 1, **kw: Any) -> WaitFact:
        body = WaitBody(
            ticket=ticket, ticket_id=f"20261102-{ticket}", leg=leg, service=kw.pop("service", "A"),
            clock_start=at - timedelta(minutes=30), waited_s=1800, limit_s=1800, **kw,
        )  # fmt: skip
        return WaitFact(hall=self.hall_id, source="edge-1", ts=at, body=body)

    def ticket(
        self, event: TicketEventType, at: datetime, window: str | None, ticket: str = "A017",
        **kw: Any,
    ) -> TicketFact:  # fmt: skip
        body = TicketBody(event=event, ticket=ticket, ticket_id=f"20261102-{ticket}", at=at,
                          service=kw.pop("service", "A"), window=window, **kw)  # fmt: skip
        return TicketFact(hall=self.hall_id, source="edge-1", ts=at, body=body)

    def trips(self, at: datetime, trips: int, case_ref: str = "case:C1", **kw: Any) -> TripsFact:
        visits = [date(2026, 10, 20 + i) for i in range(trips)]
        body = TripsBody(case_ref=case_ref, service=kw.pop("service", "A"), trips=trips,
                         promised=1, visits=visits, ticket_id="20261102-A020", **kw)  # fmt: skip
        return TripsFact(hall=self.hall_id, source="edge-1", ts=at, body=body)

    def rating(
        self, at: datetime, level: RatingLevel, rating_id: str = "r1", **kw: Any
    ) -> RatingFact:
        body = RatingBody(rating_id=rating_id, at=at, level=level, **kw)
        return RatingFact(hall=self.hall_id, source="edge-1", ts=at, body=body)

    # -- reads -----------------------------------------------------------------------------

    def anomalies(self) -> list[Anomaly]:
        with self.state.read_session() as s:
            return list(s.scalars(select(Anomaly).order_by(Anomaly.opened, Anomaly.id)))

    def one(self) -> Anomaly:
        (anomaly,) = self.anomalies()
        return anomaly

    def actions(self, anomaly_id: str) -> list[tuple[str, str | None, str, str]]:
        with self.state.read_session() as s:
            rows = s.scalars(
                select(AnomalyTransition)
                .where(AnomalyTransition.anomaly_id == anomaly_id)
                .order_by(AnomalyTransition.id)
            )
            return [(r.action, r.from_state, r.to_state, r.to_level) for r in rows]

    def evidence(self, anomaly_id: str) -> list[str]:
        with self.state.read_session() as s:
            rows = s.scalars(
                select(AnomalyEvidence)
                .where(AnomalyEvidence.anomaly_id == anomaly_id)
                .order_by(AnomalyEvidence.id)
            )
            return [r.fact_kind for r in rows]

    def alerts(self) -> list[AlertMessage]:
        return self.sink.alerts


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path, case_hall())
    yield harness
    harness.close()


# -- opening from facts --------------------------------------------------------------------


def test_wait_opens_without_window_and_the_call_fills_it(h: Harness) -> None:
    wait = h.wait(t("10:30"))
    assert h.feed(wait) is IngestOutcome.STORED
    a = h.one()
    assert (a.kind, a.state, a.level, a.window, a.staff) == (
        "wait_over_limit", "open", "warning", None, None,
    )  # fmt: skip
    assert (a.ticket_id, a.leg, a.service, a.department) == ("20261102-A017", 1, "A", "social")
    assert a.opened == t("10:30")
    assert a.appeal_deadline == t("00:00", day=17)  # 10 working days: end of Mon 11-16
    assert a.rectify_deadline == t("00:00", day=10)  # 5 working days: end of Mon 11-09
    assert [m.id for m in h.alerts()] == [a.id]
    # a call at window 1 by staff s01 fills window, staff and the window's department
    h.feed(h.ticket(TicketEventType.CALLED, t("10:41"), "1", staff="s01", wait_s=2460))
    a = h.one()
    assert (a.window, a.staff, a.department) == ("1", "s01", "tax")
    assert h.actions(a.id) == [
        ("opened", None, "open", "warning"),
        ("window_filled", "open", "open", "warning"),
    ]
    assert h.evidence(a.id) == ["wait", "ticket"]
    assert len(h.alerts()) == 1  # filling the window is no alert
    assert [e.type for e in h.bus.events].count("anomaly") == 2


def test_a_call_that_arrives_before_its_wait_fact_still_fills_the_window(h: Harness) -> None:
    # Replicas or a replay can deliver the call first: the call is remembered.
    h.feed(h.ticket(TicketEventType.CALLED, t("10:41"), "1", staff="s01", wait_s=2460))
    assert h.anomalies() == []
    h.feed(h.wait(t("10:30")))
    a = h.one()
    assert (a.window, a.staff, a.department) == ("1", "s01", "tax")
    assert h.evidence(a.id) == ["wait", "ticket"]
    assert [x[0] for x in h.actions(a.id)] == ["opened", "window_filled"]


def test_a_late_call_of_an_earlier_leg_does_not_fill_a_later_leg(h: Harness) -> None:
    h.feed(h.wait(t("10:30"), leg=1))
    h.feed(h.ticket(TicketEventType.CALLED, t("10:40"), "1"))
    h.feed(h.wait(t("11:20"), leg=2))
    stale = h.ticket(TicketEventType.RECALLED, t("10:41"), "2")  # older than leg 2's wait
    h.feed(stale)
    leg1, leg2 = h.anomalies()
    assert (leg1.leg, leg1.window, leg2.leg, leg2.window) == (1, "1", 2, None)
    h.feed(h.ticket(TicketEventType.SERVICE_STARTED, t("11:35"), "3"))
    leg2 = h.anomalies()[1]
    assert (leg2.window, leg2.department) == ("3", "social")  # window 3 has none: service's


def test_other_ticket_events_and_unknown_tickets_change_nothing(h: Harness) -> None:
    h.feed(h.wait(t("10:30")))
    h.feed(h.ticket(TicketEventType.ISSUED, t("10:31"), None, ticket="A018"))
    h.feed(h.ticket(TicketEventType.CALLED, t("10:32"), "2", ticket="A099"))  # no anomaly
    h.feed(h.ticket(TicketEventType.SERVICE_ENDED, t("10:50"), "1"))  # not a call
    assert h.one().window is None


def test_trips_one_anomaly_per_case_later_trips_add_evidence(h: Harness) -> None:
    h.feed(h.trips(t("10:00"), 2, window="2", staff="s02", case_no="C1"))
    a = h.one()
    assert (a.kind, a.case_ref, a.case_no, a.window, a.department) == (
        "trips_over_promise", "case:C1", "C1", "2", "social",
    )  # fmt: skip
    h.feed(h.trips(t("10:00", day=4), 3, window="1", case_no="C1"))
    a = h.one()
    assert h.evidence(a.id) == ["trips", "trips"]
    assert [x[0] for x in h.actions(a.id)] == ["opened", "evidence_added"]
    assert a.window == "2"  # the anomaly keeps the window it opened at
    assert len(h.alerts()) == 1


def test_a_trip_after_the_case_anomaly_closed_opens_a_new_one(h: Harness) -> None:
    h.feed(h.trips(t("10:00"), 2, case_no="C1"))
    first = h.one()
    h.register.rectify(HALL, first.id, actor="m", now=t("11:00"))
    h.register.close(HALL, first.id, actor="o", now=t("12:00"))
    h.feed(h.trips(t("10:00", day=5), 3, case_no="C1"))
    closed, new = h.anomalies()
    assert (closed.id, closed.state, new.state) == (first.id, "closed", "open")
    assert h.evidence(closed.id) == ["trips"] and h.evidence(new.id) == ["trips"]


def test_trips_of_one_applicant_merge_when_the_case_number_arrives(h: Harness) -> None:
    h.feed(h.trips(t("10:00"), 2, case_ref=f"applicant:{KEY}:A", applicant_key=KEY))
    h.feed(h.trips(t("10:00", day=3), 3, case_ref="case:C7", case_no="C7", applicant_key=KEY))
    a = h.one()
    assert a.case_no == "C7" and h.evidence(a.id) == ["trips", "trips"]
    h.feed(h.trips(t("10:00", day=4), 2, case_ref=f"applicant:{KEY}:B", applicant_key=KEY,
                   service="B"))  # fmt: skip
    assert len(h.anomalies()) == 2  # another service: another case


@pytest.mark.parametrize(
    ("level", "extra", "kind"),
    [
        (RatingLevel.DISSATISFIED, {}, "bad_rating"),
        (RatingLevel.VERY_DISSATISFIED, {"attitude": Attitude.BAD}, "bad_rating"),
        (RatingLevel.SATISFIED, {"attitude": Attitude.BAD}, "bad_attitude"),
        (RatingLevel.BASICALLY_SATISFIED,
         {"dimensions": {RatingDimension.ATTITUDE: RatingLevel.DISSATISFIED}}, "bad_attitude"),
        (RatingLevel.VERY_SATISFIED, {}, None),
        (RatingLevel.SATISFIED, {"attitude": Attitude.GOOD}, None),
        (RatingLevel.SATISFIED,
         {"dimensions": {RatingDimension.QUALITY: RatingLevel.DISSATISFIED}}, None),
    ],
)  # fmt: skip
def test_ratings(h: Harness, level: RatingLevel, extra: dict[str, Any], kind: str | None) -> None:
    fact = h.rating(t("11:00"), level, window="1", staff="s01", case_no="K1", **extra)
    assert h.feed(fact) is IngestOutcome.STORED
    found = h.anomalies()
    if kind is None:
        assert found == [] and h.alerts() == []
        return
    (a,) = found
    assert (a.kind, a.rating_id, a.window, a.department, a.case_no) == (
        kind, "r1", "1", "tax", "K1",
    )  # fmt: skip
    assert h.evidence(a.id) == ["rating"]


# -- second evaluation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("second", "extra", "state", "decision"),
    [
        (RatingLevel.SATISFIED, {}, "overturned", "overturned"),
        (RatingLevel.DISSATISFIED, {}, "upheld", "upheld"),
        (RatingLevel.SATISFIED, {"attitude": Attitude.BAD}, "upheld", "upheld"),
    ],
)
def test_second_evaluation_decides_the_appeal(
    h: Harness, second: RatingLevel, extra: dict[str, Any], state: str, decision: str
) -> None:
    h.feed(h.rating(t("11:00"), RatingLevel.DISSATISFIED, case_no="K1", window="1"))
    a = h.one()
    h.register.appeal(HALL, a.id, actor="manager", now=t("09:00", day=3))
    assert h.one().rectify_deadline is None  # suspended while appealed
    h.now = t("10:00", day=5)  # Thursday
    h.feed(h.rating(t("10:00", day=5), second, rating_id="r2", case_no="K1", evaluation=2,
                    **extra))  # fmt: skip
    a = h.one()  # no new anomaly: the second evaluation is evidence
    assert (a.state, a.decision) == (state, decision)
    assert h.evidence(a.id) == ["rating", "rating"]
    assert [x[0] for x in h.actions(a.id)] == [
        "opened", "appeal", "second_evaluation", "decision",
    ]  # fmt: skip
    if state == "upheld":  # 5 working days from Thu 11-05: end of Thu 11-12
        assert a.rectify_deadline == t("00:00", day=13)
    else:
        assert a.rectify_deadline is None
        h.register.close(HALL, a.id, actor="officer", now=t("11:00", day=5))
        assert h.one().state == "closed"


def test_second_evaluation_by_ticket_without_appeal_and_without_anomaly(h: Harness) -> None:
    h.feed(h.rating(t("11:00"), RatingLevel.DISSATISFIED, ticket_id="20261102-A017"))
    a = h.one()
    h.feed(h.rating(t("11:30"), RatingLevel.SATISFIED, rating_id="r2", evaluation=2,
                    ticket_id="20261102-A017"))  # fmt: skip
    a = h.one()
    assert a.state == "open" and h.evidence(a.id) == ["rating", "rating"]
    # a second evaluation of a case without a rating anomaly is a first rating
    h.feed(h.rating(t("11:40"), RatingLevel.DISSATISFIED, rating_id="r3", evaluation=2,
                    case_no="K9"))  # fmt: skip
    assert [x.rating_id for x in h.anomalies()] == ["r1", "r3"]


# -- lifecycle -----------------------------------------------------------------------------


def test_full_lifecycle_is_recorded_and_forbidden_steps_refused(h: Harness) -> None:
    h.feed(h.wait(t("10:30")))
    a = h.one()
    reg = h.register
    with pytest.raises(TransitionError, match="cannot close"):
        reg.close(HALL, a.id, actor="o")
    with pytest.raises(TransitionError, match="cannot decision"):
        reg.decide(HALL, a.id, Decision.UPHELD, actor="o")
    reg.appeal(HALL, a.id, actor="manager", note="叫号机故障", now=t("09:00", day=3))
    with pytest.raises(TransitionError):
        reg.appeal(HALL, a.id, actor="manager")
    with pytest.raises(TransitionError):
        reg.rectify(HALL, a.id, actor="manager")
    reg.decide(HALL, a.id, Decision.UPHELD, actor="officer", now=t("10:00", day=4))
    reg.rectify(HALL, a.id, actor="manager", now=t("10:00", day=5))
    reg.close(HALL, a.id, actor="officer", now=t("11:00", day=5))
    a = h.one()
    assert (a.state, a.decision, a.closed_at) == ("closed", "upheld", t("11:00", day=5))
    assert h.actions(a.id) == [
        ("opened", None, "open", "warning"),
        ("appeal", "open", "appealed", "warning"),
        ("decision", "appealed", "upheld", "warning"),
        ("rectify", "upheld", "rectified", "warning"),
        ("close", "rectified", "closed", "warning"),
    ]
    with pytest.raises(TransitionError):
        reg.rectify(HALL, a.id, actor="manager")
    with pytest.raises(TransitionError):
        reg.second_evaluation(HALL, a.id, level=RatingLevel.SATISFIED, actor="o")
    assert [(m.state.value, m.level) for m in h.alerts()] == [
        ("open", "warning"), ("resolved", "warning"),
    ]  # fmt: skip


def test_appeal_past_its_deadline_is_refused(h: Harness) -> None:
    h.feed(h.wait(t("10:30")))
    a = h.one()
    with pytest.raises(DeadlineError):
        h.register.appeal(HALL, a.id, actor="manager", now=t("00:00", day=17))
    h.register.appeal(HALL, a.id, actor="manager", now=t("23:59", day=16))
    assert h.one().state == "appealed"


# -- red cards -----------------------------------------------------------------------------


def test_red_card_past_the_rectification_deadline(h: Harness) -> None:
    h.feed(h.wait(t("10:30")))
    h.feed(h.wait(t("10:35"), ticket="A018"))
    first, second = h.anomalies()
    h.register.rectify(HALL, second.id, actor="manager", now=t("10:00", day=6))
    assert h.register.escalate(t("23:59", day=9)) == []
    (alert,) = h.register.escalate(t("00:00", day=10))
    assert (alert.id, alert.level, alert.state.value) == (first.id, "red", "open")
    first, second = h.anomalies()
    assert (first.level, first.red_at, second.level) == ("red", t("00:00", day=10), "warning")
    assert h.actions(first.id)[-1] == ("escalated", "open", "open", "red")
    assert h.register.escalate(t("00:00", day=11)) == []  # once
    assert [m.level for m in h.alerts() if m.id == first.id] == ["warning", "red"]


def test_appeal_suspends_the_deadline(h: Harness) -> None:
    h.feed(h.wait(t("10:30")))
    a = h.one()
    h.register.appeal(HALL, a.id, actor="manager", now=t("09:00", day=3))
    assert h.register.escalate(t("00:00", day=20)) == []


def test_red_card_by_anomalies_at_one_window(tmp_path: Path) -> None:
    h = Harness(tmp_path, case_hall(red_card={"anomalies": 3, "period_days": 30}))
    try:
        old = h.rating(t("10:00", day=1, month=10), RatingLevel.DISSATISFIED, rating_id="r0",
                       window="2")  # fmt: skip
        h.feed(old)  # 32 days before: outside the period
        h.feed(h.rating(t("10:00"), RatingLevel.DISSATISFIED, rating_id="r1", window="2"))
        h.feed(h.rating(t("10:05"), RatingLevel.DISSATISFIED, rating_id="r2", window="2"))
        overturned = h.anomalies()[-1]
        h.register.appeal(HALL, overturned.id, actor="m", now=t("10:10"))
        h.register.decide(HALL, overturned.id, Decision.OVERTURNED, actor="o", now=t("10:11"))
        h.feed(h.rating(t("10:20"), RatingLevel.DISSATISFIED, rating_id="r3", window="2"))
        h.feed(h.rating(t("10:25"), RatingLevel.DISSATISFIED, rating_id="r4", window="1"))
        assert all(a.level == "warning" for a in h.anomalies())
        # a wait anomaly that gets window 2 is the third there: red
        h.feed(h.wait(t("10:30")))
        h.feed(h.ticket(TicketEventType.CALLED, t("10:40"), "2"))
        wait = next(a for a in h.anomalies() if a.kind == "wait_over_limit")
        assert wait.level == "red"
        assert [x[0] for x in h.actions(wait.id)] == ["opened", "window_filled", "escalated"]
        assert [m.level for m in h.alerts() if m.id == wait.id] == ["warning", "red"]
        # a fourth at window 2 opens red: one alert, already red
        h.feed(h.rating(t("10:50"), RatingLevel.DISSATISFIED, rating_id="r5", window="2"))
        r5 = next(a for a in h.anomalies() if a.rating_id == "r5")
        assert r5.level == "red"
        assert [m.level for m in h.alerts() if m.id == r5.id] == ["red"]
    finally:
        h.close()


# -- duplicates, queue gauges, series ------------------------------------------------------


def test_duplicates_open_one_anomaly(h: Harness) -> None:
    rating = h.rating(t("11:00"), RatingLevel.DISSATISFIED)
    assert h.feed(rating) is IngestOutcome.STORED
    assert h.feed(rating) is IngestOutcome.DUPLICATE
    again = h.rating(t("11:00"), RatingLevel.DISSATISFIED)  # same rating id, new fact id
    assert again.id != rating.id
    assert h.feed(again) is IngestOutcome.STORED
    h.feed(h.wait(t("10:30")))
    h.feed(h.wait(t("10:31")))  # the same leg reported again in another fact
    kinds = sorted(a.kind for a in h.anomalies())
    assert kinds == ["bad_rating", "wait_over_limit"]
    for a in h.anomalies():
        assert h.evidence(a.id) == [a.source]
        assert [x[0] for x in h.actions(a.id)] == ["opened"]
    assert len(h.alerts()) == 2


def test_queue_gauges_update_state_and_stale_ones_do_not(h: Harness) -> None:
    def gauge(at: datetime, waiting: int) -> QueueFact:
        body = QueueBody(services=[ServiceQueue(service="A", waiting=waiting, longest_wait_s=60)])
        return QueueFact(hall=HALL, source="edge-1", ts=at, body=body)

    h.feed(gauge(t("10:00"), 5))
    h.feed(gauge(t("10:01"), 7))
    h.feed(gauge(t("09:59"), 1))  # older: ignored
    (row,) = h.register.queue(HALL)
    assert (row.service, row.waiting, row.ts) == ("A", 7, t("10:01"))
    queue_events = [e for e in h.bus.events if e.type == "queue"]
    assert len(queue_events) == 2
    assert queue_events[-1].data["services"] == [
        {"service": "A", "waiting": 7, "longest_wait_s": 60.0}
    ]
    points = h.series.query("queue", hall=HALL, start=t("09:00"), end=t("11:00"))
    assert [p.fields["waiting"] for p in points] == [1, 5, 7]


def test_series_points_carry_no_ids_as_tags(h: Harness) -> None:
    h.feed(h.ticket(TicketEventType.CALLED, t("10:40"), "1", wait_s=600, case_no="C1"))
    h.feed(h.rating(t("11:00"), RatingLevel.VERY_SATISFIED, window="1", case_no="C1",
                    ticket_id="20261102-A017"))  # fmt: skip
    h.feed(h.rating(t("11:01"), RatingLevel.VERY_DISSATISFIED, rating_id="r2"))
    h.feed(h.wait(t("10:30"), applicant_key=KEY, case_no="C1"))
    h.feed(h.trips(t("10:00"), 2, applicant_key=KEY, window="1"))
    start, end = t("09:00"), t("12:00")
    (ticket,) = h.series.query("ticket_event", hall=HALL, start=start, end=end)
    assert ticket.tags == {"hall": HALL, "service": "A", "event": "called", "window": "1"}
    assert ticket.fields == {"count": 1, "wait_s": 600.0}
    ratings = h.series.query("rating", hall=HALL, start=start, end=end)
    assert [(p.fields["score"], p.fields["bad"]) for p in ratings] == [(5, 0), (1, 1)]
    assert ratings[0].tags == {
        "hall": HALL, "level": "very_satisfied", "channel": "evaluator", "window": "1",
    }  # fmt: skip
    (wait,) = h.series.query("wait_over_limit", hall=HALL, start=start, end=end)
    (trips,) = h.series.query("trips_over_promise", hall=HALL, start=start, end=end)
    assert trips.fields == {"trips": 2, "promised": 1}
    for p in (ticket, *ratings, wait, trips):
        values = set(p.tags.values())
        assert not values & {"C1", "A017", "20261102-A017", KEY, "r1", "r2"}


def test_a_register_failure_dead_letters_the_fact_instead_of_losing_the_anomaly(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("bug while opening 110105194912310021")

    monkeypatch.setattr("aggregator.cases.from_facts.on_wait", broken)
    wait = h.wait(t("10:30"))
    assert h.feed(wait) is IngestOutcome.DEAD_LETTERED
    assert h.anomalies() == [] and h.state.seen_count() == 0  # not marked seen: replayable
    (letter,) = h.state.dead_letters()
    assert "anomaly register failed" in letter.reason and "RuntimeError" in letter.reason
    assert "110105194912310021" not in letter.reason
    monkeypatch.undo()
    assert h.feed(wait) is IngestOutcome.STORED  # replayed after the fix
    assert [a.kind for a in h.anomalies()] == ["wait_over_limit"]
