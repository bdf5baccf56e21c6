"""The state store on PostgreSQL: the core of the SQLite state tests, run again there.

A throwaway PostgreSQL server (:mod:`tests.support.postgres`) is started once per test
process; one database is migrated once and emptied (``TRUNCATE``) before each test.

- Reused: scenarios of ``test_off_post_rule``, ``test_device_alerts``, ``test_zone_alerts``
  and ``test_anomaly_register`` are called with their own harnesses, whose
  ``StateStore`` is swapped for one on PostgreSQL (the harnesses build it from a SQLite
  path; the swap ignores that path).
- Direct, on SQLite and PostgreSQL: the partial unique indexes (one open alert per post,
  device and zone), evidence blobs (``bytea``), the 异常办件 register's row lock
  (two officers acting on one anomaly at once: one wins), and the dedup ledger's purge.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.exc import IntegrityError

import tests.test_anomaly_register as register_tests
import tests.test_device_alerts as device_tests
import tests.test_off_post_rule as off_post_tests
import tests.test_zone_alerts as zone_tests
from aggregator.alerts import insert_alerts
from aggregator.cases.lifecycle import TransitionError
from aggregator.cases.models import AnomalyTransition
from aggregator.ingest import Ingestor, IngestOutcome, Message
from aggregator.rules import off_post as off_post_module
from aggregator.store.evidence import get_evidence, purge_evidence, store_evidence
from aggregator.store.migrate import target_metadata, upgrade
from aggregator.store.state import Alert, LedgerPurge, PostStatus, SeenFact, StateStore
from aggregator.store.timeseries import SqliteTimeSeriesStore
from hallwatch.config.models import HallConfig
from hallwatch.contract import (
    Evidence,
    PostState,
    PresenceBody,
    PresenceFact,
    RatingLevel,
    encode,
    fact_topic,
)
from tests.conftest import build_hall
from tests.support.postgres import Postgres, available, shared_server

pytestmark = pytest.mark.integration

REUSED_MODULES = (off_post_tests, device_tests, zone_tests, register_tests)


@pytest.fixture(scope="session")
def postgres(request: pytest.FixtureRequest) -> Postgres:
    """The test process's PostgreSQL server."""
    if not available():
        pytest.skip("PostgreSQL is not installed")
    return shared_server(request.config.add_cleanup)


@pytest.fixture(scope="session")
def state_db(postgres: Postgres) -> Iterator[tuple[str, Engine]]:
    """A migrated database for these tests: its URL and an engine to empty it."""
    url = postgres.create_database("hw_state_tests")
    upgrade(url)
    engine = create_engine(url)
    yield url, engine
    engine.dispose()


def _emptied(state_db: tuple[str, Engine]) -> str:
    url, engine = state_db
    tables = ", ".join(f'"{name}"' for name in target_metadata().tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return url


@pytest.fixture
def on_postgres(state_db: tuple[str, Engine], monkeypatch: pytest.MonkeyPatch) -> str:
    """The reused harnesses' state store is on the (emptied) PostgreSQL database."""
    url = _emptied(state_db)

    def store(_ignored_url: str, **kwargs: Any) -> StateStore:
        return StateStore(url, **kwargs)

    for module in REUSED_MODULES:
        monkeypatch.setattr(module, "StateStore", store)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    """A migrated, empty state store on SQLite (a file) and on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    else:
        url = _emptied(request.getfixturevalue("state_db"))
    store = StateStore(url)
    store.migrate()
    yield store
    store.dispose()


# -- the SQLite tests' scenarios, on PostgreSQL ------------------------------------------


@pytest.fixture
def off_post_harnesses(
    on_postgres: str, tmp_path: Path
) -> Iterator[Callable[[HallConfig], off_post_tests.Harness]]:
    """``test_off_post_rule``'s harness factory, on PostgreSQL."""
    made: list[off_post_tests.Harness] = []

    def make(hall: HallConfig) -> off_post_tests.Harness:
        made.append(off_post_tests.Harness(tmp_path, hall))
        assert made[-1].state.url == on_postgres
        return made[-1]

    yield make
    for h in made:
        h.close()


@pytest.mark.parametrize(
    "case", list(off_post_tests.CASES.values()), ids=list(off_post_tests.CASES)
)
def test_off_post_timeline(
    off_post_harnesses: Callable[[HallConfig], off_post_tests.Harness], case: Any
) -> None:
    off_post_tests.test_timeline(off_post_harnesses, case)


def test_off_post_stale_presence_fact(
    off_post_harnesses: Callable[[HallConfig], off_post_tests.Harness],
) -> None:
    off_post_tests.test_stale_presence_fact_does_not_change_state(off_post_harnesses)


def test_off_post_batch_scenarios(
    off_post_harnesses: Callable[[HallConfig], off_post_tests.Harness],
) -> None:
    off_post_tests.test_two_absences_in_one_batch_after_an_open_alert(off_post_harnesses)
    off_post_tests.test_a_device_becoming_a_camera_in_the_batch_of_an_absence(off_post_harnesses)


def test_another_replica_opens_one_of_the_alerts_due_together(
    off_post_harnesses: Callable[[HallConfig], off_post_tests.Harness],
    on_postgres: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two replicas evaluate a hall at once (PostgreSQL only: SQLite lets one writer in at
    a time). Between this replica's reads and its insert of w1's and w2's alerts, the other
    commits w1's. The alerts due together go in one savepoint, which the unique index
    refuses; they are then inserted one by one: w2's opens here, w1's stays the other's."""
    h = off_post_harnesses(build_hall(off_post_tests.HALL))
    h.step("10:00 off w1")
    h.step("10:00 off w2")
    other = StateStore(on_postgres)
    checked = off_post_module._alerted

    def meanwhile(session: Any, keys: Any) -> Any:
        found = checked(session, keys)
        with other.session() as s:
            s.add(Alert(id="OTHER", hall=off_post_tests.HALL, kind="off_post", post="w1",
                        state="open", start=off_post_tests.t("10:00"),
                        opened_at=off_post_tests.t("10:09")))  # fmt: skip
        return found

    monkeypatch.setattr(off_post_module, "_alerted", meanwhile)
    opened = h.rule.evaluate(off_post_tests.t("10:10"))
    other.dispose()
    assert [m.post for m in opened] == ["w2"]
    assert sorted(
        (a.id == "OTHER", a.post, a.state) for a in h.state.open_alerts(off_post_tests.HALL)
    ) == [
        (False, "w2", "open"),
        (True, "w1", "open"),
    ]


DEVICE_SCENARIOS = [
    "test_offline_opens_one_alert_naming_the_device_and_reason",
    "test_online_resolves_the_same_alert",
    "test_repeat_and_redelivery_change_nothing",
    "test_stale_fact_is_ignored",
    "test_camera_offline_still_pauses_off_post",
]


@pytest.mark.parametrize("scenario", DEVICE_SCENARIOS)
def test_device_alerts(on_postgres: str, tmp_path: Path, scenario: str) -> None:
    _run(device_tests, lambda: device_tests.Harness(tmp_path), scenario, on_postgres)


ZONE_SCENARIOS = [
    "test_hygiene_bad_then_good_is_one_alert_with_its_duration",
    "test_two_dirty_episodes_are_two_alerts",
    "test_stale_bad_after_a_newer_good_is_recorded_resolved",
    "test_zone_row_inserted_meanwhile_by_another_replica_is_used",
    "test_crowding_opens_once_and_resolves",
    "test_off_post_alert_links_the_snapshot_of_its_absence",
    "test_snapshots_are_stored_once_per_episode",
]


@pytest.mark.parametrize("scenario", ZONE_SCENARIOS)
def test_zone_alerts(on_postgres: str, tmp_path: Path, scenario: str) -> None:
    _run(zone_tests, lambda: zone_tests.Harness(tmp_path), scenario, on_postgres)


REGISTER_SCENARIOS = [
    "test_wait_opens_without_window_and_the_call_fills_it",
    "test_trips_of_one_applicant_merge_when_the_case_number_arrives",
    "test_full_lifecycle_is_recorded_and_forbidden_steps_refused",
    "test_red_card_past_the_rectification_deadline",
    "test_duplicates_open_one_anomaly",
    "test_queue_gauges_update_state_and_stale_ones_do_not",
]


@pytest.mark.parametrize("scenario", REGISTER_SCENARIOS)
def test_anomaly_register(on_postgres: str, tmp_path: Path, scenario: str) -> None:
    def harness() -> register_tests.Harness:
        return register_tests.Harness(tmp_path, register_tests.case_hall())

    _run(register_tests, harness, scenario, on_postgres)


def test_anomaly_second_evaluation(on_postgres: str, tmp_path: Path) -> None:
    h = register_tests.Harness(tmp_path, register_tests.case_hall())
    try:
        register_tests.test_second_evaluation_decides_the_appeal(
            h, RatingLevel.SATISFIED, {}, "overturned", "overturned"
        )
    finally:
        h.close()


def _run(module: Any, harness: Callable[[], Any], scenario: str, url: str) -> None:
    h = harness()
    try:
        assert h.state.url == url and not h.state.is_sqlite
        getattr(module, scenario)(h)
    finally:
        h.close()


# -- on both backends --------------------------------------------------------------------

T0 = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)


def _alert(n: int, state: str = "open", **key: str) -> Alert:
    start = T0 + timedelta(minutes=n)
    return Alert(id=f"A{n:03d}", hall="h1", state=state, start=start, opened_at=start, **key)


@pytest.mark.parametrize(
    "key",
    [
        {"kind": "off_post", "post": "w1"},
        {"kind": "device_offline", "device": "k1"},
        {"kind": "hygiene_bad", "zone": "w1-public"},
    ],
    ids=["post", "device", "zone"],
)
def test_a_second_open_alert_for_the_same_subject_is_refused(
    state: StateStore, key: dict[str, str]
) -> None:
    with state.session() as s:
        s.add(_alert(1, **key))
    with pytest.raises(IntegrityError), state.session() as s:
        s.add(_alert(2, **key))
    # resolved ones, and open ones of other subjects or kinds, are allowed
    other = {k: f"{v}-2" for k, v in key.items()}
    with state.session() as s:
        s.add_all([_alert(3, "resolved", **key), _alert(4, "resolved", **key), _alert(5, **other)])
    with state.session() as s:
        s.add(_alert(6, **{**key, "kind": "other_kind"}))
    assert len(state.open_alerts("h1")) == 3
    # subjects left NULL (devices and zones on an off-post alert) are not one subject
    with state.session() as s:
        s.add_all([_alert(7, kind="off_post", post="w7"), _alert(8, kind="off_post", post="w8")])
    assert len(state.open_alerts("h1")) == 5


def _columns(alert: Alert) -> dict[str, object]:
    return {c.key: getattr(alert, c.key) for c in Alert.__table__.columns}


def test_alerts_inserted_in_one_statement_are_rows_like_the_unit_of_works(
    state: StateStore,
) -> None:
    """``insert_alerts`` writes what ``session.add`` writes (column defaults included),
    holds the alerts as loaded rows whose later changes are flushed, and holds none of a
    statement the partial unique index refuses."""
    with state.session() as s:
        s.add(_alert(1, kind="off_post", post="w1"))  # the unit of work's row, to compare
    with state.session() as s:
        batch = [_alert(2, kind="off_post", post="w2"), _alert(3, kind="off_post", post="w3")]
        with s.begin_nested():
            insert_alerts(s, batch)
        assert all(alert in s and alert not in s.new and alert not in s.dirty for alert in batch)
        batch[1].state, batch[1].end = "resolved", T0 + timedelta(hours=1)  # then changed
    with state.read_session() as s:
        rows = {a.id: _columns(a) for a in s.scalars(select(Alert).order_by(Alert.id))}
    assert rows["A002"] == {**rows["A001"], "id": "A002", "post": "w2",
                            "start": T0 + timedelta(minutes=2),
                            "opened_at": T0 + timedelta(minutes=2)}  # fmt: skip
    assert rows["A002"]["device"] is None and rows["A002"]["message"] == ""
    assert rows["A003"]["state"] == "resolved"
    assert rows["A003"]["end"] == T0 + timedelta(hours=1)
    # one of a statement's alerts refused (w2 is open): none is inserted or held
    with state.session() as s:
        refused = [_alert(4, kind="off_post", post="w4"), _alert(5, kind="off_post", post="w2")]
        with pytest.raises(IntegrityError), s.begin_nested():
            insert_alerts(s, refused)
        assert not any(alert in s for alert in refused)
        s.add(_alert(6, kind="off_post", post="w6"))  # the transaction goes on
    assert sorted(a.post or "" for a in state.open_alerts("h1")) == ["w1", "w2", "w6"]


def test_evidence_blobs_round_trip_and_are_purged(state: StateStore) -> None:
    jpeg = b"\xff\xd8" + bytes(range(256)) * 64 + b"\x00\x00\xff\xd9"
    ev = Evidence(camera="c1", taken=T0, region=[0, 10, 160, 130], width=160, height=120,
                  faces_blurred=2, jpeg=base64.b64encode(jpeg).decode())  # fmt: skip
    with state.session() as s:
        kept = store_evidence(s, "h1", ev, fact_id="F1", zone="w1-public", now=T0)
        old = store_evidence(s, "h1", ev, fact_id="F2", post="w1", now=T0 - timedelta(days=200))
    with state.read_session() as s:
        row = get_evidence(s, kept)
        assert row is not None
        assert (row.jpeg, row.region_box, row.taken) == (jpeg, [0, 10, 160, 130], T0)
    with state.session() as s:
        assert purge_evidence(s, T0 - timedelta(days=180)) == 1
    with state.read_session() as s:
        assert get_evidence(s, old) is None and get_evidence(s, kept) is not None


def test_two_officers_acting_at_once_on_one_anomaly(
    request: pytest.FixtureRequest, tmp_path: Path, state: StateStore
) -> None:
    """The register locks the anomaly's row: of two simultaneous appeals, one passes."""
    if not state.is_sqlite:
        request.getfixturevalue("on_postgres")
    h = register_tests.Harness(tmp_path, register_tests.case_hall())
    try:
        assert h.state.is_sqlite == state.is_sqlite
        h.feed(h.wait(register_tests.t("10:30")))
        anomaly = h.one()
        barrier = threading.Barrier(4)
        outcomes: list[str] = []

        def officer(name: str) -> None:
            barrier.wait()
            try:
                h.register.appeal(register_tests.HALL, anomaly.id, actor=name,
                                  now=register_tests.t("09:00", day=3))  # fmt: skip
                outcomes.append("appealed")
            except TransitionError:
                outcomes.append("refused")

        threads = [threading.Thread(target=officer, args=(f"o{i}",)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(outcomes) == ["appealed", "refused", "refused", "refused"]
        with h.state.read_session() as s:
            actions = list(s.scalars(select(AnomalyTransition.action)))
        assert sorted(actions) == ["appeal", "opened"]
    finally:
        h.close()


def _summary(hall: str, ts: datetime, *, since: datetime) -> Message:
    """A presence summary of post w1 (on post since ``since``), observed at ``ts``."""
    body = PresenceBody(camera="c1", post="w1", window="1", state=PostState.ON_POST,
                        since=since, summary=True)  # fmt: skip
    fact = PresenceFact(hall=hall, source="edge-1", ts=ts, body=body)
    return Message(fact_topic(hall, "presence"), encode(fact))


def test_a_batch_with_redelivered_facts_stores_only_the_new_ones(
    state: StateStore, tmp_path: Path
) -> None:
    """The dedup ledger is written optimistically, the batch at once: when its primary
    key refuses a redelivered fact, the savepoint is rolled back (nothing of the batch
    stays) and only the new facts are recorded."""
    hall = build_hall("h-dedup")
    series = SqliteTimeSeriesStore(tmp_path / "series.sqlite")
    ingestor = Ingestor(state, series, {"h-dedup": hall})
    at = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)

    def fact(k: int) -> Message:
        return _summary("h-dedup", at + timedelta(seconds=k), since=at)

    first, second, third = fact(1), fact(2), fact(3)
    stored, duplicate = IngestOutcome.STORED, IngestOutcome.DUPLICATE
    try:
        assert ingestor.handle_batch([first, second]) == [stored, stored]
        outcomes = ingestor.handle_batch([second, third, first, third])
        assert outcomes == [duplicate, stored, duplicate, duplicate]
        assert state.seen_count("h-dedup") == 3
        assert series.count() == 3
        with state.read_session() as s:
            post = s.get(PostStatus, ("h-dedup", "w1"))
            assert post is not None and post.last_fact_ts == at + timedelta(seconds=3)
    finally:
        series.close()


def test_the_ledger_forgets_old_facts_chunk_by_chunk(state: StateStore, tmp_path: Path) -> None:
    """``purge_ledger`` walks the ledger in id order, a window of rows at a time, and
    deletes the rows of facts observed before the cut-off in chunks (a spent time budget
    stops it after a window or a chunk, to go on from the id it names; a short window,
    or an exact one and then an empty one, ends it), and keeps the rest; a fact observed
    at the cut-off stays. How far it was purged is recorded and never moves back."""
    hall = build_hall("h-ledger")
    series = SqliteTimeSeriesStore(tmp_path / "series.sqlite")
    ingestor = Ingestor(state, series, {"h-ledger": hall})
    cut = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)

    def fact(ts: datetime) -> Message:
        return _summary("h-ledger", ts, since=ts)

    old = [fact(cut - timedelta(days=30, minutes=k)) for k in range(7)]
    new = [fact(cut), fact(cut + timedelta(days=1))]
    try:
        ingestor.handle_batch([*new[:1], *old, *new[1:]])
        assert state.seen_count("h-ledger") == 9
        assert state.ledger_horizon() is None
        assert state.purge_ledger(cut - timedelta(days=40), chunk=3) == LedgerPurge(0, None)
        assert state.ledger_horizon() == cut - timedelta(days=40)
        with state.read_session() as s:
            old_ids = sorted(s.scalars(select(SeenFact.id).where(SeenFact.ts < cut)))
            all_ids = sorted(s.scalars(select(SeenFact.id)))
        # a step reads ``scan`` rows, old or not: the walk stops after it, out of time
        early = cut - timedelta(days=40)
        assert state.purge_ledger(early, scan=4, budget_s=0) == LedgerPurge(0, all_ids[3])
        assert state.purge_ledger(early, after=all_ids[3], scan=4) == LedgerPurge(0, None)
        # no time left after each chunk: the walk stops and says where to go on
        first = state.purge_ledger(cut, chunk=3, budget_s=0)
        assert first == LedgerPurge(3, old_ids[2])
        assert state.purge_ledger(cut, after=old_ids[2], chunk=3, budget_s=0) == LedgerPurge(
            3, old_ids[5]
        )
        assert state.purge_ledger(cut, after=old_ids[5], chunk=3) == LedgerPurge(1, None)
        assert state.seen_count("h-ledger") == 2
        # a window of exactly ``scan`` rows, then an empty one
        assert state.purge_ledger(cut + timedelta(days=1), scan=2) == LedgerPurge(1, None)
        with state.read_session() as s:
            assert list(s.scalars(select(SeenFact.ts))) == [cut + timedelta(days=1)]
        # how far it was purged, which never moves back
        assert state.ledger_horizon() == cut + timedelta(days=1)
        state.purge_ledger(cut)
        assert state.ledger_horizon() == cut + timedelta(days=1)
    finally:
        series.close()
