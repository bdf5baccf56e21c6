"""Trips (跑动次数) per case, docs/cases.md §1: visits are hall-local dates with a
``service_ended``; a case needing more than its promise sends a ``trips`` fact."""

from __future__ import annotations

from datetime import date
from typing import Any

from edge.feeds.applicant import applicant_key
from edge.feeds.base import FeedStore
from edge.feeds.queue_feed import QueueFeed
from hallwatch.contract import Fact, TicketFact, TripsFact
from tests.test_wait_clock import SALT, message, queue_hall

ID_NUMBER = "110105194912310021"


def visit(
    feed: QueueFeed, day: str, ticket: str, *, service: str = "A", hour: int = 9, **ids: Any
) -> list[Fact]:
    """One ticket of ``day`` from issue to service_ended (window 3, staff S12)."""
    facts: list[Fact] = []
    steps = [
        ("issued", f"{hour:02d}:00", {"service": service, **ids}),
        ("called", f"{hour:02d}:05", {"window": "3", "staff": "S12"}),
        ("service_started", f"{hour:02d}:06", {}),
        ("service_ended", f"{hour:02d}:20", {"outcome": "incomplete"}),
    ]
    for event, at, extra in steps:
        facts.extend(feed.handle(message(event, ticket, f"{day}T{at}:00+08:00", **extra)))
    return facts


def trips(facts: list[Fact]) -> list[TripsFact]:
    return [f for f in facts if isinstance(f, TripsFact)]


def new_feed(**queue: Any) -> QueueFeed:
    return QueueFeed(queue_hall(**queue), FeedStore(":memory:"))


def test_second_trip_on_another_day_sends_trips() -> None:
    feed = new_feed()
    assert trips(visit(feed, "2026-11-02", "A001", case_no="BJ001")) == []
    second = visit(feed, "2026-11-03", "A007", case_no="BJ001")
    [fact] = trips(second)
    body = fact.body
    assert (body.case_ref, body.case_no, body.trips, body.promised) == ("case:BJ001", "BJ001", 2, 1)
    assert body.visits == [date(2026, 11, 2), date(2026, 11, 3)]
    assert (body.ticket_id, body.window, body.staff, body.service) == (
        "20261103-A007",
        "3",
        "S12",
        "A",
    )
    ended = [f for f in second if isinstance(f, TicketFact) and f.body.event == "service_ended"]
    assert fact.ts == ended[0].ts
    assert second[-1] is fact  # sent after the service_ended that caused it


def test_case_number_on_a_later_event_counts() -> None:
    feed = new_feed()
    visit(feed, "2026-11-02", "A001", case_no="BJ001")
    facts = []
    for event, at, extra in [
        ("issued", "09:00", {"service": "A"}),
        ("called", "09:05", {"window": "3", "case_no": "BJ001"}),
        ("service_ended", "09:20", {}),
    ]:
        facts += feed.handle(message(event, "A002", f"2026-11-04T{at}:00+08:00", **extra))
    assert [f.body.trips for f in trips(facts)] == [2]


def test_same_day_second_ticket_is_not_a_trip() -> None:
    feed = new_feed()
    facts = visit(feed, "2026-11-02", "A001", case_no="BJ001")
    facts += visit(feed, "2026-11-02", "A002", case_no="BJ001", hour=14)
    assert trips(facts) == []


def test_third_trip_reported_again_and_each_count_once() -> None:
    feed = new_feed()
    visit(feed, "2026-11-02", "A001", case_no="BJ001")
    assert [f.body.trips for f in trips(visit(feed, "2026-11-03", "A001", case_no="BJ001"))] == [2]
    same_day = visit(feed, "2026-11-03", "A002", case_no="BJ001", hour=14)
    assert trips(same_day) == []
    assert [f.body.trips for f in trips(visit(feed, "2026-11-04", "A001", case_no="BJ001"))] == [3]


def test_applicant_visits_without_case_number() -> None:
    feed = new_feed()
    key = applicant_key(ID_NUMBER, SALT)
    visit(feed, "2026-11-02", "A001", id_number=ID_NUMBER)
    other_service = visit(feed, "2026-11-03", "B001", service="B", id_number=ID_NUMBER)
    assert trips(other_service) == []  # another service is another case
    [fact] = trips(visit(feed, "2026-11-04", "A001", id_number=ID_NUMBER.replace("1", "1 ", 1)))
    assert fact.body.case_ref == f"applicant:{key}:A"
    assert (fact.body.applicant_key, fact.body.case_no, fact.body.trips) == (key, None, 2)


def test_applicant_visits_merged_into_the_case_number() -> None:
    feed = new_feed()
    key = applicant_key(ID_NUMBER, SALT)
    visit(feed, "2026-11-02", "A001", id_number=ID_NUMBER)
    [fact] = trips(visit(feed, "2026-11-03", "A004", id_number=ID_NUMBER, case_no="BJ009"))
    body = fact.body
    assert (body.case_ref, body.case_no, body.applicant_key, body.trips) == (
        "case:BJ009",
        "BJ009",
        key,
        2,
    )
    # A later visit by the applicant alone still counts on the case.
    [third] = trips(visit(feed, "2026-11-04", "A002", id_number=ID_NUMBER))
    assert (third.body.case_ref, third.body.trips) == ("case:BJ009", 3)


def test_tickets_without_case_or_applicant_are_not_counted() -> None:
    feed = new_feed()
    facts = visit(feed, "2026-11-02", "A001") + visit(feed, "2026-11-03", "A001")
    assert trips(facts) == []


def test_promise_override_per_service() -> None:
    feed = new_feed(services=[{"id": "A", "promised_trips": 2}])
    assert trips(visit(feed, "2026-11-02", "A001", case_no="BJ1")) == []
    assert trips(visit(feed, "2026-11-03", "A001", case_no="BJ1")) == []
    [fact] = trips(visit(feed, "2026-11-04", "A001", case_no="BJ1"))
    assert (fact.body.trips, fact.body.promised) == (3, 2)
    # The hall default (1) still applies to other services.
    visit(feed, "2026-11-02", "B001", service="B", case_no="BJ2")
    assert [
        f.body.promised
        for f in trips(visit(feed, "2026-11-05", "B001", service="B", case_no="BJ2"))
    ] == [1]


def test_hall_promise_default_override() -> None:
    feed = new_feed(promised_trips=2)
    visit(feed, "2026-11-02", "A001", case_no="BJ1")
    assert trips(visit(feed, "2026-11-03", "A001", case_no="BJ1")) == []


def test_visits_beyond_trip_link_days_are_forgotten() -> None:
    feed = new_feed(trip_link_days=5)
    visit(feed, "2026-11-02", "A001", case_no="BJ1")
    assert trips(visit(feed, "2026-11-09", "A001", case_no="BJ1")) == []  # 7 days later
    [fact] = trips(visit(feed, "2026-11-12", "A001", case_no="BJ1"))  # 3 days after the last
    assert (fact.body.trips, fact.body.visits) == (2, [date(2026, 11, 9), date(2026, 11, 12)])


def test_a_count_is_never_reported_twice_when_old_visits_are_forgotten() -> None:
    feed = new_feed(trip_link_days=5)

    def counts(day: str) -> list[int]:
        return [f.body.trips for f in trips(visit(feed, day, "A001", case_no="BJ1"))]

    assert counts("2026-11-02") == []
    assert counts("2026-11-03") == [2]
    assert counts("2026-11-04") == [3]
    assert counts("2026-11-08") == []  # 11-02 forgotten: 3 linked again, 3 was reported
    assert counts("2026-11-09") == []  # 11-03 forgotten: still 3
    assert counts("2026-11-10") == []  # 11-04 forgotten: 3
    assert counts("2026-11-11") == [4]  # a count not yet reported
    # Every earlier visit forgotten: the case starts over and counts from one again.
    assert counts("2026-11-30") == []
    assert counts("2026-12-01") == [2]
