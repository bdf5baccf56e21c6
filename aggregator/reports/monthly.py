"""Monthly statistics (月度统计) of a hall and the bulletin (通报) ranking every hall.

Both reuse :mod:`aggregator.scores`: the month's inputs per window (gathered with
``now`` = the month's end, so a report of a closed month never depends on the clock) and
the hall's scoring model. The bulletin ranks halls, departments (``hall/department``)
and windows (``hall/window``) by score, highest first; equal scores share a rank
(1, 2, 2, 4) and are listed by subject.

Example:
    >>> [r["rank"] for r in rank([("b", 90.0), ("a", 95.0), ("c", 90.0)])]
    [1, 2, 2]
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any

from sqlalchemy import select

from aggregator.cases.models import Anomaly
from aggregator.export.timefmt import TimeFormat, format_time
from aggregator.scores import HallScores, Period, Score, gather_inputs, score_hall
from aggregator.store.state import StateStore
from aggregator.store.timeseries import TimeSeriesStore
from hallwatch.config.models import HallConfig

logger = logging.getLogger(__name__)


def month_scores(
    state: StateStore, series: TimeSeriesStore, hall: HallConfig, month: str
) -> HallScores:
    """The scores of ``hall`` for the calendar month ``YYYY-MM`` (hall time)."""
    period = Period.month(month, hall)
    inputs = gather_inputs(state, series, hall, period, now=period.until)
    return score_hall(inputs, hall.scoring)


def _score(s: Score) -> dict[str, Any]:
    return {
        "subject": s.subject,
        "score": s.score,
        "breakdown": [asdict(d) for d in s.breakdown],
    }


def monthly_document(
    state: StateStore, series: TimeSeriesStore, hall: HallConfig, month: str
) -> dict[str, Any]:
    """The monthly statistics of ``hall`` for ``month`` as a JSON document.

    Holds the totals, the anomalies by kind, every window's inputs and score, the
    departments' and the hall's scores, and the scores' digest.
    """
    scores = month_scores(state, series, hall, month)
    period = scores.inputs.period
    with state.read_session() as session:
        kinds = session.scalars(
            select(Anomaly.kind).where(
                Anomaly.hall == hall.hall.id,
                Anomaly.opened >= period.since,
                Anomaly.opened < period.until,
            )
        ).all()
    windows = scores.inputs.windows
    return {
        "kind": "monthly",
        "hall": hall.hall.id,
        "month": month,
        "since": format_time(period.since, hall.tzinfo, TimeFormat.ISO),
        "until": format_time(period.until, hall.tzinfo, TimeFormat.ISO),
        "model_version": scores.model.version,
        "scores_digest": scores.digest,
        "totals": {
            "cases_called": sum(w.cases_handled for w in windows),
            "warnings": sum(w.warnings for w in windows),
            "red_cards": sum(w.red_cards for w in windows),
            "bad_ratings": sum(w.bad_ratings for w in windows),
            "off_post_minutes": round(sum(w.off_post_minutes for w in windows), 3),
            "anomalies": len(kinds),
        },
        "anomalies_by_kind": dict(sorted(Counter(kinds).items())),
        "windows": [
            {**asdict(i), "score": s.score} for i, s in zip(windows, scores.windows, strict=True)
        ],
        "departments": [_score(d) for d in scores.departments],
        "hall_score": _score(scores.hall),
    }


def rank(scored: Iterable[tuple[str, float]]) -> list[dict[str, Any]]:
    """Competition ranking (1, 2, 2, 4) by score, highest first, ties by subject."""
    ordered = sorted(scored, key=lambda x: (-x[1], x[0]))
    out: list[dict[str, Any]] = []
    for n, (subject, value) in enumerate(ordered):
        position = out[-1]["rank"] if out and out[-1]["score"] == value else n + 1
        out.append({"rank": position, "subject": subject, "score": value})
    return out


def bulletin_document(
    state: StateStore, series: TimeSeriesStore, halls: Mapping[str, HallConfig], month: str
) -> dict[str, Any]:
    """The bulletin for ``month``: halls, departments and windows of every hall ranked."""
    hall_rows: list[tuple[str, float]] = []
    dept_rows: list[tuple[str, float]] = []
    window_rows: list[tuple[str, float]] = []
    digests: dict[str, str] = {}
    for hid in sorted(halls):
        scores = month_scores(state, series, halls[hid], month)
        digests[hid] = scores.digest
        hall_rows.append((hid, scores.hall.score))
        dept_rows += [(f"{hid}/{d.subject}", d.score) for d in scores.departments]
        window_rows += [(f"{hid}/{w.subject}", w.score) for w in scores.windows]
    logger.debug("bulletin %s: %d halls, %d windows", month, len(hall_rows), len(window_rows))
    return {
        "kind": "bulletin",
        "month": month,
        "scores_digests": digests,
        "halls": rank(hall_rows),
        "departments": rank(dept_rows),
        "windows": rank(window_rows),
    }
