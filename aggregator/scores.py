"""Performance scores (绩效考核) of windows, departments and the hall.

Two stages, both deterministic:

1. :func:`gather_inputs` reads one period's facts of a hall from the state database
   (异常办件, off-post alerts, ticket calls) and the series store (差评) into one frozen
   :class:`ScoreInputs` per window, sorted by window.
2. :func:`score` applies a :class:`~hallwatch.config.scoring.ScoringModel` to one window's
   inputs; :func:`roll_up` makes department and hall scores of window scores.

:func:`digest` hashes the period, the inputs and the model: the same digest means the
same scores. The model and a worked example are in ``docs/scores.md``.

Example:
    >>> from hallwatch.config.scoring import ScoringModel
    >>> s = score(ScoreInputs(window="1", warnings=2, bad_ratings=1), ScoringModel())
    >>> s.score, [(d.item, d.count, d.points) for d in s.breakdown]
    (95.0, [('warning', 2, 4.0), ('bad_rating', 1, 1.0)])
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, select

from aggregator.cases.lifecycle import Decision
from aggregator.cases.models import Anomaly, TicketCall
from aggregator.store.state import Alert, StateStore
from aggregator.store.timeseries import MEASUREMENT_RATING, TimeSeriesStore
from hallwatch.config.models import HallConfig
from hallwatch.config.scoring import ScoringModel
from hallwatch.contract import AlertKind, AnomalyKind, AnomalyLevel

logger = logging.getLogger(__name__)

ITEMS: tuple[str, ...] = ("warning", "red_card", "bad_rating", "off_post", "appeal_upheld")
"""Deduction items, in the order of every breakdown; ``floor`` (points given back so that
a score does not fall below 0) comes last when it applies."""


@dataclass(frozen=True, slots=True)
class Period:
    """A scoring period ``[since, until)``, UTC-aware."""

    since: datetime
    until: datetime

    def __post_init__(self) -> None:
        if self.since.tzinfo is None or self.until.tzinfo is None:
            raise ValueError("period bounds must be timezone-aware")
        if self.until <= self.since:
            raise ValueError("period must end after it starts")

    @classmethod
    def month(cls, text: str, hall: HallConfig) -> Period:
        """The calendar month ``YYYY-MM`` in the hall's timezone.

        Raises:
            ValueError: ``text`` is not ``YYYY-MM``.
        """
        year_s, sep, month_s = text.partition("-")
        if not sep or len(year_s) != 4 or len(month_s) != 2:
            raise ValueError(f"period must be YYYY-MM, got {text!r}")
        year, month = int(year_s), int(month_s)
        tz = hall.tzinfo
        start = datetime(year, month, 1, tzinfo=tz)
        end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
        return cls(start.astimezone(UTC), end.astimezone(UTC))


@dataclass(frozen=True, slots=True)
class ScoreInputs:
    """What one window's score depends on, for one period.

    Attributes:
        window: Window id.
        department: Its department (from the hall config), or None.
        warnings: Anomalies at warning level opened in the period, not overturned, not
            of kind ``bad_rating`` (those are counted as 差评).
        red_cards: Anomalies at red level opened in the period, not overturned.
        bad_ratings: 差评 (first evaluations) at the window, less ``bad_rating``
            anomalies overturned on appeal; never below 0.
        off_post_minutes: Minutes of off-post alerts within the period (ms precision).
        appeals_upheld: Anomalies whose appeal was decided ``upheld``.
        appeals_overturned: Anomalies whose appeal was decided ``overturned``.
        cases_handled: Distinct tickets called at the window (roll-up weight).
    """

    window: str
    department: str | None = None
    warnings: int = 0
    red_cards: int = 0
    bad_ratings: int = 0
    off_post_minutes: float = 0.0
    appeals_upheld: int = 0
    appeals_overturned: int = 0
    cases_handled: int = 0


@dataclass(frozen=True, slots=True)
class HallInputs:
    """One hall's inputs for one period: a window's inputs each, sorted by window."""

    hall: str
    period: Period
    windows: tuple[ScoreInputs, ...]
    unattributed_anomalies: int = 0
    """Anomalies without a window: listed, not scored."""


@dataclass(frozen=True, slots=True)
class Deduction:
    """One line of a breakdown: ``count`` of ``item`` cost ``points``."""

    item: str
    count: int
    points: float


@dataclass(frozen=True, slots=True)
class Score:
    """A score and its breakdown: ``score == base - sum(points)`` (up to rounding).

    Attributes:
        subject: Window id, department id, or the hall id.
        score: Points, 0 … base, rounded to 0.01.
        base: The model's base.
        breakdown: Deductions in :data:`ITEMS` order (items with count 0 left out).
        windows: The windows scored (one for a window score).
        model_version: The model's version.
    """

    subject: str
    score: float
    base: float
    breakdown: tuple[Deduction, ...]
    windows: tuple[str, ...]
    model_version: str


@dataclass(frozen=True, slots=True)
class HallScores:
    """Every score of a hall for one period, with the digest of what made them."""

    inputs: HallInputs
    windows: tuple[Score, ...]
    departments: tuple[Score, ...]
    hall: Score
    digest: str
    model: ScoringModel = field(repr=False)


def _off_post_blocks(minutes: float, model: ScoringModel) -> int:
    # Rounded to ms first so that float noise never starts a block.
    return math.ceil(round(minutes, 3) / model.off_post_block_minutes - 1e-9)


def score(inputs: ScoreInputs, model: ScoringModel) -> Score:
    """One window's score under ``model``.

    Args:
        inputs: The window's inputs.
        model: The scoring model.

    Returns:
        The score, ``base`` minus its deductions, never below 0 (a ``floor`` line gives
        back what went below).
    """
    counts = {
        "warning": inputs.warnings,
        "red_card": inputs.red_cards,
        "bad_rating": inputs.bad_ratings,
        "off_post": _off_post_blocks(inputs.off_post_minutes, model),
        "appeal_upheld": inputs.appeals_upheld,
    }
    rates = {
        "warning": model.per_warning,
        "red_card": model.per_red_card,
        "bad_rating": model.per_bad_rating,
        "off_post": model.per_off_post_block,
        "appeal_upheld": model.per_appeal_upheld,
    }
    lines = [Deduction(i, counts[i], counts[i] * rates[i]) for i in ITEMS if counts[i]]
    total = sum(d.points for d in lines)
    if total > model.base:
        lines.append(Deduction("floor", 0, model.base - total))
    return Score(
        subject=inputs.window,
        score=round(max(model.base - total, 0.0), 2),
        base=model.base,
        breakdown=tuple(Deduction(d.item, d.count, round(d.points, 2)) for d in lines),
        windows=(inputs.window,),
        model_version=model.version,
    )


def roll_up(
    subject: str,
    scores: Sequence[Score],
    inputs: Sequence[ScoreInputs],
    model: ScoringModel,
) -> Score:
    """A department's or the hall's score: the mean of its windows' scores.

    With ``model.rollup == "weighted_by_cases"`` each window weighs its
    ``cases_handled`` (plain mean when they are all 0). Each breakdown line is the same
    mean of the windows' lines, its count their sum.

    Args:
        subject: Department or hall id.
        scores: Window scores, in the order of ``inputs``.
        inputs: Those windows' inputs.
        model: The scoring model.

    Returns:
        The roll-up (``base`` with an empty breakdown when there are no windows).
    """
    weights = [1.0] * len(scores)
    if model.rollup == "weighted_by_cases" and any(i.cases_handled for i in inputs):
        weights = [float(i.cases_handled) for i in inputs]
    total_w = sum(weights)
    if not scores or total_w == 0:
        return Score(subject, model.base, model.base, (), (), model.version)
    counts: dict[str, int] = defaultdict(int)
    points: dict[str, float] = defaultdict(float)
    for s, w in zip(scores, weights, strict=True):
        for d in s.breakdown:
            counts[d.item] += d.count
            points[d.item] += d.points * w / total_w
    value = sum(s.score * w for s, w in zip(scores, weights, strict=True)) / total_w
    order = [*ITEMS, "floor"]
    return Score(
        subject=subject,
        score=round(value, 2),
        base=model.base,
        breakdown=tuple(
            Deduction(item, counts[item], round(points[item], 2))
            for item in order
            if item in counts
        ),
        windows=tuple(s.subject for s in scores),
        model_version=model.version,
    )


def digest(inputs: HallInputs, model: ScoringModel) -> str:
    """SHA-256 (hex) of the period, the inputs and the model, canonical JSON."""
    doc = {
        "hall": inputs.hall,
        "since": inputs.period.since.astimezone(UTC).isoformat(),
        "until": inputs.period.until.astimezone(UTC).isoformat(),
        "windows": [asdict(w) for w in inputs.windows],
        "unattributed_anomalies": inputs.unattributed_anomalies,
        "model": model.model_dump(mode="json"),
    }
    text = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def score_hall(inputs: HallInputs, model: ScoringModel) -> HallScores:
    """Window, department (by id) and hall scores of one hall's inputs."""
    windows = [score(i, model) for i in inputs.windows]
    by_dept: dict[str, list[int]] = defaultdict(list)
    for n, i in enumerate(inputs.windows):
        if i.department is not None:
            by_dept[i.department].append(n)
    departments = tuple(
        roll_up(
            dept,
            [windows[n] for n in idx],
            [inputs.windows[n] for n in idx],
            model,
        )
        for dept, idx in sorted(by_dept.items())
    )
    hall = roll_up(inputs.hall, windows, inputs.windows, model)
    return HallScores(inputs, tuple(windows), departments, hall, digest(inputs, model), model)


def _clip_minutes(start: datetime, end: datetime, since: datetime, until: datetime) -> float:
    seconds = (min(end, until) - max(start, since)).total_seconds()
    return max(seconds, 0.0) / 60.0


def _bad_ratings(series: TimeSeriesStore, hall: str, period: Period) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    points = series.query(MEASUREMENT_RATING, hall=hall, start=period.since, end=period.until)
    for p in points:
        window = p.tags.get("window")
        if window and p.fields.get("bad") == 1 and p.fields.get("evaluation", 1) == 1:
            counts[window] += 1
    return counts


def gather_inputs(
    state: StateStore,
    series: TimeSeriesStore,
    hall: HallConfig,
    period: Period,
    *,
    now: datetime | None = None,
) -> HallInputs:
    """Read one hall's inputs for ``period``.

    Windows are those of the hall config and any other window named by the data, sorted.
    Anomalies count by ``opened`` within the period; off-post alerts by their minutes
    within it (an open alert runs until ``min(until, now)``).

    Args:
        state: The state database.
        series: The series store (``rating`` points).
        hall: The hall's config.
        period: The period.
        now: Current time for open alerts (default: now).
    """
    hid = hall.hall.id
    since, until = period.since, period.until
    open_end = min(until, now or datetime.now(UTC))
    departments = {w.id: w.department for w in hall.windows}
    acc: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    unattributed = 0
    with state.read_session() as session:
        anomalies = session.scalars(
            select(Anomaly)
            .where(Anomaly.hall == hid, Anomaly.opened >= since, Anomaly.opened < until)
            .order_by(Anomaly.id)
        ).all()
        for a in anomalies:
            if a.window is None:
                unattributed += 1
                continue
            row = acc[a.window]
            if a.decision == Decision.OVERTURNED.value:
                row["appeals_overturned"] += 1
                if a.kind == AnomalyKind.BAD_RATING.value:
                    row["overturned_bad_ratings"] += 1
                continue
            if a.level == AnomalyLevel.RED.value:
                row["red_cards"] += 1
            elif a.kind != AnomalyKind.BAD_RATING.value:
                row["warnings"] += 1
            if a.decision == Decision.UPHELD.value:
                row["appeals_upheld"] += 1
        alerts = session.scalars(
            select(Alert).where(
                Alert.hall == hid,
                Alert.kind == AlertKind.OFF_POST.value,
                Alert.window.is_not(None),
                Alert.start < until,
            )
        ).all()
        for al in alerts:
            if al.window is None:
                continue
            end = al.end if al.end is not None else open_end
            acc[al.window]["off_post_minutes"] += _clip_minutes(al.start, end, since, until)
        calls = session.execute(
            select(TicketCall.window, func.count(func.distinct(TicketCall.ticket_id)))
            .where(TicketCall.hall == hid, TicketCall.at >= since, TicketCall.at < until)
            .group_by(TicketCall.window)
        ).all()
        for window, n in calls:
            acc[window]["cases_handled"] += n
    for window, n in _bad_ratings(series, hid, period).items():
        acc[window]["bad_ratings"] += n
    names = sorted(set(departments) | set(acc))
    windows = tuple(_inputs(w, departments.get(w), acc.get(w, {})) for w in names)
    logger.debug("score inputs of %s: %d windows", hid, len(windows))
    return HallInputs(hid, period, windows, unattributed)


def _inputs(window: str, department: str | None, row: dict[str, float]) -> ScoreInputs:
    bad = int(row.get("bad_ratings", 0)) - int(row.get("overturned_bad_ratings", 0))
    return ScoreInputs(
        window=window,
        department=department,
        warnings=int(row.get("warnings", 0)),
        red_cards=int(row.get("red_cards", 0)),
        bad_ratings=max(bad, 0),
        off_post_minutes=round(row.get("off_post_minutes", 0.0), 3),
        appeals_upheld=int(row.get("appeals_upheld", 0)),
        appeals_overturned=int(row.get("appeals_overturned", 0)),
        cases_handled=int(row.get("cases_handled", 0)),
    )
