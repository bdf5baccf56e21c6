"""The aggregator process's garbage-collector tuning (aggregator/runtime.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from aggregator.runtime import restore_gc, tune_gc
from aggregator.settings import AggregatorSettings


@pytest.fixture
def collector() -> Iterator[None]:
    """Leave the collector as the test found it."""
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()


def _young_collections() -> int:
    return int(gc.get_stats()[0]["collections"])


@pytest.mark.usefixtures("collector")
def test_a_batch_worth_of_objects_is_not_collected_once_tuned() -> None:
    batch = 8_000  # about what a 500-fact ingest batch holds at once (~16 per fact)
    before = _young_collections()
    held = [{"fact": i} for i in range(batch)]
    assert _young_collections() > before  # Python's default threshold (700) collects
    del held

    tuning = tune_gc(20_000)
    assert tuning is not None and tuning.frozen > 0 and gc.get_freeze_count() == tuning.frozen
    assert tuning.frozen_before == 0
    assert gc.get_threshold()[0] == 20_000
    before = _young_collections()
    held = [{"fact": i} for i in range(batch)]
    assert _young_collections() == before
    del held

    restore_gc(tuning)
    assert gc.get_threshold() == tuning.thresholds
    assert gc.get_freeze_count() == 0


@pytest.mark.usefixtures("collector")
def test_what_was_frozen_before_stays_frozen() -> None:
    gc.freeze()  # someone else's
    theirs = gc.get_freeze_count()
    tuning = tune_gc(20_000)
    assert tuning is not None and tuning.frozen_before == theirs
    restore_gc(tuning)
    assert gc.get_freeze_count() >= theirs and gc.get_threshold() == tuning.thresholds


@pytest.mark.usefixtures("collector")
def test_zero_leaves_the_collector_alone() -> None:
    thresholds = gc.get_threshold()
    assert tune_gc(0) is None
    assert gc.get_threshold() == thresholds and gc.get_freeze_count() == 0
    restore_gc(None)
    assert gc.get_threshold() == thresholds


@pytest.mark.parametrize(
    ("value", "accepted"),
    [("0", True), ("20000", True), ("1000000", True), ("-1", False), ("1000001", False)],
)
def test_threshold_setting_is_bounded(
    monkeypatch: pytest.MonkeyPatch, value: str, accepted: bool
) -> None:
    monkeypatch.setenv("HALLWATCH_GC_YOUNG_THRESHOLD", value)
    if accepted:
        assert AggregatorSettings().gc_young_threshold == int(value)
    else:
        with pytest.raises(ValueError, match="gc_young_threshold"):
            AggregatorSettings()
