"""The queue feed: state across restarts, duplicates, rejected input, gauges, wall clock."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

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
from tests.test_wait_clock import LATER, TOPIC, hall_time, message, queue_hall

CST = ZoneInfo("Asia/Shanghai")


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


def _transfers(feed: QueueFeed, ticket: str, count: int) -> list[Fact]:
    """``count`` transfers of ``ticket`` from 09:01:00, one a second, alternating services."""
    facts: list[Fact] = []
    for i in range(count):
        when = f"09:{1 + i // 60:02d}:{i % 60:02d}"
        facts += feed.handle(message("transferred", ticket, when, to_service="AB"[i % 2]))
    return facts


def test_a_transfer_past_the_most_legs_is_refused_and_the_feed_goes_on() -> None:
    store = FeedStore(":memory:")
    feed = QueueFeed(queue_hall(), store)
    feed.handle(message("issued", "A001", "09:00", service="A"))
    _transfers(feed, "A001", 99)  # legs 2 … 100
    assert feed.counts["dead_letter"] == 0
    assert feed.handle(message("transferred", "A001", "09:03:00", to_service="C")) == []
    [dead] = store.dead_letters("queue")
    assert "100 legs" in dead.reason
    facts = feed.handle(message("issued", "A002", "09:45", service="A"))
    waits = [(f.body.ticket, f.body.leg) for f in facts if isinstance(f, WaitFact)]
    assert waits == [("A001", 100)]
    assert [f.body.ticket for f in facts if isinstance(f, TicketFact)] == ["A002"]


def test_one_broken_ticket_never_wedges_the_timers(caplog: pytest.LogCaptureFixture) -> None:
    store = FeedStore(":memory:")
    feed = QueueFeed(queue_hall(), store)
    feed.handle(message("issued", "A001", "09:00", service="A"))
    feed.handle(message("issued", "A002", "09:01", service="A"))
    with store.transaction() as conn:  # a state the contract refuses (e.g. left by an old bug)
        conn.execute("UPDATE tickets SET leg = 101 WHERE ticket_id = '20261102-A001'")
    facts = feed.handle(message("issued", "A003", "09:40", service="A"))
    assert [(f.body.ticket, hall_time(f.ts)) for f in facts if isinstance(f, WaitFact)] == [
        ("A002", "09:31:00")
    ]
    assert [f.body.ticket for f in facts if isinstance(f, TicketFact)] == ["A003"]
    assert "20261102-A001" in caplog.text
    with store.reading() as conn:
        row = conn.execute(
            "SELECT breach_at FROM tickets WHERE ticket_id = '20261102-A001'"
        ).fetchone()
    assert row == (None,)  # its timer is cleared: it does not fail again at every event
    caplog.clear()
    later = feed.handle(message("issued", "A004", "10:20", service="A"))
    assert [f.body.ticket for f in later if isinstance(f, WaitFact)] == ["A003"]
    assert "20261102-A001" not in caplog.text
    # the broken ticket still ends at the day's close with the others
    end = feed.handle(message(*LATER, service="A"))
    closed = [
        f.body.ticket for f in end if isinstance(f, TicketFact) and f.body.event == "abandoned"
    ]
    assert closed == ["A001", "A002", "A003", "A004"]


def test_day_end_timers_come_out_in_time_order_whatever_their_kind() -> None:
    feed = QueueFeed(queue_hall(), FeedStore(":memory:"))
    friday, saturday, sunday = "2026-11-06", "2026-11-07", "2026-11-08"
    facts = feed.handle(message("issued", "A001", f"{friday}T16:50:00+08:00", service="A"))
    facts += feed.handle(message("called", "A001", f"{friday}T16:55:00+08:00", window="3"))
    # Saturday: no service, so B001's day ends at midnight, after A001's not_ended (05:00).
    facts += feed.handle(message("issued", "B001", f"{saturday}T04:00:00+08:00", service="A"))
    facts += feed.handle(message("issued", "Z999", f"{sunday}T01:00:00+08:00", service="A"))
    got = [
        (f.body.ticket, f.body.event, f.body.reason, f.ts.astimezone(CST).isoformat())
        for f in facts
        if isinstance(f, TicketFact) and f.body.event == "abandoned"
    ]
    assert got == [
        ("A001", "abandoned", "not_ended", "2026-11-07T05:00:00+08:00"),
        ("B001", "abandoned", "closed", "2026-11-08T00:00:00+08:00"),
    ]
    stamps = [f.ts for f in facts]
    assert stamps == sorted(stamps)


def _offset_feed() -> tuple[QueueFeed, Callable[..., list[Fact]]]:
    """A wall-clock feed and ``send(n, machine_time, delay_s, live=True)`` issuing A<n>."""
    edge_now = [at("09:00")]
    feed = QueueFeed(queue_hall(clock="wall"), FeedStore(":memory:"), now=lambda: edge_now[0])

    def send(n: int, machine: datetime, delay_s: float, live: bool = True) -> list[Fact]:
        edge_now[0] = machine + timedelta(seconds=delay_s)
        raw = message("issued", f"A{n:03d}", machine.isoformat(), service="A")
        return feed.handle(FeedMessage(raw.topic, raw.payload, edge_now[0], live=live))

    return feed, send


def test_a_machine_clock_off_by_more_than_30_s_is_warned_about_at_most_hourly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    feed, send = _offset_feed()
    for n in range(20):  # a backlog delivered late after a reconnect: not a clock offset
        send(n, at("08:00") + timedelta(seconds=n), 600, live=False)
    for n in range(20, 24):
        send(n, at("09:00") + timedelta(minutes=n - 20), 45)
    assert feed.clock_offset_s is None
    assert "clock" not in caplog.text
    for n in range(24, 40):  # 09:04 … 09:19, machine 45 s behind
        send(n, at("09:00") + timedelta(minutes=n - 20), 45)
    assert feed.clock_offset_s == 45
    warnings = [r for r in caplog.records if "NTP" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelname == "WARNING"
    assert "45 s behind" in warnings[0].getMessage()
    send(40, at("10:05"), 45)  # more than an hour after the first warning
    assert len([r for r in caplog.records if "NTP" in r.getMessage()]) == 2


def test_a_synced_machine_clock_is_not_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    feed, send = _offset_feed()
    for n in range(40):
        send(n, at("09:00") + timedelta(minutes=n), 0.5 if n % 7 else 90)  # a few slow ones
    assert feed.clock_offset_s == 0.5
    assert "NTP" not in caplog.text


def test_facts_are_staged_with_the_state_that_reports_them(tmp_path: Path) -> None:
    """The edge dies after the feed returned a wait, before writing it: it stays staged,
    and the leg (marked breached in the same transaction) is not reported again."""
    path = tmp_path / "feeds.sqlite"
    store = FeedStore(path)
    feed = QueueFeed(queue_hall(), store)
    [issued] = feed.handle(message("issued", "A001", "09:00", service="A"))
    facts = feed.handle(message("issued", "A002", "09:45", service="A"))
    assert [f.kind for f in facts] == ["wait", "ticket"]
    staged = store.pending()
    assert [(p.fact_id, p.feed, p.payload) for p in staged] == [
        (f.id, "queue", encode(f)) for f in [issued, *facts]
    ]
    store.close()  # nothing written: the process dies here

    store = FeedStore(path)
    feed = QueueFeed(queue_hall(), store)
    later = feed.handle(message("issued", "A003", "10:30", service="A"))
    waits = [f.body.ticket_id for f in later if isinstance(f, WaitFact)]
    assert waits == ["20261102-A002"]  # A001's leg was reported (staged) before the crash
    assert [p.fact_id for p in store.pending()][:3] == [f.id for f in [issued, *facts]]
    store.close()


def test_a_duplicate_or_dead_letter_stages_nothing() -> None:
    store = FeedStore(":memory:")
    feed = QueueFeed(queue_hall(), store)
    feed.handle(message("issued", "A001", "09:00", service="A"))
    before = store.pending()
    assert feed.handle(message("issued", "A001", "09:00", service="A")) == []
    assert feed.handle(message("called", "B404", "09:01")) == []
    assert store.pending() == before
