"""Batched ingest: a batch stores what the same messages one by one would, faster.

:meth:`Ingestor.handle_batch` applies consecutive facts in one state transaction. These
tests hold it to the one-by-one path on generated message streams (posts, cameras, edge
status, repeats, malformed messages; with the off-post and device rules), and check its
fallbacks: a fact the register fails on, a fact another replica stored meanwhile, a
database failure in the middle of a batch.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aggregator import mqtt_ingest
from aggregator.alerts import ListSink
from aggregator.bus import LiveBus
from aggregator.fact_state import FactState, RegisterFailedError, StateEffects
from aggregator.ingest import Ingestor, IngestOutcome, Message
from aggregator.mqtt_wire.subscriber import Received
from aggregator.rules.device_offline import DeviceOfflineRule
from aggregator.rules.off_post import OffPostRule
from aggregator.settings import AggregatorSettings
from aggregator.store.driver_sql import DriverStatement
from aggregator.store.state import StateStore
from aggregator.store.timeseries import SqliteTimeSeriesStore
from hallwatch.contract import (
    DeviceBody,
    DeviceFact,
    DeviceKind,
    DeviceState,
    EdgeStatus,
    Fact,
    PostState,
    PresenceBody,
    PresenceFact,
    edge_status_topic,
    encode,
    fact_topic,
)
from tests.conftest import build_hall

HALL = "h-batch"
T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # Monday 09:00 in Shanghai
NOW = T0 + timedelta(hours=2)
POSTS = [f"w{i}" for i in range(1, 5)]


class Aggregator:
    """Real stores, ingestor, off-post and device rules; a fixed clock."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir()
        self.state = StateStore(f"sqlite:///{folder / 'state.sqlite'}")
        self.state.create_all()
        self.series = SqliteTimeSeriesStore(folder / "series.sqlite")
        posts = [
            {"id": p, "name": f"{p}号窗口", "kind": "front_desk", "window": p[1:], "camera": "c1"}
            for p in POSTS
        ]
        halls = {HALL: build_hall(HALL, posts=posts, off_post_after_s=300)}
        self.sink = ListSink()
        rule = OffPostRule(self.state, halls, self.sink)
        devices = DeviceOfflineRule(halls, self.sink)
        self.ingestor = Ingestor(
            self.state, self.series, halls, LiveBus(), rule=rule, devices=devices,
            clock=lambda: NOW,
        )  # fmt: skip

    def snapshot(self) -> dict[str, Any]:
        """Everything the stream leaves behind, comparable across aggregators."""
        posts = [
            (
                r.post,
                r.state,
                r.since,
                r.last_fact_ts,
                r.clock_banked_s,
                r.clock_from,
                r.camera,
                r.source,
                r.window,
                r.updated_at,
            )
            for r in self.state.post_statuses(HALL)
        ]
        devices = [(r.device, r.state, r.since) for r in self.state.device_statuses(HALL)]
        alerts, _ = self.state.list_alerts(hall=HALL, limit=1000)
        return {
            "posts": sorted(posts),
            "devices": sorted(devices),
            "alerts": sorted(
                (a.kind, a.post or a.device or "", a.state, a.start, a.end) for a in alerts
            ),
            "seen": self.state.seen_count(HALL),
            "points": self.series.count(),
            "dead_letters": len(self.state.dead_letters(limit=1000)),
            "edges": [(r.source, r.state) for r in self.state.edge_statuses(HALL)],
        }

    def close(self) -> None:
        self.series.close()
        self.state.dispose()


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Any]:
    made: list[Aggregator] = []

    def factory(name: str) -> Aggregator:
        made.append(Aggregator(tmp_path / name))
        return made[-1]

    yield factory
    for aggregator in made:
        aggregator.close()


def presence(post: str, state: PostState, at: datetime, *, since: datetime | None = None,
             summary: bool = False, window: str | None = "") -> PresenceFact:  # fmt: skip
    body = PresenceBody(camera="c1", post=post, window=post[1:] if window == "" else window,
                        state=state, since=since or at, summary=summary)  # fmt: skip
    return PresenceFact(hall=HALL, source="edge-1", ts=at, body=body)


def camera(state: DeviceState, at: datetime) -> DeviceFact:
    body = DeviceBody(device="c1", device_kind=DeviceKind.CAMERA, state=state)
    return DeviceFact(hall=HALL, source="edge-1", ts=at, body=body)


def message(fact: Fact) -> Message:
    return Message(fact_topic(HALL, fact.kind), encode(fact))


def stream(seed: int, n: int = 400) -> list[Message]:
    """A hall's messages: presence changes and summaries of four posts, camera outages,
    the edge going offline and back, repeats (redelivery), late facts and garbage."""
    rng = random.Random(seed)
    windows = random.Random(-seed)  # its own draws: the stream's events stay as they were
    states = dict.fromkeys(POSTS, PostState.ON_POST)
    since = dict.fromkeys(POSTS, T0)
    sent: list[Message] = []
    out: list[Message] = []
    for k in range(n):
        at = T0 + timedelta(seconds=10 * k)
        roll = rng.random()
        if roll < 0.05 and sent:
            out.append(rng.choice(sent))  # a redelivered message
            continue
        if roll < 0.08:
            out.append(Message(fact_topic(HALL, "presence"), b'{"not": "a fact"'))
            continue
        if roll < 0.11:
            online = rng.random() < 0.5
            state = DeviceState.ONLINE if online else DeviceState.OFFLINE
            out.append(message(camera(state, at)))
        elif roll < 0.13:
            state = DeviceState.ONLINE if rng.random() < 0.6 else DeviceState.OFFLINE
            status = EdgeStatus(hall=HALL, source="edge-1", state=state, ts=at)
            out.append(Message(edge_status_topic(HALL), encode(status)))
            continue
        else:
            post = rng.choice(POSTS)
            if rng.random() < 0.15:
                states[post] = (PostState.OFF_POST if states[post] is PostState.ON_POST
                                else PostState.ON_POST)  # fmt: skip
                since[post] = at
                fact: Fact = presence(post, states[post], at)
            else:
                late = at - timedelta(seconds=rng.choice([0, 0, 0, 45]))
                # a summary that leaves the window out keeps the post's; one renumbered
                window = windows.choice(["", "", None, f"{post[1:]}b"])
                fact = presence(post, states[post], late, since=since[post], summary=True,
                                window=window)  # fmt: skip
            out.append(message(fact))
        sent.append(out[-1])
    return out


def batches(messages: list[Message], seed: int) -> Iterator[list[Message]]:
    rng = random.Random(seed)
    k = 0
    while k < len(messages):
        size = rng.choice([1, 2, 7, 50, 200])
        yield messages[k : k + size]
        k += size


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_batches_leave_what_one_by_one_leaves(make: Any, seed: int) -> None:
    messages = stream(seed)
    single, batched = make("single"), make("batched")
    one_by_one = [single.ingestor.handle(m.topic, m.payload) for m in messages]
    in_batches = [o for b in batches(messages, seed) for o in batched.ingestor.handle_batch(b)]
    assert in_batches == one_by_one
    after, before = batched.snapshot(), single.snapshot()
    alerts, alerts_single = set(after.pop("alerts")), set(before.pop("alerts"))
    assert after == before
    # The clock stands at NOW, after the whole stream: one by one, the rule evaluates
    # after every change and sees each absence as long (NOW - since) until its end
    # arrives, so it also opens alerts for absences shorter than the threshold; a batch
    # that holds an absence's end does not. Every real alert is in both.
    assert alerts <= alerts_single
    threshold = timedelta(seconds=300)
    assert all(a[4] - a[3] < threshold for a in alerts_single - alerts)
    assert {a for a in alerts_single if a[4] is None or a[4] - a[3] >= threshold} <= alerts
    # the stream exercised what it is meant to
    assert {IngestOutcome.STORED, IngestOutcome.DUPLICATE, IngestOutcome.DEAD_LETTERED} <= set(
        one_by_one
    )
    assert {a[0] for a in alerts} == {"off_post", "device_offline"}


def test_duplicates_within_one_batch_store_once(make: Any) -> None:
    agg = make("dups")
    fact = presence("w1", PostState.OFF_POST, T0)
    other = presence("w2", PostState.OFF_POST, T0)
    outcomes = agg.ingestor.handle_batch([message(fact), message(other), message(fact)])
    assert outcomes == [IngestOutcome.STORED, IngestOutcome.STORED, IngestOutcome.DUPLICATE]
    assert agg.state.seen_count(HALL) == 2 and agg.series.count() == 2


def test_a_fact_the_register_fails_on_is_dead_lettered_alone(
    make: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    agg = make("register")
    facts = [presence(p, PostState.OFF_POST, T0 + timedelta(seconds=i))
             for i, p in enumerate(POSTS)]  # fmt: skip
    broken = facts[2].id
    apply = FactState.apply

    def failing(self: FactState, session: Session, fact: Fact, now: datetime,
                effects: StateEffects) -> None:  # fmt: skip
        if fact.id == broken:
            raise RegisterFailedError("KeyError: 'w3'")
        apply(self, session, fact, now, effects)

    monkeypatch.setattr(FactState, "apply", failing)
    outcomes = agg.ingestor.handle_batch([message(f) for f in facts])
    assert outcomes == [IngestOutcome.STORED, IngestOutcome.STORED,
                        IngestOutcome.DEAD_LETTERED, IngestOutcome.STORED]  # fmt: skip
    assert sorted(r.post for r in agg.state.post_statuses(HALL)) == ["w1", "w2", "w4"]
    (letter,) = agg.state.dead_letters()
    assert "the anomaly register failed" in letter.reason
    assert letter.payload == encode(facts[2])
    monkeypatch.undo()  # the bug fixed, the dead letter replays
    assert agg.ingestor.handle(letter.topic, letter.payload) is IngestOutcome.STORED


def test_a_fact_another_replica_stored_meanwhile(
    make: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    agg = make("race")
    facts = [presence(p, PostState.OFF_POST, T0) for p in POSTS[:3]]
    assert agg.ingestor.handle_batch([message(facts[1])]) == [IngestOutcome.STORED]
    # the other replica's commit lands between this batch's dedup check and its insert
    monkeypatch.setattr(Ingestor, "_known_ids", staticmethod(lambda _s, _ids: set()))
    outcomes = agg.ingestor.handle_batch([message(f) for f in facts])
    assert outcomes == [IngestOutcome.STORED, IngestOutcome.DUPLICATE, IngestOutcome.STORED]
    assert agg.state.seen_count(HALL) == 3


def test_database_failure_mid_batch_loses_nothing_and_dead_letters_once(
    make: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    agg = make("failure")
    garbage = Message(fact_topic(HALL, "presence"), b"garbage")
    status = EdgeStatus(hall=HALL, source="edge-1", state=DeviceState.ONLINE, ts=T0)
    batch = [
        message(presence("w1", PostState.OFF_POST, T0)),
        garbage,
        Message(edge_status_topic(HALL), encode(status)),
        message(presence("w2", PostState.OFF_POST, T0)),
    ]
    writes = {"n": 0}
    write = agg.series.write

    def flaky(points: Any) -> None:
        writes["n"] += 1
        if writes["n"] == 2:  # the facts after the edge status
            raise OSError("disk full")
        write(points)

    monkeypatch.setattr(agg.series, "write", flaky)
    with pytest.raises(OSError, match="disk full"):
        agg.ingestor.handle_batch(batch)
    assert agg.state.dead_letters() == []  # dead letters go last: none written yet
    outcomes = agg.ingestor.handle_batch(batch)  # the MQTT worker retries the batch
    assert outcomes == [IngestOutcome.DUPLICATE, IngestOutcome.DEAD_LETTERED,
                        IngestOutcome.STORED, IngestOutcome.STORED]  # fmt: skip
    assert len(agg.state.dead_letters()) == 1
    assert agg.state.seen_count(HALL) == 2 and agg.series.count() == 2


def _statements(state: StateStore) -> list[str]:
    """The SQL the state database runs from now on (appended as it runs)."""
    seen: list[str] = []

    @event.listens_for(state.engine, "before_cursor_execute")
    def _record(_c: Any, _cur: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()[:2]).upper())

    return seen


def test_warming_up_reads_what_a_first_batch_reads_writes_nothing_and_is_done_once(
    make: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    agg = make("warm")
    agg.ingestor.handle_batch([message(presence("w1", PostState.ON_POST, T0))])
    before = agg.snapshot()
    monkeypatch.setattr(DriverStatement, "_cache", {})  # as in a process that starts
    fresh = Ingestor(agg.state, agg.series, agg.ingestor.halls, rule=agg.ingestor.rule,
                     max_age=timedelta(days=30), clock=lambda: NOW)  # fmt: skip
    ran = _statements(agg.state)
    assert fresh.warm_up() is True
    assert {name for name, _ in DriverStatement._cache} == {"ledger", "post_seen"}
    verbs = [statement.split()[0] for statement in ran]
    assert set(verbs) <= {"SELECT", "BEGIN", "COMMIT", "ROLLBACK"}, ran
    assert "BEGIN IMMEDIATE" not in ran  # a read: not SQLite's write lock
    assert verbs.count("SELECT") >= 6  # horizon, posts, devices, cameras, edges, alerts
    count = len(ran)
    assert fresh.warm_up() is True and len(ran) == count  # once
    assert agg.snapshot() == before
    fresh.handle_batch([message(presence("w2", PostState.ON_POST, T0))])
    assert agg.state.seen_count(HALL) == 2


def test_a_first_batch_looks_up_no_post_and_inserts_its_new_posts_together(make: Any) -> None:
    """The batch's preload read every post of the hall: a post it did not find is new,
    not looked up again; the new posts are inserted in one flush, before the UPDATE of
    their repeated facts, which they then hold."""
    agg = make("first")
    seen: list[str] = []
    event.listen(agg.state.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    batch = [
        message(presence(post, PostState.ON_POST, T0 + timedelta(seconds=10 * step),
                         since=T0, summary=step > 0))
        for step in range(3)
        for post in POSTS
    ]  # fmt: skip
    assert set(agg.ingestor.handle_batch(batch)) == {IngestOutcome.STORED}
    by_key = [s for s in seen if "FROM post_status" in s and "post_status.post = " in s]
    assert by_key == []
    inserts = [s for s in seen if s.startswith("INSERT INTO post_status")]
    assert len(inserts) == 1
    last = T0 + timedelta(seconds=20)
    assert [(p[0], p[1], p[3]) for p in agg.snapshot()["posts"]] == [
        (post, "on_post", last) for post in POSTS
    ]


def test_warming_up_on_a_failing_database_is_logged_and_the_first_batch_goes_on(
    make: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    agg = make("warm-down")

    def down() -> Any:
        raise OSError("database down")

    with monkeypatch.context() as patch:
        patch.setattr(agg.state, "read_session", down)
        assert agg.ingestor.warm_up() is False
    assert "warming up ingest failed" in caplog.text
    outcome = agg.ingestor.handle(fact_topic(HALL, "presence"),
                                  encode(presence("w1", PostState.ON_POST, T0)))  # fmt: skip
    assert outcome is IngestOutcome.STORED
    assert agg.ingestor.warm_up() is True


class _DownIngestor:
    """An ingestor whose database is down until ``up`` is set."""

    def __init__(self) -> None:
        self.up = threading.Event()
        self.stored: list[bytes] = []
        self.warm_ups = 0

    def _check(self) -> None:
        if not self.up.is_set():
            raise OSError("database down")

    def warm_up(self) -> bool:
        self.warm_ups += 1
        return self.up.is_set()

    def handle_batch(self, messages: list[Message]) -> list[IngestOutcome]:
        self._check()
        self.stored += [m.payload for m in messages]
        return [IngestOutcome.STORED] * len(messages)

    def handle(self, _topic: str, payload: bytes) -> IngestOutcome:
        self._check()
        self.stored.append(payload)
        return IngestOutcome.STORED

    def dead_letter(self, *_args: object) -> None:
        self._check()


class _AckRecorder:
    def __init__(self) -> None:
        self.acked: list[int] = []

    def ack(self, messages: list[Received]) -> None:
        self.acked += [m.mid for m in messages]


def test_the_worker_keeps_messages_through_a_long_database_outage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Longer than the retry schedule, and dead-lettering fails too: the messages the
    worker took from the queue are still stored, in order, once the database is back."""
    monkeypatch.setattr(mqtt_ingest, "_RETRY_DELAYS_S", (0.01,) * 5)
    ingestor = _DownIngestor()
    worker = mqtt_ingest.MqttIngest(AggregatorSettings(http_port=0), ingestor)  # type: ignore[arg-type]
    acks = _AckRecorder()
    worker.subscriber = acks  # type: ignore[assignment]
    worker._received([Received("t", b"f%d" % mid, mid, 1, 1) for mid in (1, 2, 3)])
    thread = threading.Thread(target=worker._work)
    thread.start()
    try:
        time.sleep(0.4)  # many times the whole retry schedule
        ingestor.up.set()
        worker._received([Received("t", b"f4", 4, 1, 1)])
        deadline = time.monotonic() + 5
        while len(acks.acked) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        worker._stop.set()
        thread.join(5)
    assert ingestor.stored == [b"f1", b"f2", b"f3", b"f4"]
    assert acks.acked == [1, 2, 3, 4]
    assert ingestor.warm_ups == 1  # tried once as the worker starts; the batches go on


@pytest.mark.parametrize(
    ("value", "count"),
    [(0.0, 2), (0.05, 7), (0.1, 3), (0.100001, 3), (86400.0, 2), (1e9, 4), (2.5, 1)],
)
def test_observe_many_is_observe_repeated(value: float, count: int) -> None:
    """The fact-lag histogram takes a batch's lags once per distinct time, with a count:
    the same buckets and sum as one ``observe`` per fact (bounds included: ``le``)."""
    from prometheus_client import CollectorRegistry, Histogram

    from aggregator.ingest import observe_many

    buckets = (0.1, 0.5, 1, 86400)
    registry = CollectorRegistry()
    many = Histogram("many", "m", buckets=buckets, registry=registry)
    once = Histogram("once", "o", buckets=buckets, registry=registry)
    observe_many(many, value, count)
    for _ in range(count):
        once.observe(value)

    def samples(name: str) -> list[tuple[str, dict[str, str], float]]:
        return [
            (s.name.removeprefix(name), s.labels, s.value)
            for s in registry.collect()
            if s.name == name
            for s in s.samples
            if not s.name.endswith("_created")
        ]

    *counts, (name, _, total) = samples("many")
    *expected_counts, (_, _, expected_total) = samples("once")
    assert counts == expected_counts
    assert counts[-1] == ("_count", {}, count)
    assert (name, total) == ("_sum", pytest.approx(expected_total))


@pytest.mark.parametrize("dialect_name", ["sqlite", "postgresql"])
def test_driver_statement_refuses_parameters_the_rows_do_not_carry(dialect_name: str) -> None:
    """A statement with a bound value the caller's rows do not give fails when it is
    built, on positional (SQLite) and named (psycopg) drivers alike."""
    from sqlalchemy import column, insert, literal, table
    from sqlalchemy.dialects import postgresql, sqlite

    from aggregator.store.driver_sql import DriverStatement

    dialect = sqlite.dialect() if dialect_name == "sqlite" else postgresql.dialect()
    t = table("t", column("a"), column("b"))
    DriverStatement(insert(t), ("b", "a"), {}, dialect)
    with pytest.raises(RuntimeError, match="statement parameters"):
        DriverStatement(insert(t).values(a=literal(1)), ("b", "a"), {}, dialect)


def test_driver_statement_inserts_rows_on_sqlite_a_statement_per_chunk_all_or_none() -> None:
    """On SQLite an INSERT's rows go in multi-row statements (``ROWS_PER_INSERT`` rows
    each, columns in the statement's order); a row the primary key refuses fails them all
    in the caller's savepoint."""
    from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, insert

    from aggregator.store.driver_sql import ROWS_PER_INSERT, DriverStatement

    engine = create_engine("sqlite://", connect_args={"isolation_level": None})
    event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))  # savepoints
    table = Table("t", MetaData(), Column("a", Integer, primary_key=True), Column("b", String))
    table.metadata.create_all(engine)
    statement = DriverStatement(insert(table), ("b", "a"), {}, engine.dialect)
    sent: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: sent.append(a[2]))
    rows = [(f"row {i}", i) for i in range(ROWS_PER_INSERT * 2 + 1)]
    with engine.begin() as conn:
        statement.execute(conn, rows)
    inserts = [s.count("(?, ?)") for s in sent if s.startswith("INSERT")]
    assert inserts == [ROWS_PER_INSERT, ROWS_PER_INSERT, 1]
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT b, a FROM t ORDER BY a").all() == rows
    again = [(f"new {i}", i) for i in range(len(rows), len(rows) + ROWS_PER_INSERT + 5)]
    with engine.begin() as conn:
        with pytest.raises(IntegrityError), conn.begin_nested():
            statement.execute(conn, [*again, ("dup", 0)])  # the last chunk is refused
        count = conn.exec_driver_sql("SELECT count(*) FROM t").scalar()
    assert count == len(rows)
    engine.dispose()
