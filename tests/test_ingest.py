"""Ingest: valid facts stored, duplicates dropped, malformed messages dead-lettered."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Counter

from aggregator import ingest as ingest_module
from aggregator.bus import LiveBus, LiveEvent
from aggregator.ingest import Ingestor, IngestOutcome, Message
from aggregator.store.state import DEAD_LETTER_MAX_PAYLOAD, StateStore
from aggregator.store.timeseries import SqliteTimeSeriesStore, facts_to_points
from hallwatch.contract import (
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
    edge_status_topic,
    encode,
    fact_topic,
)
from tests.conftest import build_hall

HALL = "h-ingest"
OTHER = "h-other"
T0 = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[StateStore, SqliteTimeSeriesStore]]:
    state = StateStore(f"sqlite:///{tmp_path / 'state.sqlite'}")
    state.create_all()
    series = SqliteTimeSeriesStore(tmp_path / "series.sqlite")
    yield state, series
    series.close()
    state.dispose()


@pytest.fixture
def ingestor(stores: tuple[StateStore, SqliteTimeSeriesStore]) -> Ingestor:
    state, series = stores
    halls = {HALL: build_hall(HALL), OTHER: build_hall(OTHER)}
    return Ingestor(state, series, halls, LiveBus(), clock=lambda: T0 + timedelta(seconds=1))


def presence(
    state: PostState = PostState.OFF_POST,
    *,
    post: str = "w1",
    summary: bool = False,
    ts: datetime = T0,
    since: datetime = T0,
    hall: str = HALL,
) -> PresenceFact:
    body = PresenceBody(
        camera="c1", post=post, window="1", state=state, since=since, summary=summary, score=0.8
    )
    return PresenceFact(hall=hall, source="edge-1", ts=ts, body=body)


def metric(outcome: str) -> float:
    return REGISTRY.get_sample_value("hallwatch_ingest_messages_total", {"outcome": outcome}) or 0


def test_valid_facts_are_stored(ingestor: Ingestor) -> None:
    p = presence()
    d = DeviceFact(
        hall=HALL,
        source="edge-1",
        ts=T0,
        body=DeviceBody(device="c1", device_kind=DeviceKind.CAMERA, state=DeviceState.ONLINE),
    )
    s = StatsFact(
        hall=HALL,
        source="edge-1",
        ts=T0,
        body=StatsBody(
            interval_s=60, cameras_online=1, cameras_total=1, frames_looked=60,
            crops_inferred=40, crops_skipped=80, inference_ms_mean=12.5, outbox_depth=0,
        ),
    )  # fmt: skip
    for fact in (p, d, s):
        assert ingestor.handle(fact_topic(HALL, fact.kind), encode(fact)) is IngestOutcome.STORED
    assert ingestor.state.seen_count(HALL) == 3
    (status,) = ingestor.state.post_statuses(HALL)
    assert (status.post, status.state, status.since, status.window) == ("w1", "off_post", T0, "1")
    (device,) = ingestor.state.device_statuses(HALL)
    assert (device.device, device.state) == ("c1", "online")
    end = T0 + timedelta(hours=1)
    (point,) = ingestor.series.query("post_presence", hall=HALL, start=T0, end=end)
    assert point.tags == {"hall": HALL, "camera": "c1", "post": "w1", "window": "1"}
    assert point.fields == {"on_post": 0, "summary": False, "score": 0.8}
    assert point.id == p.id and point.time == T0
    (stats,) = ingestor.series.query("edge_pipeline", hall=HALL, start=T0, end=end)
    assert stats.fields["inference_ms_mean"] == 12.5 and stats.fields["crops_skipped"] == 80
    (dev,) = ingestor.series.query("device_status", hall=HALL, start=T0, end=end)
    assert dev.fields["online"] == 1 and dev.tags["kind"] == "camera"


def test_a_batch_counts_each_outcome_and_a_failed_batch_counts_errors(
    ingestor: Ingestor, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = fact_topic(HALL, "presence")
    first, second = presence(post="w1"), presence(post="w2")
    batch = [
        Message(topic, encode(first)),
        Message(topic, encode(second)),
        Message(topic, encode(first)),  # again in the batch
        Message(topic, b"{not json"),
        Message(topic, encode(presence(post="w3"))),
    ]
    registry = CollectorRegistry()  # this test's own: no other test's thread counts in it
    counter = Counter("hallwatch_ingest_messages", "", ["outcome"], registry=registry)
    monkeypatch.setattr(ingest_module, "MESSAGES", counter)

    def counted(outcome: str) -> float:
        value = registry.get_sample_value("hallwatch_ingest_messages_total", {"outcome": outcome})
        return value or 0

    names = ("stored", "duplicate", "dead_lettered", "error")
    outcomes = ingestor.handle_batch(batch)
    assert outcomes.count(IngestOutcome.STORED) == 3
    assert {name: counted(name) for name in names} == {
        "stored": 3, "duplicate": 1, "dead_lettered": 1, "error": 0
    }  # fmt: skip

    def refuse(points: object) -> None:
        raise RuntimeError("series store down")

    monkeypatch.setattr(ingestor.series, "write", refuse)
    with pytest.raises(RuntimeError, match="series store down"):
        ingestor.handle_batch([Message(topic, encode(presence(post=f"w{i}"))) for i in (4, 5)])
    assert counted("error") == 2 and counted("stored") == 3


def test_duplicate_id_is_stored_once_and_counted(ingestor: Ingestor) -> None:
    fact = presence()
    before = metric("duplicate")
    topic = fact_topic(HALL, "presence")
    assert ingestor.handle(topic, encode(fact)) is IngestOutcome.STORED
    assert ingestor.handle(topic, encode(fact)) is IngestOutcome.DUPLICATE
    assert ingestor.handle(topic, encode(fact)) is IngestOutcome.DUPLICATE
    assert metric("duplicate") - before == 2
    assert ingestor.state.seen_count(HALL) == 1
    assert isinstance(ingestor.series, SqliteTimeSeriesStore)
    assert ingestor.series.count() == 1


def test_summary_moves_nothing_change_moves_since(ingestor: Ingestor) -> None:
    topic = fact_topic(HALL, "presence")
    ingestor.handle(topic, encode(presence(PostState.ON_POST, since=T0)))
    later = T0 + timedelta(minutes=1)
    ingestor.handle(topic, encode(presence(PostState.ON_POST, ts=later, since=later)))
    ingestor.handle(topic, encode(presence(PostState.ON_POST, summary=True, ts=later, since=later)))
    (status,) = ingestor.state.post_statuses(HALL)
    assert (status.state, status.since, status.last_fact_ts) == ("on_post", T0, later)
    off = T0 + timedelta(minutes=2)
    ingestor.handle(topic, encode(presence(PostState.OFF_POST, summary=True, ts=off, since=off)))
    (status,) = ingestor.state.post_statuses(HALL)
    assert (status.state, status.since) == ("off_post", off)


def _fact_json(**changes: object) -> bytes:
    data = json.loads(encode(presence()))
    for key, value in changes.items():
        if key.startswith("body_"):
            if value is None:
                del data["body"][key[5:]]
            else:
                data["body"][key[5:]] = value
        elif value is None:
            del data[key]
        else:
            data[key] = value
    return json.dumps(data).encode()


PRESENCE_TOPIC = fact_topic(HALL, "presence")

MALFORMED = {
    "not-json": (PRESENCE_TOPIC, b"{not json", "invalid fact"),
    "empty": (PRESENCE_TOPIC, b"", "invalid fact"),
    "not-utf8": (PRESENCE_TOPIC, b"\xff\xfe\x00garbage", "invalid fact"),
    "json-not-object": (PRESENCE_TOPIC, b"[1, 2, 3]", "invalid fact"),
    "wrong-schema-version": (PRESENCE_TOPIC, _fact_json(schema=2), "schema"),
    "unknown-kind": (fact_topic(HALL, "gossip"), _fact_json(kind="gossip"), "kind"),
    "missing-field": (PRESENCE_TOPIC, _fact_json(body_post=None), "post"),
    "missing-id": (PRESENCE_TOPIC, _fact_json(id=None), "missing id"),
    "missing-ts": (PRESENCE_TOPIC, _fact_json(ts=None), "missing ts"),
    "missing-schema": (PRESENCE_TOPIC, _fact_json(schema=None), "missing schema"),
    "validation-error": (PRESENCE_TOPIC, _fact_json(body_score=2.0), "score"),
    "naive-timestamp": (PRESENCE_TOPIC, _fact_json(ts="2026-11-02T02:00:00"), "ts"),
    "extra-field": (PRESENCE_TOPIC, _fact_json(colour="red"), "colour"),
    "topic-hall-mismatch": (fact_topic(OTHER, "presence"), encode(presence()), "topic hall"),
    "topic-kind-mismatch": (fact_topic(HALL, "device"), encode(presence()), "topic kind"),
    "unknown-hall": (
        fact_topic("h-nowhere", "presence"),
        encode(presence(hall="h-nowhere")),
        "unknown hall",
    ),
    "foreign-topic": ("something/else", b"{}", "not a fact"),
    "bad-edge-status": (edge_status_topic(HALL), b'{"state": "sleepy"}', "invalid edge status"),
}


@pytest.mark.parametrize(("topic", "payload", "reason"), MALFORMED.values(), ids=list(MALFORMED))
def test_malformed_message_is_dead_lettered(
    ingestor: Ingestor, topic: str, payload: bytes, reason: str
) -> None:
    before = metric("dead_lettered")
    assert ingestor.handle(topic, payload) is IngestOutcome.DEAD_LETTERED
    assert metric("dead_lettered") - before == 1
    (letter,) = ingestor.state.dead_letters()
    assert letter.topic == topic
    assert letter.payload == payload
    assert reason in letter.reason
    assert ingestor.state.seen_count() == 0
    # Ingest goes on: the next good message is stored.
    good = presence()
    assert ingestor.handle(PRESENCE_TOPIC, encode(good)) is IngestOutcome.STORED
    assert ingestor.state.seen_count(HALL) == 1


@pytest.mark.parametrize(
    "case",
    ["foreign-topic", "unknown-hall", "topic-hall-mismatch", "topic-kind-mismatch",
     "bad-edge-status"],
)  # fmt: skip
def test_a_topic_is_judged_alike_every_time(ingestor: Ingestor, case: str) -> None:
    # the ingestor remembers what each topic names: the second message takes that path
    topic, payload, reason = MALFORMED[case]
    assert [ingestor.handle(topic, payload) for _ in range(2)] == [IngestOutcome.DEAD_LETTERED] * 2
    assert [reason in letter.reason for letter in ingestor.state.dead_letters()] == [True] * 2
    assert ingestor.handle(PRESENCE_TOPIC, encode(presence())) is IngestOutcome.STORED
    assert ingestor.handle(PRESENCE_TOPIC, encode(presence())) is IngestOutcome.STORED


@pytest.mark.parametrize(
    ("topic", "reason"),
    [("hallwatch/v1//facts/presence", "unknown hall ''"),
     ("hallwatch/v1/h-nowhere/other/presence", "unknown hall 'h-nowhere'"),
     (f"hallwatch/v1/{HALL}/other/presence", "not a fact or status topic"),
     (f"hallwatch/v1/{HALL}/edge/gossip", "not a fact or status topic"),
     (f"hallwatch/v1/{HALL}/facts", "not a fact or status topic")],
)  # fmt: skip
def test_a_topics_hall_is_judged_before_its_kind(
    ingestor: Ingestor, topic: str, reason: str
) -> None:
    assert ingestor.handle(topic, encode(presence())) is IngestOutcome.DEAD_LETTERED
    (letter,) = ingestor.state.dead_letters()
    assert reason in letter.reason


def test_the_topics_remembered_are_bounded(
    ingestor: Ingestor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest_module, "_TOPICS_MAX", 3)
    ingestor = Ingestor(ingestor.state, ingestor.series, ingestor.halls, clock=ingestor.clock)
    for i in range(5):
        topic = fact_topic(f"h-nowhere-{i}", "presence")
        assert ingestor.handle(topic, b"{}") is IngestOutcome.DEAD_LETTERED
        assert len(ingestor._topics) <= 3
    assert ingestor.handle(PRESENCE_TOPIC, encode(presence())) is IngestOutcome.STORED
    assert PRESENCE_TOPIC in ingestor._topics


def test_dead_letter_payload_is_truncated(ingestor: Ingestor) -> None:
    payload = b"x" * (DEAD_LETTER_MAX_PAYLOAD * 2)
    assert ingestor.handle(PRESENCE_TOPIC, payload) is IngestOutcome.DEAD_LETTERED
    (letter,) = ingestor.state.dead_letters()
    assert len(letter.payload) == DEAD_LETTER_MAX_PAYLOAD
    assert letter.payload_size == len(payload)


def test_failure_rolls_back_so_redelivery_is_stored(
    ingestor: Ingestor, monkeypatch: pytest.MonkeyPatch
) -> None:
    fact = presence()

    def broken(_points: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(ingestor.series, "write", broken)
    with pytest.raises(OSError, match="disk full"):
        ingestor.handle(PRESENCE_TOPIC, encode(fact))
    assert ingestor.state.seen_count() == 0
    assert ingestor.state.post_statuses(HALL) == []
    monkeypatch.undo()
    assert ingestor.handle(PRESENCE_TOPIC, encode(fact)) is IngestOutcome.STORED


def test_edge_status_is_stored(ingestor: Ingestor) -> None:
    online = EdgeStatus(hall=HALL, source="edge-1", state=DeviceState.ONLINE, ts=T0)
    assert ingestor.handle(edge_status_topic(HALL), encode(online)) is IngestOutcome.STORED
    # The will is dated when the edge connected, before its "online": arrival order wins.
    will = EdgeStatus(hall=HALL, source="edge-1", state=DeviceState.OFFLINE, ts=T0)
    assert ingestor.handle(edge_status_topic(HALL), encode(will)) is IngestOutcome.STORED
    (row,) = ingestor.state.edge_statuses(HALL)
    assert row.state == "offline"


def test_live_events_for_changes_only(ingestor: Ingestor) -> None:
    async def run() -> list[LiveEvent]:
        assert ingestor.bus is not None
        sub = ingestor.bus.subscribe()
        topic = fact_topic(HALL, "presence")
        ingestor.handle(topic, encode(presence(PostState.ON_POST)))
        later = T0 + timedelta(minutes=1)
        ingestor.handle(topic, encode(presence(PostState.ON_POST, summary=True, ts=later)))
        ingestor.handle(topic, encode(presence(PostState.OFF_POST, ts=later, since=later)))
        events = []
        while (event := await sub.get(timeout=0.2)) is not None:
            events.append(event)
        sub.close()
        return events

    events = asyncio.run(run())
    assert [(e.type, e.data["state"]) for e in events] == [
        ("presence", "on_post"),
        ("presence", "off_post"),
    ]
    assert events[0].hall == HALL and events[0].data["post"] == "w1"


def test_facts_to_points_keeps_ids_out_of_tags() -> None:
    fact = presence()
    (point,) = facts_to_points(fact)
    assert fact.id not in point.tags.values()
    assert set(point.tags) <= {"hall", "camera", "post", "window", "kind", "device", "source"}


@pytest.mark.parametrize("url", ["file", "sqlite://"], ids=["sqlite-file", "sqlite-memory"])
def test_concurrent_duplicates_store_once(tmp_path: Path, url: str) -> None:
    """Replicas (threads here) racing on the same fact: exactly one stores it."""
    state = StateStore(f"sqlite:///{tmp_path / 'race.sqlite'}" if url == "file" else url)
    state.create_all()
    series = SqliteTimeSeriesStore(":memory:")
    ingestor = Ingestor(state, series, {HALL: build_hall(HALL)}, clock=lambda: T0)
    facts = [presence(ts=T0 + timedelta(seconds=i), since=T0) for i in range(10)]
    barrier = threading.Barrier(4)
    outcomes: list[IngestOutcome] = []

    def worker() -> None:
        barrier.wait()
        for fact in facts:
            outcomes.append(ingestor.handle(PRESENCE_TOPIC, encode(fact)))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outcomes.count(IngestOutcome.STORED) == 10
    assert outcomes.count(IngestOutcome.DUPLICATE) == 30
    assert state.seen_count(HALL) == 10 and series.count() == 10
    series.close()
    state.dispose()
