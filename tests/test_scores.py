"""Performance scores: the model's config, a table of inputs → scores and breakdowns,
gathering from the state DB and series store, reproducibility (same data and model →
same scores and digest), roll-ups, and the API."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from aggregator.api.deps import ApiServices, Caller, Role, get_caller
from aggregator.bus import LiveBus
from aggregator.cases.models import Anomaly, TicketCall
from aggregator.cases.register import CaseRegister
from aggregator.ingest import Ingestor
from aggregator.scores import (
    Deduction,
    HallInputs,
    Period,
    ScoreInputs,
    digest,
    gather_inputs,
    roll_up,
    score,
    score_hall,
)
from aggregator.store.state import Alert, StateStore
from aggregator.store.timeseries import SqliteTimeSeriesStore
from hallwatch.config.models import HallConfig
from hallwatch.config.scoring import ScoringModel
from hallwatch.contract import RatingBody, RatingFact, RatingLevel, encode, fact_topic
from tests.conftest import build_hall
from tests.support.api import signed_in_app
from tests.test_anomaly_register import case_hall

MODEL = ScoringModel()
NOV = datetime(2026, 11, 1, tzinfo=UTC)


def d(item: str, count: int, points: float) -> Deduction:
    return Deduction(item, count, points)


CASES: list[tuple[str, ScoreInputs, ScoringModel, float, list[Deduction]]] = [
    ("clean", ScoreInputs("1"), MODEL, 100.0, []),
    ("warnings", ScoreInputs("1", warnings=3), MODEL, 94.0, [d("warning", 3, 6.0)]),
    (
        "everything",
        ScoreInputs(
            "1",
            warnings=2,
            red_cards=1,
            bad_ratings=3,
            off_post_minutes=25.0,
            appeals_upheld=1,
            appeals_overturned=4,
        ),
        MODEL,
        79.0,
        [
            d("warning", 2, 4.0),
            d("red_card", 1, 10.0),
            d("bad_rating", 3, 3.0),
            d("off_post", 3, 3.0),
            d("appeal_upheld", 1, 1.0),
        ],
    ),
    (
        "off-post exact block",
        ScoreInputs("1", off_post_minutes=20.0),
        MODEL,
        98.0,
        [d("off_post", 2, 2.0)],
    ),
    (
        "off-post a second over",
        ScoreInputs("1", off_post_minutes=20.017),
        MODEL,
        97.0,
        [d("off_post", 3, 3.0)],
    ),
    (
        "per minute",
        ScoreInputs("1", off_post_minutes=2.5),
        ScoringModel(off_post_block_minutes=1, per_off_post_block=0.5),
        98.5,
        [d("off_post", 3, 1.5)],
    ),
    (
        "floor",
        ScoreInputs("1", red_cards=12),
        MODEL,
        0.0,
        [d("red_card", 12, 120.0), d("floor", 0, -20.0)],
    ),
    ("overturned costs nothing", ScoreInputs("1", appeals_overturned=5), MODEL, 100.0, []),
    (
        "other base",
        ScoreInputs("1", warnings=1, bad_ratings=2),
        ScoringModel(base=60, per_warning=5, per_bad_rating=2.5),
        50.0,
        [d("warning", 1, 5.0), d("bad_rating", 2, 5.0)],
    ),
]


@pytest.mark.parametrize(
    ("inputs", "model", "expected", "breakdown"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_score_table(
    inputs: ScoreInputs, model: ScoringModel, expected: float, breakdown: list[Deduction]
) -> None:
    s = score(inputs, model)
    assert s.score == expected
    assert list(s.breakdown) == breakdown
    assert s.base - sum(x.points for x in s.breakdown) == pytest.approx(s.score)
    assert s.model_version == model.version and s.windows == ("1",)


def test_model_bounds_and_hall_default() -> None:
    assert case_hall().scoring == ScoringModel()
    for bad in (
        {"per_warning": -1},
        {"base": 0},
        {"off_post_block_minutes": 0},
        {"rollup": "median"},
        {"bonus": 1},
        {"version": ""},
        {"per_red_card": 1, "per_warning": 2},
    ):
        with pytest.raises(ValidationError):
            ScoringModel.model_validate(bad)
    data = build_hall("h-cases").model_dump(
        mode="json", by_alias=True, context={"reveal_secrets": True}
    )
    data["scoring"] = {"version": "county-2027", "per_red_card": 20}
    hall = HallConfig.model_validate(data)
    assert (hall.scoring.version, hall.scoring.per_red_card) == ("county-2027", 20.0)


def test_roll_ups_mean_and_weighted() -> None:
    ins = [
        ScoreInputs("1", warnings=5, cases_handled=30),  # 90
        ScoreInputs("2", red_cards=3, cases_handled=10),
    ]  # 70
    scores = [score(i, MODEL) for i in ins]
    mean = roll_up("tax", scores, ins, MODEL)
    assert mean.score == 80.0 and mean.windows == ("1", "2")
    assert list(mean.breakdown) == [d("warning", 5, 5.0), d("red_card", 3, 15.0)]
    weighted_model = ScoringModel(rollup="weighted_by_cases")
    weighted = roll_up("tax", scores, ins, weighted_model)
    assert weighted.score == 85.0  # (90*30 + 70*10) / 40
    assert list(weighted.breakdown) == [d("warning", 5, 7.5), d("red_card", 3, 7.5)]
    idle = [ScoreInputs("1", warnings=5), ScoreInputs("2", red_cards=3)]
    assert roll_up("tax", scores, idle, weighted_model).score == 80.0  # no cases: plain mean
    empty = roll_up("none", [], [], MODEL)
    assert (empty.score, empty.breakdown) == (100.0, ())


def test_period_month_in_hall_time() -> None:
    p = Period.month("2026-12", case_hall())  # Asia/Shanghai
    assert p.since == datetime(2026, 11, 30, 16, tzinfo=UTC)
    assert p.until == datetime(2026, 12, 31, 16, tzinfo=UTC)
    for bad in ("2026-13", "2026-1", "202611"):
        with pytest.raises(ValueError):
            Period.month(bad, case_hall())


# --- gathering from the stores ---------------------------------------------------------


@dataclass
class Stores:
    state: StateStore
    series: SqliteTimeSeriesStore
    hall: HallConfig


def anomaly(
    n: int,
    window: str | None,
    at: datetime,
    *,
    kind: str = "wait_over_limit",
    level: str = "warning",
    decision: str | None = None,
) -> Anomaly:
    return Anomaly(
        id=f"an-{n}",
        hall="h-cases",
        dedup_key=f"manual:{n}",
        kind=kind,
        state="open",
        level=level,
        decision=decision,
        window=window,
        source="manual",
        opened=at,
        appeal_deadline=at + timedelta(days=14),
        created_at=at,
        updated_at=at,
    )


def off_post(n: int, window: str, start: datetime, end: datetime | None) -> Alert:
    return Alert(
        id=f"al-{n}",
        hall="h-cases",
        kind="off_post",
        post=f"p{window}",
        window=window,
        state="open" if end is None else "resolved",
        start=start,
        end=end,
        opened_at=start,
        resolved_at=end,
    )


def rating_fact(at: datetime, rid: str, window: str, level: RatingLevel) -> RatingFact:
    body = RatingBody(rating_id=rid, at=at, level=level, window=window, case_no=f"K-{rid}")
    return RatingFact(hall="h-cases", source="edge-1", ts=at, body=body)


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Stores]:
    state = StateStore(f"sqlite:///{tmp_path / 'scores.sqlite'}")
    state.create_all()
    series = SqliteTimeSeriesStore(":memory:")
    hall = case_hall()
    h = timedelta(hours=1)
    with state.session() as s:
        s.add_all(
            [
                anomaly(1, "1", NOV + 2 * h),
                anomaly(2, "1", NOV + 3 * h, level="red", decision="upheld"),
                anomaly(3, "1", NOV + 4 * h, decision="overturned"),
                anomaly(4, "2", NOV + 5 * h, kind="bad_rating"),  # counted as 差评
                anomaly(5, "2", NOV + 6 * h, kind="bad_rating", decision="overturned"),
                anomaly(6, None, NOV + 7 * h),  # unattributed
                anomaly(7, "1", NOV - 10 * h),  # October, also in hall time
                off_post(1, "1", NOV - timedelta(minutes=5), NOV + timedelta(minutes=12)),
                off_post(2, "3", NOV + 10 * h, NOV + 10 * h + timedelta(minutes=9)),
                TicketCall(
                    fact_id="f1",
                    hall="h-cases",
                    ticket_id="A1",
                    at=NOV + h,
                    window="1",
                    staff=None,
                    payload={},
                ),
                TicketCall(
                    fact_id="f2",
                    hall="h-cases",
                    ticket_id="A1",
                    at=NOV + 2 * h,
                    window="1",
                    staff=None,
                    payload={},
                ),  # recall: one case
                TicketCall(
                    fact_id="f3",
                    hall="h-cases",
                    ticket_id="A2",
                    at=NOV + h,
                    window="2",
                    staff=None,
                    payload={},
                ),
            ]
        )
    bus = LiveBus()
    ingestor = Ingestor(state, series, {"h-cases": hall}, bus)
    for rid, level in (
        ("r1", RatingLevel.DISSATISFIED),
        ("r2", RatingLevel.VERY_DISSATISFIED),
        ("r3", RatingLevel.SATISFIED),
    ):
        fact = rating_fact(NOV + 5 * timedelta(hours=1), rid, "2", level)
        ingestor.handle(fact_topic(fact.hall, fact.kind), encode(fact))
    yield Stores(state, series, hall)
    series.close()
    state.dispose()


def test_gather_inputs(stores: Stores) -> None:
    period = Period(NOV, NOV + timedelta(days=30))
    got = gather_inputs(
        stores.state, stores.series, stores.hall, period, now=NOV + timedelta(days=40)
    )
    assert got.unattributed_anomalies == 1
    by_window = {i.window: i for i in got.windows}
    assert list(by_window) == ["1", "2", "3"]
    assert by_window["1"] == ScoreInputs(
        "1",
        "tax",
        warnings=1,
        red_cards=1,
        off_post_minutes=12.0,
        appeals_upheld=1,
        appeals_overturned=1,
        cases_handled=1,
    )
    # two 差评 in the series, one overturned on appeal; the satisfied rating is not one
    assert by_window["2"] == ScoreInputs(
        "2", "social", bad_ratings=1, appeals_overturned=1, cases_handled=1
    )
    assert by_window["3"] == ScoreInputs("3", None, off_post_minutes=9.0)
    scores = score_hall(got, MODEL)
    assert [(s.subject, s.score) for s in scores.windows] == [("1", 85.0), ("2", 99.0), ("3", 99.0)]
    assert [(s.subject, s.score) for s in scores.departments] == [("social", 99.0), ("tax", 85.0)]
    assert scores.hall.subject == "h-cases" and scores.hall.score == pytest.approx(94.33)


def test_open_alert_counts_until_now(stores: Stores) -> None:
    with stores.state.session() as s:
        s.add(off_post(9, "2", NOV + timedelta(days=2), None))
    period = Period(NOV, NOV + timedelta(days=30))
    now = NOV + timedelta(days=2, minutes=31)
    got = gather_inputs(stores.state, stores.series, stores.hall, period, now=now)
    assert {i.window: i.off_post_minutes for i in got.windows}["2"] == 31.0


def test_same_data_same_scores_and_digest(stores: Stores) -> None:
    period = Period(NOV, NOV + timedelta(days=30))
    now = NOV + timedelta(days=40)
    runs = [
        score_hall(
            gather_inputs(stores.state, stores.series, stores.hall, period, now=now), ScoringModel()
        )
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
    assert len(runs[0].digest) == 64 and runs[0].digest == runs[1].digest
    other_model = score_hall(runs[0].inputs, ScoringModel(version="v2", per_warning=3))
    assert other_model.digest != runs[0].digest
    inputs = runs[0].inputs
    changed = HallInputs(
        inputs.hall,
        inputs.period,
        (inputs.windows[0], ScoreInputs("2", "social", bad_ratings=2)),
        inputs.unattributed_anomalies,
    )
    assert digest(changed, MODEL) != runs[0].digest


# --- API ---------------------------------------------------------------------------------


@pytest.fixture
def client(stores: Stores) -> Iterator[TestClient]:
    halls = {"h-cases": stores.hall, "h-other": case_hall("h-other")}
    cases = CaseRegister(stores.state, halls)
    services = ApiServices(state=stores.state, halls=halls, cases=cases, series=stores.series)
    with TestClient(signed_in_app(services)) as c:
        yield c


URL = "/api/v1/halls/h-cases/scores"


def test_api_scores(client: TestClient) -> None:
    r = client.get(URL, params={"period": "2026-11"})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["model_version"] == "default-2026.1" and body["model"]["base"] == 100.0
    assert body["since"] == "2026-10-31T16:00:00Z"
    assert [(w["subject"], w["department"], w["score"]) for w in body["windows"]] == [
        ("1", "tax", 85.0),
        ("2", "social", 99.0),
        ("3", None, 99.0),
    ]
    assert body["windows"][0]["breakdown"] == [
        {"item": "warning", "count": 1, "points": 2.0},
        {"item": "red_card", "count": 1, "points": 10.0},
        {"item": "off_post", "count": 2, "points": 2.0},
        {"item": "appeal_upheld", "count": 1, "points": 1.0},
    ]
    assert body["windows"][0]["inputs"]["off_post_minutes"] == 17.0  # month in hall time
    assert [x["subject"] for x in body["departments"]] == ["social", "tax"]
    assert body["hall"]["score"] == pytest.approx(94.33)
    assert body["unattributed_anomalies"] == 1
    again = client.get(URL, params={"period": "2026-11"}).json()
    assert again["digest"] == body["digest"] and again == body
    span = client.get(URL, params={"since": "2026-11-01T00:00:00", "until": "2026-11-01T02:30:00"})
    assert span.status_code == 200
    assert [w["score"] for w in span.json()["windows"]] == [96.0, 100.0, 100.0]


def test_api_errors_and_roles(client: TestClient) -> None:
    assert client.get(URL).status_code == 422
    assert client.get(URL, params={"period": "2026-11", "since": "2026-11-01"}).status_code == 422
    assert client.get(URL, params={"period": "11-2026"}).status_code == 422
    assert client.get(URL, params={"since": "2026-11-02", "until": "2026-11-01"}).status_code == 422
    assert (
        client.get("/api/v1/halls/nowhere/scores", params={"period": "2026-11"}).status_code == 404
    )
    app: Any = client.app
    for role in Role:
        app.dependency_overrides[get_caller] = lambda role=role: Caller(
            "x", role, frozenset({"h-cases"})
        )
        assert client.get(URL, params={"period": "2026-11"}).status_code == 200, role
    other = "/api/v1/halls/h-other/scores"
    assert client.get(other, params={"period": "2026-11"}).status_code == 404  # not their hall
