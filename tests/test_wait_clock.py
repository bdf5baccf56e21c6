"""The wait clock of docs/cases.md §1, over tricky timelines (table tests).

Each case is a timeline of generic JSON queue-machine events on Monday 2026-11-02 in a
hall open 09:00–17:00 with a lunch break 12:00–13:30 (Asia/Shanghai), replayed with
``clock: events``; the expected waits are worked out by hand from the rule book.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from edge.feeds.base import FeedMessage, FeedStore
from edge.feeds.queue_feed import QueueFeed
from hallwatch.config.feeds import QueueFeedConfig
from hallwatch.config.models import HallConfig
from hallwatch.contract import Fact, TicketFact, WaitFact
from tests.conftest import build_hall

SALT = "0123456789abcdef"
DAY = "2026-11-02"  # a Monday
TOPIC = "queue/h1"


def queue_hall(*, lunch_closed: bool = True, **queue: Any) -> HallConfig:
    """A test hall (build_hall, lunch closed unless said) with a queue feed."""
    queue.setdefault("clock", "events")
    queue.setdefault("gauge_interval_s", 3600)
    cfg = QueueFeedConfig(topic=TOPIC, applicant_salt=SALT, **queue)  # type: ignore[arg-type]
    return build_hall("h1", lunch_closed=lunch_closed).model_copy(update={"queue": cfg})


def message(event: str, ticket: str, at: str, **extra: Any) -> FeedMessage:
    """A generic JSON message; ``at`` is "HH:MM[:SS]" on DAY or a full RFC 3339 time."""
    when = at if "T" in at else f"{DAY}T{at if at.count(':') == 2 else at + ':00'}+08:00"
    body = {"event": event, "ticket": ticket, "at": when, **extra}
    return FeedMessage(TOPIC, json.dumps(body).encode(), datetime(2026, 11, 2, tzinfo=UTC))


def replay(feed: QueueFeed, events: list[tuple[Any, ...]]) -> list[Fact]:
    """Feed (event, ticket, at[, extra]) rows; all facts returned, in order."""
    facts: list[Fact] = []
    for row in events:
        extra = row[3] if len(row) > 3 else {}
        if row[0] == "issued":
            extra = {"service": "A", **extra}
        facts.extend(feed.handle(message(row[0], row[1], row[2], **extra)))
    return facts


def hall_time(dt: datetime) -> str:
    """Hall-local HH:MM:SS of an aware time."""
    return dt.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%H:%M:%S")


@dataclass
class Case:
    id: str
    events: list[tuple[Any, ...]]
    waits: list[tuple[str, int, str, float]]
    """(ticket, leg, hall time of the fact, waited minutes)."""
    call_waits: list[tuple[str, str, float]] = field(default_factory=list)
    """(event, ticket, wait_s in minutes) of called / recalled / service_started facts."""
    abandoned: list[tuple[str, str]] = field(default_factory=list)
    """(ticket, hall time) of abandoned-at-close facts."""
    settings: dict[str, Any] = field(default_factory=dict)
    lunch_closed: bool = True


LATER = ("issued", "Z999", "2026-11-03T08:00:00+08:00")
"""A next-day event: moves the events clock past the day's close."""

CASES = [
    Case(
        "breach-at-the-moment-not-at-call",
        [("issued", "A001", "09:00"), ("called", "A001", "09:45", {"window": "3"})],
        waits=[("A001", 1, "09:30:00", 30)],
        call_waits=[("called", "A001", 45)],
    ),
    Case(
        "called-in-time",
        [("issued", "A001", "09:00"), ("called", "A001", "09:29:59")],
        waits=[],
        call_waits=[("called", "A001", 29 + 59 / 60)],
    ),
    Case(
        "recall-after-no-show-first-call",
        [
            ("issued", "A001", "09:00"),
            ("called", "A001", "09:10"),
            ("no_show", "A001", "09:12"),
            ("recalled", "A001", "09:50"),
            ("service_started", "A001", "09:51"),
        ],
        waits=[],
        call_waits=[
            ("called", "A001", 10),
            ("recalled", "A001", 10),
            ("service_started", "A001", 10),
        ],
    ),
    Case(
        "recall-after-no-show-last-call",
        [
            ("issued", "A001", "09:00"),
            ("called", "A001", "09:10"),
            ("no_show", "A001", "09:12"),
            ("recalled", "A001", "09:50"),
            ("service_started", "A001", "09:51"),
        ],
        waits=[("A001", 1, "09:30:00", 30)],
        call_waits=[
            ("called", "A001", 10),
            ("recalled", "A001", 50),
            ("service_started", "A001", 50),
        ],
        settings={"wait_end": "last_call"},
    ),
    Case(
        "last-call-limit-passed-while-called-reported-at-no-show",
        [("issued", "A001", "09:00"), ("called", "A001", "09:25"), ("no_show", "A001", "09:35")],
        waits=[("A001", 1, "09:35:00", 35)],
        call_waits=[("called", "A001", 25)],
        settings={"wait_end": "last_call"},
    ),
    Case(
        "last-call-recall-in-time",
        [
            ("issued", "A001", "09:00"),
            ("called", "A001", "09:10"),
            ("no_show", "A001", "09:12"),
            ("called", "A001", "09:20"),  # a repeat call is a recall
        ],
        waits=[],
        call_waits=[("called", "A001", 10), ("recalled", "A001", 20)],
        settings={"wait_end": "last_call"},
    ),
    Case(
        "transfer-starts-a-new-leg",
        [
            ("issued", "A001", "09:00"),
            ("called", "A001", "09:10", {"window": "1"}),
            ("service_started", "A001", "09:11"),
            ("transferred", "A001", "09:15", {"to_service": "B"}),
            ("called", "A001", "09:50", {"window": "2"}),
        ],
        waits=[("A001", 2, "09:45:00", 30)],
        call_waits=[
            ("called", "A001", 10),
            ("service_started", "A001", 10),
            ("called", "A001", 35),
        ],
    ),
    Case(
        "transfer-to-a-queue-with-its-own-limit",
        [
            ("issued", "A001", "09:00"),
            ("called", "A001", "09:10"),
            ("transferred", "A001", "09:15", {"to_service": "C"}),
            ("called", "A001", "09:30"),
        ],
        waits=[("A001", 2, "09:20:00", 5)],
        call_waits=[("called", "A001", 10), ("called", "A001", 15)],
        settings={"services": [{"id": "C", "wait_limit_min": 5}]},
    ),
    Case(
        "per-service-limit",
        [("issued", "C001", "09:00", {"service": "C"}), ("called", "C001", "09:06")],
        waits=[("C001", 1, "09:05:00", 5)],
        call_waits=[("called", "C001", 6)],
        settings={"services": [{"id": "C", "wait_limit_min": 5}]},
    ),
    Case(
        "appointment-clock-starts-at-check-in",
        [
            ("issued", "A001", "09:00", {"channel": "appointment"}),
            ("checked_in", "A001", "09:20"),
            ("called", "A001", "09:45"),
        ],
        waits=[],
        call_waits=[("called", "A001", 25)],
        settings={"wait_start": "checked_in"},
    ),
    Case(
        "appointment-breach-counted-from-check-in",
        [
            ("issued", "A001", "09:00", {"channel": "appointment"}),
            ("checked_in", "A001", "09:20"),
            ("called", "A001", "09:55"),
        ],
        waits=[("A001", 1, "09:50:00", 30)],
        call_waits=[("called", "A001", 35)],
        settings={"wait_start": "checked_in"},
    ),
    Case(
        "appointment-with-wait-start-issued",
        [
            ("issued", "A001", "09:00", {"channel": "appointment"}),
            ("checked_in", "A001", "09:20"),
            ("called", "A001", "09:45"),
        ],
        waits=[("A001", 1, "09:30:00", 30)],
        call_waits=[("called", "A001", 45)],
    ),
    Case(
        "on-site-ticket-with-wait-start-checked-in",
        [("issued", "A001", "09:00", {"channel": "on_site"}), ("called", "A001", "09:45")],
        waits=[("A001", 1, "09:30:00", 30)],
        call_waits=[("called", "A001", 45)],
        settings={"wait_start": "checked_in"},
    ),
    Case(
        "lunch-does-not-count-in-service-time",
        [("issued", "A001", "11:50"), ("called", "A001", "13:45")],
        waits=[],
        call_waits=[("called", "A001", 25)],
    ),
    Case(
        "lunch-service-time-breach-after-lunch",
        [("issued", "A001", "11:50"), ("called", "A001", "14:00")],
        waits=[("A001", 1, "13:50:00", 30)],
        call_waits=[("called", "A001", 40)],
    ),
    Case(
        "lunch-counts-when-elapsed",
        [("issued", "A001", "11:50"), ("called", "A001", "13:45")],
        waits=[("A001", 1, "12:20:00", 30)],
        call_waits=[("called", "A001", 115)],
        settings={"wait_counts": "elapsed"},
    ),
    Case(
        "lunch-counts-when-the-hall-keeps-serving",
        [("issued", "A001", "11:50"), ("called", "A001", "13:45")],
        waits=[("A001", 1, "12:20:00", 30)],
        call_waits=[("called", "A001", 115)],
        lunch_closed=False,
    ),
    Case(
        "never-called-breaches-then-abandoned-at-close",
        [("issued", "A001", "16:00"), LATER],
        waits=[("A001", 1, "16:30:00", 30)],
        abandoned=[("A001", "17:00:00")],
    ),
    Case(
        "never-called-close-before-the-limit",
        [("issued", "A001", "16:45"), LATER],
        waits=[],
        abandoned=[("A001", "17:00:00")],
    ),
    Case(
        "never-called-elapsed-close-before-the-limit",
        [("issued", "A001", "16:45"), LATER],
        waits=[],
        abandoned=[("A001", "17:00:00")],
        settings={"wait_counts": "elapsed"},
    ),
    Case(
        "limit-exactly-at-close-breach-first",
        [("issued", "A001", "16:30"), LATER],
        waits=[("A001", 1, "17:00:00", 30)],
        abandoned=[("A001", "17:00:00")],
    ),
    Case(
        "no-show-never-recalled-abandoned-at-close",
        [
            ("issued", "A001", "09:00"),
            ("called", "A001", "09:10"),
            ("no_show", "A001", "09:11"),
            LATER,
        ],
        waits=[],
        call_waits=[("called", "A001", 10)],
        abandoned=[("A001", "17:00:00")],
    ),
    Case(
        "serving-ticket-not-abandoned",
        [
            ("issued", "A001", "16:50"),
            ("called", "A001", "16:55"),
            ("service_started", "A001", "16:56"),
            LATER,
        ],
        waits=[],
        call_waits=[("called", "A001", 5), ("service_started", "A001", 5)],
    ),
    Case(
        "waits-between-events-reported-in-order",
        [("issued", "A002", "09:05"), ("issued", "A001", "09:00:30"), ("issued", "A003", "10:00")],
        waits=[("A001", 1, "09:30:30", 30), ("A002", 1, "09:35:00", 30)],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_wait_clock(case: Case) -> None:
    feed = QueueFeed(
        queue_hall(lunch_closed=case.lunch_closed, **case.settings), FeedStore(":memory:")
    )
    facts = replay(feed, case.events)
    waits = [
        (f.body.ticket, f.body.leg, hall_time(f.ts), round(f.body.waited_s / 60, 4))
        for f in facts
        if isinstance(f, WaitFact)
    ]
    assert waits == [(t, leg, at, round(m, 4)) for t, leg, at, m in case.waits]
    call_waits = [
        (f.body.event.value, f.body.ticket, round((f.body.wait_s or 0) / 60, 4))
        for f in facts
        if isinstance(f, TicketFact) and f.body.wait_s is not None
    ]
    assert call_waits == [(e, t, round(m, 4)) for e, t, m in case.call_waits]
    abandoned = [
        (f.body.ticket, hall_time(f.ts))
        for f in facts
        if isinstance(f, TicketFact) and f.body.event == "abandoned" and f.body.reason == "closed"
    ]
    assert abandoned == case.abandoned
    for f in facts:
        if isinstance(f, WaitFact):
            assert f.body.waited_s >= f.body.limit_s


def test_breach_comes_before_the_event_that_reveals_it() -> None:
    feed = QueueFeed(queue_hall(), FeedStore(":memory:"))
    facts = replay(feed, [("issued", "A001", "09:00"), ("called", "A001", "09:45")])
    kinds = [(f.kind, getattr(f.body, "event", None)) for f in facts]
    assert kinds == [("ticket", "issued"), ("wait", None), ("ticket", "called")]
    assert [f.ts for f in facts] == sorted(f.ts for f in facts)


def test_at_most_one_wait_per_leg() -> None:
    feed = QueueFeed(queue_hall(wait_end="last_call"), FeedStore(":memory:"))
    facts = replay(
        feed,
        [
            ("issued", "A001", "09:00"),
            ("called", "A001", "09:40"),
            ("no_show", "A001", "09:41"),
            ("recalled", "A001", "10:30"),
            ("no_show", "A001", "10:31"),
            LATER,
        ],
    )
    assert [(f.body.leg, hall_time(f.ts)) for f in facts if isinstance(f, WaitFact)] == [
        (1, "09:30:00")
    ]


def test_a_ticket_called_before_closing_is_served_after_it() -> None:
    # 延时服务: a window finishes the applicant it called at 16:59; only tickets still
    # waiting are abandoned at the close, and a ticket left called for good is abandoned
    # (reason not_ended) half a day after the close.
    store = FeedStore(":memory:")
    feed = QueueFeed(queue_hall(), store)
    facts = replay(
        feed,
        [
            ("issued", "A001", "16:40"),
            ("issued", "A002", "16:41"),
            ("issued", "A003", "16:42"),
            ("called", "A001", "16:59", {"window": "1"}),
            ("called", "A003", "16:59:30", {"window": "2"}),
            ("service_started", "A001", "17:00:08", {"window": "1"}),
            ("service_ended", "A001", "17:02:55", {"window": "1", "outcome": "completed"}),
            ("issued", "Z999", "2026-11-03T09:00:00+08:00"),
        ],
    )
    ended = [
        (f.body.ticket, f.body.event.value, f.body.reason, hall_time(f.ts))
        for f in facts
        if isinstance(f, TicketFact) and f.body.event in ("abandoned", "service_ended")
    ]
    assert ended == [
        ("A002", "abandoned", "closed", "17:00:00"),
        ("A001", "service_ended", None, "17:02:55"),
        ("A003", "abandoned", "not_ended", "05:00:00"),
    ]
    assert store.dead_letters() == []


def test_a_ticket_transferred_after_closing_is_abandoned_then_not_before() -> None:
    store = FeedStore(":memory:")
    facts = replay(
        QueueFeed(queue_hall(), store),
        [
            ("issued", "A001", "16:40"),
            ("called", "A001", "16:55", {"window": "1"}),
            ("service_started", "A001", "16:56", {"window": "1"}),
            ("transferred", "A001", "17:10", {"window": "1", "to_service": "B"}),
            ("issued", "Z999", "2026-11-03T09:00:00+08:00"),
        ],
    )
    tail = [
        (f.body.event.value, f.body.reason, hall_time(f.ts))
        for f in facts
        if isinstance(f, TicketFact) and f.body.ticket == "A001"
    ][-2:]
    assert tail == [("transferred", None, "17:10:00"), ("abandoned", "closed", "17:10:00")]
    assert [f.ts for f in facts] == sorted(f.ts for f in facts)
    assert store.dead_letters() == []
