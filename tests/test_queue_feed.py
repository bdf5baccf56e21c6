"""The queue feed: state across restarts, duplicates, rejected input, gauges, wall clock."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from edge.feeds.base import FeedMessage, FeedStore
from edge.feeds.queue_adapters import make_adapter
from edge.feeds.queue_feed import QueueFeed
from hallwatch.contract import (
    Fact,
    QueueFact,
    TicketFact,
    TripsFact,
    WaitFact,
    encode,
    parse_fact,
)
from tests.test_wait_clock import TOPIC, hall_time, message, queue_hall


def at(hhmm: str, day: str = "2026-11-02") -> datetime:
    """An aware time, hall-local ``hhmm`` (or ``hh:mm:ss``) on ``day``."""
    seconds = "" if hhmm.count(":") == 2 else ":00"
    return datetime.fromisoformat(f"{day}T{hhmm}{seconds}+08:00")


def test_facts_have_the_envelope_and_event_times() -> None:
    hall = queue_hall()
    feed = QueueFeed(hall, FeedStore(":memory:"))
    [fact] = feed.handle(message("issued", "A001", "09:00", service="A"))
    assert isinstance(fact, TicketFact)
    assert (fact.hall, fact.source, fact.ts) == ("h1", "edge-h1", at("09:00"))
    assert fact.body.ticket_id == "20261102-A001"
    assert parse_fact(encode(fact)) == fact
    assert feed.name == "queue" and feed.topic_filter == TOPIC


def test_waiting_ticket_breaches_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "feeds.sqlite"
    store = FeedStore(path)
    feed = QueueFeed(queue_hall(), store)
    feed.handle(message("issued", "A001", "09:00", service="A"))
    feed.handle(message("issued", "A002", "09:10", service="A"))
    feed.handle(message("called", "A002", "09:15", window="2"))
    store.close()

    store = FeedStore(path)
    feed = QueueFeed(queue_hall(), store)
    facts = feed.handle(message("issued", "A003", "09:45", service="A"))
    waits = [f for f in facts if isinstance(f, WaitFact)]
    assert [(w.body.ticket_id, hall_time(w.ts)) for w in waits] == [("20261102-A001", "09:30:00")]
    # The called ticket kept its state too: recalling it is allowed, calling it was first.
    [recall] = feed.handle(message("called", "A002", "09:50"))
    assert isinstance(recall, TicketFact)
    assert (recall.body.event, recall.body.wait_s) == ("recalled", 300.0)
    store.close()


def test_wall_clock_ticks_and_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "feeds.sqlite"
    now = at("09:01")
    store = FeedStore(path)
    feed = QueueFeed(queue_hall(clock="wall"), store, now=lambda: now)
    feed.handle(message("issued", "A001", "09:00", service="A"))
    assert [f for f in feed.tick(at("09:29")) if isinstance(f, WaitFact)] == []
    store.close()

    store = FeedStore(path)
    feed = QueueFeed(queue_hall(clock="wall"), store, now=lambda: now)
    [wait] = [f for f in feed.tick(at("09:31")) if isinstance(f, WaitFact)]
    assert wait.ts == at("09:30")
    assert feed.tick(at("09:20")) == []  # never backwards
    assert feed.tick(at("09:32")) == []  # reported once
    store.close()


def test_wall_clock_refuses_events_from_the_future() -> None:
    store = FeedStore(":memory:")
    feed = QueueFeed(queue_hall(clock="wall"), store, now=lambda: at("09:00"))
    assert feed.handle(message("issued", "A001", "09:10", service="A")) == []
    [dead] = store.dead_letters("queue")
    assert "in the future" in dead.reason
    assert len(feed.handle(message("issued", "A001", "09:04", service="A"))) == 1


def test_events_clock_ignores_ticks() -> None:
    feed = QueueFeed(queue_hall(clock="events"), FeedStore(":memory:"))
    feed.handle(message("issued", "A001", "09:00", service="A"))
    assert feed.tick(at("12:00")) == []


def test_duplicates_dropped_and_not_counted_twice() -> None:
    store = FeedStore(":memory:")
    feed = QueueFeed(queue_hall(), store)
    facts: list[Fact] = []
    for day in ("2026-11-02", "2026-11-03"):
        for event, hhmm, extra in [
            ("issued", "09:00", {"service": "A", "case_no": "BJ1"}),
            ("issued", "09:00", {"service": "A", "case_no": "BJ1"}),
            ("called", "09:05", {"window": "3"}),
            ("called", "09:05", {"window": "3"}),
            ("service_ended", "09:20", {}),
            ("service_ended", "09:20", {}),
        ]:
            facts += feed.handle(message(event, "A001", f"{day}T{hhmm}:00+08:00", **extra))
    tickets = [(f.body.ticket_id, f.body.event) for f in facts if isinstance(f, TicketFact)]
    assert len(tickets) == len(set(tickets)) == 6
    assert [f.body.trips for f in facts if isinstance(f, TripsFact)] == [2]
    assert feed.counts["duplicate"] == 6
    assert store.dead_letters() == []


def test_bad_input_dead_lettered_with_reasons_and_nothing_changed() -> None:
    store = FeedStore(":memory:")
    feed = QueueFeed(queue_hall(), store)
    feed.handle(message("issued", "A001", "09:00", service="A"))
    feed.handle(message("called", "A001", "09:10", window="3"))
    bad = [
        FeedMessage(TOPIC, b"\xff{garbage", datetime(2026, 11, 2, tzinfo=UTC)),
        message("no_show", "A001", "09:05"),  # older than the ticket's last event
        message("called", "B404", "09:20"),  # never issued
        message("checked_in", "A001", "09:20"),  # cannot happen once called
        message("issued", "A001", "09:30", service="A"),  # same number, same day
    ]
    for msg in bad:
        assert feed.handle(msg) == []
    reasons = [d.reason for d in store.dead_letters("queue")]
    assert len(reasons) == 5
    assert "not JSON" in reasons[0]
    assert "out of order" in reasons[1] and "older than" in reasons[1]
    assert "no open ticket B404" in reasons[2]
    assert "checked_in: ticket 20261102-A001 is called" in reasons[3]
    assert "already issued" in reasons[4]
    # A rejected event changes nothing, and does not move the feed's time.
    assert feed.tracker.feed_time() == at("09:10")
    [no_show] = feed.handle(message("no_show", "A001", "09:12"))
    assert isinstance(no_show, TicketFact) and no_show.body.event == "no_show"


def test_events_after_the_ticket_ended_are_rejected() -> None:
    store = FeedStore(":memory:")
    feed = QueueFeed(queue_hall(), store)
    feed.handle(message("issued", "A001", "16:50", service="A"))
    feed.handle(message("issued", "A002", "17:05", service="A"))  # closes the day
    assert feed.handle(message("called", "A001", "17:06")) == []
    assert "no open ticket A001" in store.dead_letters()[0].reason


def test_gauges_every_interval_of_feed_time() -> None:
    feed = QueueFeed(queue_hall(gauge_interval_s=300, clock="wall"), FeedStore(":memory:"))
    feed.handle(message("issued", "A001", "09:00", service="A"))
    feed.handle(message("issued", "B001", "09:02", service="B"))
    feed.handle(message("issued", "A002", "09:03", service="A"))
    feed.handle(message("called", "A002", "09:04", window="1"))
    gauges = [f for f in feed.tick(at("09:05:30")) if isinstance(f, QueueFact)]
    assert [hall_time(g.ts) for g in gauges] == ["09:05:00"]  # 5 min after the first event
    services = [(s.service, s.waiting, s.longest_wait_s) for s in gauges[0].body.services]
    assert services == [("A", 1, 300.0), ("B", 1, 180.0)]
    assert [f for f in feed.tick(at("09:09")) if isinstance(f, QueueFact)] == []
    later = [f for f in feed.tick(at("09:25")) if isinstance(f, QueueFact)]
    assert [hall_time(g.ts) for g in later] == ["09:25:00"]  # missed slots are not replayed
    assert later[0].body.services[0].longest_wait_s == 25 * 60.0


def test_gauges_include_no_shows_and_transfer_targets() -> None:
    feed = QueueFeed(queue_hall(gauge_interval_s=600), FeedStore(":memory:"))
    feed.handle(message("issued", "A001", "09:00", service="A"))
    feed.handle(message("called", "A001", "09:01", window="1"))
    feed.handle(message("no_show", "A001", "09:02"))
    feed.handle(message("issued", "A002", "09:03", service="A"))
    feed.handle(message("transferred", "A002", "09:04", to_service="C"))
    facts = feed.handle(message("issued", "A003", "09:11", service="A"))
    [gauge] = [f for f in facts if isinstance(f, QueueFact)]
    assert gauge.ts == at("09:10")
    services = {s.service: (s.waiting, s.longest_wait_s) for s in gauge.body.services}
    assert services == {"A": (1, 60.0), "C": (1, 360.0)}  # no-show's wait froze at its call


def test_timers_come_out_in_time_order() -> None:
    feed = QueueFeed(queue_hall(gauge_interval_s=900), FeedStore(":memory:"))
    facts = feed.handle(message("issued", "A001", "09:00", service="A"))
    facts += feed.handle(message("issued", "A002", "09:20", service="A"))
    facts += feed.handle(message("issued", "A003", "10:00", service="A"))
    got = [(f.kind.value, hall_time(f.ts)) for f in facts]
    assert got == [
        ("ticket", "09:00:00"),
        ("queue", "09:15:00"),
        ("ticket", "09:20:00"),
        ("wait", "09:30:00"),
        ("queue", "09:45:00"),  # one gauge per stretch between timers
        ("wait", "09:50:00"),
        ("queue", "10:00:00"),
        ("ticket", "10:00:00"),
    ]


DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"


def test_protocol_doc_feed_examples_parse() -> None:
    text = DOC.read_text()
    facts = re.findall(r"### Example \(feeds\): (.+?)\n\n```json\n(.+?)\n```", text, re.S)
    assert {name for name, _ in facts} == {"ticket", "queue", "wait", "trips", "rating"}
    for name, example in facts:
        assert parse_fact(example).kind == name
    messages = dict(re.findall(r"#### Message example: (.+?)\n\n```json\n(.+?)\n```", text, re.S))
    assert set(messages) == {"generic_json", "numeric_state", "webhook"}
    for adapter, example in messages.items():
        config = queue_hall(adapter=adapter).queue
        assert config is not None
        event = make_adapter(config, ZoneInfo("Asia/Shanghai")).parse(example.encode())
        assert (event.event, event.ticket, event.window) == ("called", "A017", "3")
        assert event.at == at("09:41:12")
