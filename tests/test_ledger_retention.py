"""The dedup ledger's retention (``ledger_retention_days``).

The ledger remembers a fact for the retention, counted from the fact's time; the ingest
refuses facts observed longer ago (dead-lettered as ``too_old``, payload kept), and the
housekeeping deletes the rows of facts the ingest already refuses, a day later. So a
forgotten fact is never applied twice. The purge itself runs on SQLite and PostgreSQL in
``tests/test_state_postgres.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

import aggregator.ingest as ingest_module
import aggregator.service as service_module
import aggregator.store.state as state_module
from aggregator.ingest import REJECTED, Ingestor, IngestOutcome, Message
from aggregator.service import AggregatorService, Housekeeping
from aggregator.settings import AggregatorSettings
from aggregator.store.state import StateStore
from aggregator.store.timeseries import SqliteTimeSeriesStore
from hallwatch.contract import (
    DeviceState,
    EdgeStatus,
    PostState,
    PresenceBody,
    PresenceFact,
    edge_status_topic,
    encode,
    fact_topic,
)
from tests.conftest import build_hall
from tests.support.clock import SettableClock

HALL = "h-ledger-age"
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
STORED, DUPLICATE = IngestOutcome.STORED, IngestOutcome.DUPLICATE
DEAD = IngestOutcome.DEAD_LETTERED


@dataclass
class Stores:
    state: StateStore
    series: SqliteTimeSeriesStore


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Stores]:
    state = StateStore(f"sqlite:///{tmp_path / 'state.sqlite'}")
    state.create_all()
    series = SqliteTimeSeriesStore(tmp_path / "series.sqlite")
    yield Stores(state, series)
    series.close()
    state.dispose()


def presence(ts: datetime, post: str = "w1") -> Message:
    body = PresenceBody(camera="c1", post=post, window="1", state=PostState.ON_POST, since=ts,
                        summary=True)  # fmt: skip
    fact = PresenceFact(hall=HALL, source="edge-1", ts=ts, body=body)
    return Message(fact_topic(HALL, "presence"), encode(fact))


def too_old_count() -> float:
    return REJECTED.labels("too_old")._value.get()


def test_a_fact_older_than_the_horizon_is_dead_lettered_and_its_batch_goes_on(
    stores: Stores,
) -> None:
    halls = {HALL: build_hall(HALL)}
    ingestor = Ingestor(stores.state, stores.series, halls, clock=SettableClock(NOW),
                        max_age=timedelta(days=14))  # fmt: skip
    horizon = NOW - timedelta(days=14)
    refused_before = too_old_count()
    batch = [presence(horizon, "w1"), presence(horizon - timedelta(seconds=1), "w2"),
             presence(NOW, "w3")]  # fmt: skip
    assert ingestor.handle_batch(batch) == [STORED, DEAD, STORED]
    assert too_old_count() == refused_before + 1
    (letter,) = stores.state.dead_letters()
    assert letter.payload == batch[1].payload  # kept as received
    assert "before the dedup ledger's horizon 2026-11-06T09:00:00+00:00" in letter.reason
    assert "HALLWATCH_LEDGER_RETENTION_DAYS" in letter.reason
    assert stores.state.seen_count(HALL) == 2
    assert stores.series.count() == 2  # the refused fact wrote no point
    assert {p.post for p in stores.state.post_statuses(HALL)} == {"w1", "w3"}


def test_an_edge_status_is_not_refused_for_its_age(stores: Stores) -> None:
    """An edge's will is dated when it connected, which may be long ago: not a fact."""
    halls = {HALL: build_hall(HALL)}
    ingestor = Ingestor(stores.state, stores.series, halls, clock=SettableClock(NOW),
                        max_age=timedelta(days=14))  # fmt: skip
    status = EdgeStatus(hall=HALL, source="edge-1", state=DeviceState.OFFLINE,
                        ts=NOW - timedelta(days=30))  # fmt: skip
    message = Message(edge_status_topic(HALL), encode(status))
    assert ingestor.handle_batch([message]) == [STORED]


def test_without_a_horizon_every_age_is_applied(stores: Stores) -> None:
    """The library's default (tests and tools replaying old days): nothing is too old."""
    ingestor = Ingestor(
        stores.state, stores.series, {HALL: build_hall(HALL)}, clock=SettableClock(NOW)
    )
    assert ingestor.handle_batch([presence(NOW - timedelta(days=3650))]) == [STORED]


def _service(stores: Stores, clock: SettableClock) -> AggregatorService:
    settings = AggregatorSettings(halls=[], http_port=0, ledger_retention_days=14)
    return AggregatorService(settings, {HALL: build_hall(HALL)}, state=stores.state,
                             series=stores.series, mqtt=False, clock=clock)  # fmt: skip


def test_the_service_forgets_only_what_its_ingest_refuses(stores: Stores) -> None:
    """With a 14-day retention: a fact is refused once 14 days old, its ledger row kept
    until it is 15 days old, and its redelivery after that is still refused, not applied.
    The edges' newest fact (one a minute) keeps the purge's time."""
    clock = SettableClock(NOW)
    service = _service(stores, clock)
    ingest = service.ingestor.handle_batch
    old, new = presence(NOW - timedelta(days=10), "w1"), presence(NOW - timedelta(days=1), "w2")
    assert ingest([old, new, presence(NOW, "w3")]) == [STORED] * 3
    assert service.housekeeping(clock.now) == Housekeeping(evidence=0, ledger=0)

    clock.now = NOW + timedelta(days=5)  # ``old`` is 15 days old: refused, still remembered
    assert ingest([old, presence(clock.now, "w3")]) == [DEAD, STORED]
    assert service.housekeeping(clock.now) == Housekeeping(evidence=0, ledger=0)
    assert stores.state.seen_count(HALL) == 4

    clock.now = NOW + timedelta(days=5, hours=1, seconds=1)  # over a day past the horizon
    assert ingest([presence(clock.now, "w3")]) == [STORED]
    assert service.housekeeping(clock.now) == Housekeeping(evidence=0, ledger=1)
    assert stores.state.seen_count(HALL) == 4
    assert ingest([old, new]) == [DEAD, DUPLICATE]  # forgotten, yet never applied twice
    assert stores.state.seen_count(HALL) == 4


def test_a_retention_raised_after_a_purge_still_refuses_what_was_forgotten(
    stores: Stores,
) -> None:
    """A 14-day aggregator purged the ledger; restarted with 90 days, it accepts a fact
    20 days old that was never seen, but not one older than how far the ledger was purged,
    whose row may be gone."""
    clock = SettableClock(NOW)
    service = _service(stores, clock)
    forgotten = presence(NOW - timedelta(days=10), "w1")
    assert service.ingestor.handle_batch([forgotten]) == [STORED]
    clock.now = NOW + timedelta(days=10)
    assert service.ingestor.handle_batch([presence(clock.now, "w2")]) == [STORED]
    assert service.housekeeping(clock.now) == Housekeeping(evidence=0, ledger=1)
    purged_to = clock.now - timedelta(days=15)
    assert stores.state.ledger_horizon() == purged_to

    settings = AggregatorSettings(halls=[], http_port=0, ledger_retention_days=90)
    restarted = AggregatorService(settings, {HALL: build_hall(HALL)}, state=stores.state,
                                  series=stores.series, mqtt=False, clock=clock)  # fmt: skip
    late = presence(purged_to + timedelta(seconds=1), "w3")  # 15 days old, never seen
    assert restarted.ingestor.handle_batch([forgotten, late]) == [DEAD, STORED]
    (letter,) = stores.state.dead_letters()
    assert f"horizon {purged_to.isoformat()}" in letter.reason


def test_another_replicas_purge_is_read_again(
    stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two replicas of one database, set to 14 and 90 days: what the first forgets, the
    second refuses once it reads again how far the ledger was purged (at most every
    ``HORIZON_READ_EVERY_S``; here at every batch)."""
    monkeypatch.setattr(ingest_module, "HORIZON_READ_EVERY_S", 0.0)
    clock = SettableClock(NOW)
    short = _service(stores, clock)
    settings = AggregatorSettings(halls=[], http_port=0, ledger_retention_days=90)
    long = AggregatorService(settings, {HALL: build_hall(HALL)}, state=stores.state,
                             series=stores.series, mqtt=False, clock=clock)  # fmt: skip
    forgotten = presence(NOW - timedelta(days=10), "w1")
    assert long.ingestor.handle_batch([forgotten]) == [STORED]
    clock.now = NOW + timedelta(days=10)
    assert short.ingestor.handle_batch([presence(clock.now, "w2")]) == [STORED]
    assert short.housekeeping(clock.now) == Housekeeping(evidence=0, ledger=1)
    assert long.ingestor.handle_batch([forgotten]) == [DEAD]


def test_a_clock_that_jumps_ahead_does_not_empty_the_ledger(stores: Stores) -> None:
    """The purge counts from the newest fact stored when the clock is ahead of it: a
    clock 200 days fast forgets nothing the edges' own times keep; with no fact stored
    since start there is nothing to check the clock against, and nothing is purged."""
    earlier_run = Ingestor(stores.state, stores.series, {HALL: build_hall(HALL)},
                           clock=SettableClock(NOW - timedelta(days=5)))  # fmt: skip
    facts = [presence(NOW - timedelta(days=d), f"w{d}") for d in (16, 14)]
    assert earlier_run.handle_batch(facts) == [STORED] * 2
    clock = SettableClock(NOW)
    service = _service(stores, clock)
    assert service.housekeeping(NOW + timedelta(days=200)) == Housekeeping(0, 0)
    assert service.ingestor.handle_batch([presence(NOW, "w1")]) == [STORED]
    # an hour later, the clock 200 days fast: only the 16-day-old fact goes
    assert service.housekeeping(NOW + timedelta(days=200, hours=1)) == Housekeeping(0, 1)
    assert stores.state.seen_count(HALL) == 2


def test_a_ledger_far_behind_is_forgotten_a_slice_at_every_tick(
    stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first purge after an upgrade may find months of rows: each tick deletes what
    fits in its time budget (here: one chunk of two), the next tick goes on, not an hour
    later; once done, the purge is hourly again."""
    monkeypatch.setattr(service_module, "LEDGER_PURGE_BUDGET_S", 0.0)
    monkeypatch.setattr(state_module, "LEDGER_PURGE_CHUNK", 2)
    clock = SettableClock(NOW - timedelta(days=30))
    service = _service(stores, clock)
    old = [presence(clock.now + timedelta(minutes=k), f"w{k}") for k in range(1, 6)]
    assert service.ingestor.handle_batch(old) == [STORED] * 5
    clock.now = NOW
    assert service.ingestor.handle_batch([presence(NOW, "w9")]) == [STORED]
    tick = timedelta(seconds=1)
    done = [service.housekeeping(NOW + k * tick) for k in range(4)]
    assert done == [Housekeeping(evidence=0, ledger=2), Housekeeping(evidence=0, ledger=2),
                    Housekeeping(evidence=0, ledger=1), None]  # fmt: skip
    assert stores.state.seen_count(HALL) == 1


@pytest.mark.parametrize(("days", "valid"), [(13, False), (14, True), (90, True),
                                             (3650, True), (3651, False)])  # fmt: skip
def test_the_retention_is_bounded(days: int, valid: bool) -> None:
    if valid:
        assert (
            AggregatorSettings(halls=[], ledger_retention_days=days).ledger_retention_days == days
        )
    else:
        with pytest.raises(ValidationError, match="ledger_retention_days"):
            AggregatorSettings(halls=[], ledger_retention_days=days)


def test_the_default_retention_is_ninety_days() -> None:
    assert AggregatorSettings(halls=[]).ledger_retention_days == 90
