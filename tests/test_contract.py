"""The wire contract: round trips, validation, topics."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from hallwatch.contract import (
    FACTS_FILTER,
    AlertKind,
    AlertMessage,
    AlertState,
    ContractError,
    DeviceBody,
    DeviceFact,
    DeviceKind,
    DeviceState,
    EdgeStatus,
    PostState,
    PresenceBody,
    PresenceFact,
    StatsBody,
    StatsFact,
    alerts_topic,
    edge_status_topic,
    encode,
    fact_topic,
    hall_of_topic,
    new_id,
    parse_alert,
    parse_edge_status,
    parse_fact,
    shared_subscription,
)

T0 = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)


def _presence(**overrides: object) -> PresenceFact:
    body = PresenceBody(camera="cam1", post="w1", window="1", state=PostState.OFF_POST, since=T0)
    return PresenceFact(hall="h1", source="edge-h1", body=body, **overrides)  # type: ignore[arg-type]


FACTS = [
    _presence(),
    DeviceFact(
        hall="h1",
        source="edge-h1",
        body=DeviceBody(
            device="cam1",
            device_kind=DeviceKind.CAMERA,
            state=DeviceState.OFFLINE,
            reason="no frame for 10 s",
        ),
    ),
    StatsFact(
        hall="h1",
        source="edge-h1",
        body=StatsBody(
            interval_s=60,
            cameras_online=1,
            cameras_total=2,
            frames_looked=60,
            crops_inferred=12,
            crops_skipped=228,
            inference_ms_mean=9.5,
            outbox_depth=0,
        ),
    ),
]


@pytest.mark.parametrize("fact", FACTS, ids=lambda f: f.kind.value)
def test_fact_round_trips_through_the_wire_form(fact: object) -> None:
    wire = encode(fact)  # type: ignore[arg-type]
    assert json.loads(wire)["schema"] == 1
    assert parse_fact(wire) == fact


def test_envelope_times_are_utc_rfc3339() -> None:
    fact = _presence(ts=datetime(2026, 11, 2, 10, 0, tzinfo=timezone(timedelta(hours=8))))
    wire = json.loads(encode(fact))
    assert wire["ts"] == "2026-11-02T02:00:00Z"
    assert wire["body"]["since"] == "2026-11-02T02:00:00Z"


def test_ids_are_unique_and_sortable_by_time() -> None:
    ids = [new_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert sorted(ids)[0][:6] == ids[0][:6]  # same millisecond prefix space
    assert _presence().id != _presence().id


BAD = [
    ("not json", b"{nope", "Invalid JSON"),
    ("unknown kind", encode(_presence()).replace(b'"presence"', b'"gossip"'), "kind"),
    ("future schema", encode(_presence()).replace(b'"schema":1', b'"schema":2'), "schema"),
    ("bad state", encode(_presence()).replace(b'"off_post"', b'"asleep"'), "state"),
    ("naive time", encode(_presence()).replace(b'02:00:00Z"', b'02:00:00"', 1), "timezone"),
    ("extra field", encode(_presence()).replace(b'"schema":1', b'"schema":1,"x":1'), "x"),
    ("bad hall id", encode(_presence()).replace(b'"h1"', b'"H 1"'), "hall"),
]


@pytest.mark.parametrize(("case", "payload", "mentions"), BAD, ids=[b[0] for b in BAD])
def test_bad_facts_are_rejected_naming_the_problem(
    case: str, payload: bytes, mentions: str
) -> None:
    with pytest.raises(ContractError) as err:
        parse_fact(payload)
    assert mentions.lower() in str(err.value).lower()


def test_topics() -> None:
    assert fact_topic("h1", "presence") == "hallwatch/v1/h1/facts/presence"
    assert edge_status_topic("h1") == "hallwatch/v1/h1/edge/status"
    assert alerts_topic("h1") == "hallwatch/v1/h1/alerts"
    assert shared_subscription(FACTS_FILTER, "g") == "$share/g/hallwatch/v1/+/facts/+"
    assert hall_of_topic("hallwatch/v1/h9/facts/device") == "h9"
    assert hall_of_topic("other/v1/h9/facts/device") is None


def test_edge_status_and_alert_parse() -> None:
    status = EdgeStatus(hall="h1", source="edge-h1", state=DeviceState.ONLINE)
    assert parse_edge_status(encode(status)) == status
    alert = AlertMessage(
        id=new_id(), hall="h1", kind=AlertKind.OFF_POST, state=AlertState.OPEN, post="w1", start=T0
    )
    assert parse_alert(encode(alert)) == alert
    with pytest.raises(ContractError):
        parse_alert(b"{}")
