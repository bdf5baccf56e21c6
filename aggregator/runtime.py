"""Process-wide tuning of the aggregator: Python's cyclic garbage collector.

Ingest allocates some sixteen tracked objects per fact (the validated model, its point,
ledger and state rows) that live until their batch is stored. With Python's default
young-generation threshold (700 allocations net of frees) a batch of 4,000 facts (~64,000
such objects) runs through dozens of collections; its objects survive them, are promoted,
and are scanned again in the older generations, together with everything the process
loaded at start (SQLAlchemy's, pydantic's and FastAPI's hundreds of thousands of objects).
That cost is in memory traffic, not instructions (callgrind sees ~1 %): tuning the
collector as below made the whole ingest 13–29 % faster in paired runs of
``benchmarks/ingest.py`` on the 2-core test machine.

:func:`tune_gc` is what the ``hallwatch aggregator`` process does once it is built:

1. collect once, then :func:`gc.freeze` what start-up left: those objects live as long as
   the process and are never scanned again;
2. raise the young generation's threshold (``HALLWATCH_GC_YOUNG_THRESHOLD``, 100,000 by
   default) above what a batch holds at once, so a batch's objects are freed by reference
   counting before any collection sees them. Reference cycles are still collected, just
   less often (a few MiB of garbage at most).

A frozen object is never collected: one alive at start-up that later becomes part of
unreachable cycles stays (start-up's objects are the process's long-lived ones: modules,
models, configuration). Nothing in the aggregator forks.

It is a process setting, so it belongs to the process's entry point, not to library
classes (tests build many services in one process and keep Python's defaults).
"""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GcTuning:
    """The collector's settings before :func:`tune_gc` changed them (see :func:`restore_gc`).

    Attributes:
        thresholds: What :func:`gc.get_threshold` returned.
        frozen_before: Objects already frozen (by someone else) before.
        frozen: Objects frozen after :func:`tune_gc` froze start-up's.
    """

    thresholds: tuple[int, int, int]
    frozen_before: int
    frozen: int


def tune_gc(young_threshold: int) -> GcTuning | None:
    """Freeze the objects start-up left and raise the young generation's threshold.

    Args:
        young_threshold: Allocations (net of frees) before a young collection; 0 leaves
            the collector as Python set it.

    Returns:
        The settings before (for :func:`restore_gc`), or None when nothing changed.

    >>> before = tune_gc(20_000)
    >>> gc.get_threshold()[0], gc.get_freeze_count() > 0
    (20000, True)
    >>> restore_gc(before)
    >>> gc.get_threshold() == before.thresholds
    True
    >>> tune_gc(0) is None
    True
    """
    if young_threshold <= 0:
        return None
    before = gc.get_threshold()
    old, older = before[1], before[2]
    frozen_before = gc.get_freeze_count()
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    gc.set_threshold(young_threshold, old, older)
    logger.info(
        "garbage collector: %d start-up objects frozen, young threshold %d (was %d)",
        frozen,
        young_threshold,
        before[0],
    )
    return GcTuning(thresholds=before, frozen_before=frozen_before, frozen=frozen)


def restore_gc(tuning: GcTuning | None) -> None:
    """Undo :func:`tune_gc`: the thresholds it replaced, and the objects it froze scanned
    again (Python unfreezes all or nothing: when something was frozen before
    :func:`tune_gc`, everything stays frozen).

    Args:
        tuning: What :func:`tune_gc` returned (None: nothing to undo).
    """
    if tuning is None:
        return
    gc.set_threshold(*tuning.thresholds)
    if tuning.frozen_before == 0:
        gc.unfreeze()
