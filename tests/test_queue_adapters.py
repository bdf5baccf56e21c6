"""Queue-machine adapters: every event kind of each vendor format, bad input with its
reason, and the ID number never surviving parsing or dead-lettering."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr

from edge.feeds.applicant import applicant_key, mask_id_numbers
from edge.feeds.base import FeedMessage, FeedStore
from edge.feeds.queue_adapters import (
    GenericJsonAdapter,
    NumericStateAdapter,
    QueueAdapterError,
    QueueEvent,
    WebhookAdapter,
)
from edge.feeds.queue_feed import QueueFeed
from hallwatch.contract import TicketFact
from tests.test_wait_clock import SALT, TOPIC, queue_hall

ID_NUMBER = "11010519491231002X"
KEY = applicant_key(ID_NUMBER, SALT)
AT = datetime(2026, 11, 2, 1, 1, 12, tzinfo=UTC)  # 09:01:12 in the hall
TZ = ZoneInfo("Asia/Shanghai")

generic = GenericJsonAdapter(SecretStr(SALT))
numeric = NumericStateAdapter(SecretStr(SALT), TZ)
webhook = WebhookAdapter(SecretStr(SALT))


def raw(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def fields(event: QueueEvent) -> dict[str, Any]:
    """The event's fields that are set, enums as their values."""
    return {
        k: (v.value if hasattr(v, "value") else v)
        for k, v in asdict(event).items()
        if v is not None and k not in ("ticket", "at")
    }


# ---------------------------------------------------------------- applicant key


def test_applicant_key_normalises_and_is_salted() -> None:
    assert applicant_key(" 110105 19491231002x ", SecretStr(SALT)) == KEY
    assert len(KEY) == 32 and int(KEY, 16) >= 0
    assert applicant_key(ID_NUMBER, "another-salt-of-16") != KEY
    with pytest.raises(ValueError):
        applicant_key("   ", SALT)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"id_number": "11010519491231002X", "ticket": "A1"}',
        b'{"data": {"id_number": "1101 0519 4912 3100 2X"}}',
        b'{"sfzh": 110105194912310021}',
        b"not json 11010519491231002X here",
        b'{"note": "applicant 110105491231002 (old 15-digit)"}',
    ],
)
def test_mask_id_numbers(payload: bytes) -> None:
    masked = mask_id_numbers(payload)
    for secret in (b"11010519491231002", b"110105491231002", b"1101 0519"):
        assert secret not in masked
    assert b"*" in masked


# ---------------------------------------------------------------- generic_json

GENERIC_OK: list[tuple[dict[str, Any], dict[str, Any]]] = [
    (
        {"event": "issued", "service": "A", "channel": "appointment", "id_number": ID_NUMBER},
        {"event": "issued", "service": "A", "channel": "appointment", "applicant_key": KEY},
    ),
    ({"event": "checked_in"}, {"event": "checked_in"}),
    (
        {"event": "called", "window": "3", "staff": "S12", "case_no": "BJ-1"},
        {"event": "called", "window": "3", "staff": "S12", "case_no": "BJ-1"},
    ),
    ({"event": "called", "window": 3}, {"event": "called", "window": "3"}),
    ({"event": "recalled", "window": "3"}, {"event": "recalled", "window": "3"}),
    ({"event": "no_show", "reason": "未到"}, {"event": "no_show", "reason": "未到"}),
    (
        {"event": "transferred", "to_service": "B", "to_window": "5"},
        {"event": "transferred", "to_service": "B", "to_window": "5"},
    ),
    ({"event": "service_started"}, {"event": "service_started"}),
    (
        {"event": "service_ended", "outcome": "incomplete", "applicant_key": KEY},
        {"event": "service_ended", "outcome": "incomplete", "applicant_key": KEY},
    ),
    (
        {"event": "abandoned", "issued_on": "2026-11-01"},
        {"event": "abandoned", "issued_on": datetime(2026, 11, 1).date()},
    ),
]


@pytest.mark.parametrize(("extra", "expected"), GENERIC_OK, ids=[e["event"] for e, _ in GENERIC_OK])
def test_generic_json_events(extra: dict[str, Any], expected: dict[str, Any]) -> None:
    event = generic.parse(raw({"ticket": "A017", "at": "2026-11-02T09:01:12+08:00", **extra}))
    assert (event.ticket, event.at) == ("A017", AT)
    assert fields(event) == expected


GENERIC_BAD = [
    (b"{not json", "not JSON"),
    (b"[1, 2]", "expected a JSON object"),
    ({"event": "issued", "ticket": "A1", "at": "2026-11-02T09:00:00+08:00"}, "needs the service"),
    ({"event": "teleported", "ticket": "A1", "at": "2026-11-02T09:00:00+08:00"}, "event:"),
    ({"event": "called", "ticket": "A1", "at": "2026-11-02T09:00:00"}, "at:"),
    ({"event": "called", "ticket": "A1", "at": 1793581272}, "RFC 3339"),
    ({"event": "called", "ticket": "A1"}, "at: Field required"),
    ({"event": "called", "ticket": "A1", "at": "2026-11-02T09:00:00Z", "colour": 1}, "colour"),
    ({"event": "called", "ticket": "A 1", "at": "2026-11-02T09:00:00Z"}, "ticket:"),
    ({"event": "transferred", "ticket": "A1", "at": "2026-11-02T09:00:00Z"}, "to_service"),
    (
        {"event": "called", "ticket": "A1", "at": "2026-11-02T09:00:00Z", "applicant_key": "x"},
        "applicant_key",
    ),
    (
        {
            "event": "called",
            "ticket": "A1",
            "at": "2026-11-02T09:00:00Z",
            "id_number": ID_NUMBER,
            "applicant_key": KEY,
        },
        "not both",
    ),
    (
        {"event": "called", "ticket": "A1", "at": "2026-11-02T09:00:00Z", "id_number": ""},
        "id_number",
    ),
    (
        {"event": "service_ended", "ticket": "A1", "at": "2026-11-02T09:00:00Z", "outcome": "meh"},
        "outcome",
    ),
]


@pytest.mark.parametrize(("payload", "reason"), GENERIC_BAD, ids=[r for _, r in GENERIC_BAD])
def test_generic_json_bad_input(payload: Any, reason: str) -> None:
    with pytest.raises(QueueAdapterError, match=reason) as info:
        generic.parse(payload if isinstance(payload, bytes) else raw(payload))
    assert "1101051949" not in str(info.value)


# ---------------------------------------------------------------- numeric_state

NUMERIC_OK = [
    (
        {"lx": "qh", "qhh": "A017", "ywlx": "A", "qhfs": 1, "sfzh": ID_NUMBER, "bjbh": "BJ1"},
        {
            "event": "issued",
            "service": "A",
            "channel": "appointment",
            "applicant_key": KEY,
            "case_no": "BJ1",
        },
    ),
    (
        {"lx": "qh", "ticketNo": "A017", "ywlx": 1, "qhfs": 0},
        {"event": "issued", "service": "1", "channel": "on_site"},
    ),
    ({"lx": "qd", "qhh": "A017"}, {"event": "checked_in"}),
    (
        {"lx": "jh", "qhh": "A017", "zt": 0, "ckh": 3, "gh": "S12"},
        {"event": "called", "window": "3", "staff": "S12"},
    ),
    ({"lx": "jh", "qhh": "A017", "zt": 3, "ckh": "3"}, {"event": "no_show", "window": "3"}),
    (
        {"lx": "jh", "qhh": "A017", "zt": 2, "zyywlx": "B", "zyckh": "5"},
        {"event": "transferred", "to_service": "B", "to_window": "5"},
    ),
    ({"lx": "jh", "qhh": "A017", "zt": 4, "ckh": "3"}, {"event": "service_started", "window": "3"}),
    (
        {"lx": "jh", "qhh": "A017", "zt": 1, "bjjg": 3, "ckh": "3"},
        {"event": "service_ended", "outcome": "incomplete", "window": "3"},
    ),
    ({"lx": "jh", "qhh": "A017", "zt": -1, "yy": "离开"}, {"event": "abandoned", "reason": "离开"}),
]


@pytest.mark.parametrize(
    ("record", "expected"), NUMERIC_OK, ids=[e["event"] for _, e in NUMERIC_OK]
)
def test_numeric_state_records(record: dict[str, Any], expected: dict[str, Any]) -> None:
    event = numeric.parse(raw({"sj": "2026-11-02 09:01:12", **record}))
    assert (event.ticket, event.at) == ("A017", AT)  # local time without offset → hall tz
    assert fields(event) == expected


NUMERIC_BAD = [
    ({"lx": "jh", "qhh": "A1", "sj": "2026-11-02 09:00:00", "zt": 7}, "zt: unknown state"),
    ({"lx": "jh", "qhh": "A1", "sj": "2026-11-02 09:00:00"}, "needs zt"),
    ({"lx": "jh", "qhh": "A1", "sj": "2026-11-02 09:00:00", "zt": "0"}, "zt:"),
    ({"lx": "qh", "qhh": "A1", "sj": "2026-11-02 09:00:00"}, "needs the service"),
    ({"lx": "qd", "qhh": "A1", "sj": "2026-11-02 09:00:00", "zt": 0}, "only for call records"),
    ({"lx": "xx", "qhh": "A1", "sj": "2026-11-02 09:00:00"}, "lx:"),
    ({"lx": "qh", "qhh": "A1", "ywlx": "A", "sj": "02/11/2026 9am"}, "sj: expected"),
    (
        {"lx": "jh", "qhh": "A1", "sj": "2026-11-02 09:00:00", "zt": 1, "bjjg": 6},
        "bjjg: unknown result",
    ),
    ({"lx": "jh", "qhh": "A1", "sj": "2026-11-02 09:00:00", "zt": 2}, "zyywlx"),
    ({"lx": "qh", "qhh": "A1", "ywlx": "A", "sj": "2026-11-02 09:00:00", "xm": "张三"}, "xm"),
]


@pytest.mark.parametrize(("record", "reason"), NUMERIC_BAD, ids=[r for _, r in NUMERIC_BAD])
def test_numeric_state_bad_input(record: dict[str, Any], reason: str) -> None:
    with pytest.raises(QueueAdapterError, match=reason):
        numeric.parse(raw(record))


def test_numeric_state_time_with_offset_is_kept() -> None:
    event = numeric.parse(raw({"lx": "qd", "qhh": "A1", "sj": "2026-11-02T01:01:12+00:00"}))
    assert event.at == AT


# ---------------------------------------------------------------- webhook

WEBHOOK_OK = [
    (
        "ticket_created",
        {"queue": "A", "booking": True, "id_number": ID_NUMBER, "case_number": "BJ1"},
        {
            "event": "issued",
            "service": "A",
            "channel": "appointment",
            "applicant_key": KEY,
            "case_no": "BJ1",
        },
    ),
    ("ticket_checked_in", {}, {"event": "checked_in"}),
    (
        "ticket_called",
        {"counter": "3", "agent": "S12"},
        {"event": "called", "window": "3", "staff": "S12"},
    ),
    ("ticket_recalled", {"counter": 3}, {"event": "recalled", "window": "3"}),
    ("ticket_no_show", {}, {"event": "no_show"}),
    (
        "ticket_transferred",
        {"target_queue": "B", "target_counter": "5"},
        {"event": "transferred", "to_service": "B", "to_window": "5"},
    ),
    ("ticket_serving", {"counter": "3"}, {"event": "service_started", "window": "3"}),
    ("ticket_served", {"result": "completed"}, {"event": "service_ended", "outcome": "completed"}),
    ("ticket_cancelled", {"reason": "left"}, {"event": "abandoned", "reason": "left"}),
]


@pytest.mark.parametrize(
    ("kind", "data", "expected"), WEBHOOK_OK, ids=[k for k, _, _ in WEBHOOK_OK]
)
def test_webhook_events(kind: str, data: dict[str, Any], expected: dict[str, Any]) -> None:
    ms = int(AT.timestamp() * 1000)
    payload = {
        "id": "wh-1",
        "type": kind,
        "occurred_at": ms,
        "data": {"ticket_number": "A017", **data},
    }
    event = webhook.parse(raw(payload))
    assert (event.ticket, event.at) == ("A017", AT)
    assert fields(event) == expected


WEBHOOK_BAD = [
    ({"type": "ticket_exploded", "occurred_at": 1, "data": {"ticket_number": "A1"}}, "type:"),
    (
        {"type": "ticket_called", "occurred_at": "soon", "data": {"ticket_number": "A1"}},
        "occurred_at",
    ),
    ({"type": "ticket_called", "occurred_at": 1.5, "data": {"ticket_number": "A1"}}, "occurred_at"),
    ({"type": "ticket_called", "occurred_at": 1, "data": {}}, "data.ticket_number"),
    (
        {"type": "ticket_called", "occurred_at": 1, "data": {"ticket_number": "A1", "x": 1}},
        "data.x",
    ),
    (
        {"type": "ticket_created", "occurred_at": 1, "data": {"ticket_number": "A1"}},
        "needs the service",
    ),
    (
        {"type": "ticket_called", "occurred_at": 1, "data": {"ticket_number": "A1"}, "meta": {}},
        "meta",
    ),
]


@pytest.mark.parametrize(("payload", "reason"), WEBHOOK_BAD, ids=[r for _, r in WEBHOOK_BAD])
def test_webhook_bad_input(payload: dict[str, Any], reason: str) -> None:
    with pytest.raises(QueueAdapterError, match=reason):
        webhook.parse(raw(payload))


# ---------------------------------------------------------------- through the feed


@pytest.mark.parametrize(
    ("adapter", "good", "bad"),
    [
        (
            "generic_json",
            {
                "event": "issued",
                "ticket": "A1",
                "service": "A",
                "at": "2026-11-02T09:00:00+08:00",
                "id_number": ID_NUMBER,
            },
            {
                "event": "issued",
                "ticket": "A1",
                "at": "2026-11-02T09:00:00+08:00",
                "id_number": ID_NUMBER,
                "colour": "red",
            },
        ),
        (
            "numeric_state",
            {"lx": "qh", "qhh": "A1", "ywlx": "A", "sj": "2026-11-02 09:00:00", "sfzh": ID_NUMBER},
            {"lx": "qh", "qhh": "A1", "sj": "2026-11-02 09:00:00", "sfzh": ID_NUMBER},
        ),
        (
            "webhook",
            {
                "type": "ticket_created",
                "occurred_at": 1793581200000,
                "data": {"ticket_number": "A1", "queue": "A", "id_number": ID_NUMBER},
            },
            {
                "type": "ticket_created",
                "occurred_at": 1793581200000,
                "data": {"ticket_number": "A1", "id_number": ID_NUMBER},
            },
        ),
    ],
)
def test_id_number_never_in_facts_or_dead_letters(
    adapter: str, good: dict[str, Any], bad: dict[str, Any]
) -> None:
    store = FeedStore(":memory:")
    feed = QueueFeed(queue_hall(adapter=adapter), store)
    received = datetime(2026, 11, 2, 1, tzinfo=UTC)
    facts = feed.handle(FeedMessage(TOPIC, raw(good), received))
    [fact] = facts
    assert isinstance(fact, TicketFact) and fact.body.applicant_key == KEY
    assert feed.handle(FeedMessage(TOPIC, raw(bad), received)) == []
    [dead] = store.dead_letters("queue")
    assert "bad message" in dead.reason
    for text in [f.model_dump_json() for f in facts] + [dead.payload.decode(), dead.reason]:
        assert ID_NUMBER not in text and ID_NUMBER.lower() not in text
    assert json.loads(dead.payload)  # still readable, with the number masked


@pytest.mark.parametrize("field", ["zt", "bjjg"])
def test_numeric_state_reasons_never_quote_the_value(field: str) -> None:
    record: dict[str, Any] = {"lx": "jh", "qhh": "A1", "sj": "2026-11-02 09:00:00", "zt": 1}
    record[field] = 110105194912310021
    with pytest.raises(QueueAdapterError, match=f"{field}: unknown") as info:
        numeric.parse(raw(record))
    assert "110105" not in str(info.value)
