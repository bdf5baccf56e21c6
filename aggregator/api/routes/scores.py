"""Performance scores (绩效考核) of a hall's windows, departments and the hall.

``GET /api/v1/halls/{hall}/scores?period=YYYY-MM`` (a calendar month in the hall's
timezone) or ``?since=…&until=…``. Every role may read; a hall the caller may not see is
404. The scores, their breakdowns and the ``digest`` of their inputs and model come from
:mod:`aggregator.scores`; the model is ``scoring`` of the hall config (``docs/scores.md``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field

from aggregator.api.deps import CallerDep, HallDep, SeriesDep, StateDep
from aggregator.api.params import ApiTime
from aggregator.scores import Period, Score, ScoreInputs, gather_inputs, score_hall
from hallwatch.contract import utcnow

router = APIRouter(prefix="/halls/{hall}", tags=["scores"])


class DeductionOut(BaseModel):
    """One line of a breakdown."""

    item: str = Field(description="warning, red_card, bad_rating, off_post, appeal_upheld, floor.")
    count: int = Field(description="How many (off_post: started blocks).")
    points: float = Field(description="Points off (floor: negative, given back).")


class ScoreOut(BaseModel):
    """A score with its breakdown."""

    subject: str = Field(description="Window, department or hall id.")
    score: float
    base: float
    breakdown: list[DeductionOut]
    windows: list[str] = Field(description="The windows scored.")


class WindowScoreOut(ScoreOut):
    """A window's score, with its department and inputs."""

    department: str | None
    inputs: dict[str, Any] = Field(description="What the score was computed from.")


class ScoresOut(BaseModel):
    """Every score of a hall for one period."""

    hall_id: str
    since: datetime
    until: datetime
    model_version: str
    model: dict[str, Any] = Field(description="The scoring model applied.")
    digest: str = Field(
        description="SHA-256 of period, inputs and model: same digest, same scores."
    )
    unattributed_anomalies: int = Field(description="Anomalies without a window (not scored).")
    windows: list[WindowScoreOut]
    departments: list[ScoreOut]
    hall: ScoreOut


def _out(s: Score) -> dict[str, Any]:
    return {
        "subject": s.subject,
        "score": s.score,
        "base": s.base,
        "breakdown": [
            DeductionOut(item=d.item, count=d.count, points=d.points) for d in s.breakdown
        ],
        "windows": list(s.windows),
    }


def _window_out(s: Score, i: ScoreInputs) -> WindowScoreOut:
    inputs = {
        "warnings": i.warnings,
        "red_cards": i.red_cards,
        "bad_ratings": i.bad_ratings,
        "off_post_minutes": i.off_post_minutes,
        "appeals_upheld": i.appeals_upheld,
        "appeals_overturned": i.appeals_overturned,
        "cases_handled": i.cases_handled,
    }
    return WindowScoreOut(**_out(s), department=i.department, inputs=inputs)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@router.get("/scores", response_model=ScoresOut, summary="Performance scores (绩效考核)")
def get_scores(
    hall: HallDep,
    state: StateDep,
    series: SeriesDep,
    _caller: CallerDep,
    period: Annotated[
        str | None,
        Query(pattern=r"^\d{4}-\d{2}$", description="Calendar month YYYY-MM (hall time)."),
    ] = None,
    since: Annotated[ApiTime | None, Query(description="Start (UTC if naive).")] = None,
    until: Annotated[ApiTime | None, Query(description="End, exclusive (UTC if naive).")] = None,
) -> ScoresOut:
    """Scores of every window, department and the hall, each with its breakdown.

    Give either ``period`` or both ``since`` and ``until`` (422 otherwise).
    """
    try:
        if period is not None and since is None and until is None:
            span = Period.month(period, hall)
        elif period is None and since is not None and until is not None:
            span = Period(_utc(since), _utc(until))
        else:
            raise ValueError("give period=YYYY-MM, or since and until")
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    model = hall.scoring
    inputs = gather_inputs(state, series, hall, span, now=utcnow())
    scores = score_hall(inputs, model)
    return ScoresOut(
        hall_id=inputs.hall,
        since=span.since,
        until=span.until,
        model_version=model.version,
        model=model.model_dump(mode="json"),
        digest=scores.digest,
        unattributed_anomalies=inputs.unattributed_anomalies,
        windows=[_window_out(s, i) for s, i in zip(scores.windows, inputs.windows, strict=True)],
        departments=[ScoreOut(**_out(s)) for s in scores.departments],
        hall=ScoreOut(**_out(s=scores.hall)),
    )
