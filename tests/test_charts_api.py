"""The dashboard's chart route: bucketed series from the time-series store (issue 6).

Facts are mapped to points with the store's own ``facts_to_points`` and written to a real
SQLite series store; the app is the real one with a fixed caller. Times are Shanghai
wall-clock times on Monday 2026-11-02 (the hall serves 09:00–17:00, lunch 12:00–13:30
closed); presence summaries come every minute (the default ``summary_interval_s``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from aggregator.api.deps import ApiServices, Caller, Role, get_caller
from aggregator.store.state import StateStore
from aggregator.store.timeseries import SqliteTimeSeriesStore, facts_to_points
from aggregator.web.chart_series import Buckets
from hallwatch.contract import (
    Fact,
    OccupancyBody,
    OccupancyFact,
    PostState,
    PresenceBody,
    PresenceFact,
    QueueBody,
    QueueFact,
    RatingBody,
    RatingFact,
    ServiceQueue,
    TicketBody,
    TicketEventType,
    TicketFact,
    WaitBody,
    WaitFact,
)
from tests.support.api import signed_in_app
from tests.test_zone_alerts import env_hall

SH = ZoneInfo("Asia/Shanghai")
HALL, OTHER = "h-charts", "h-charts-b"
SOURCE = "edge-h-charts"
DAY = {"since": "2026-11-02", "until": "2026-11-03"}


def t(hhmm: str) -> datetime:
    """``"10:00"`` Shanghai on Monday 2026-11-02 → aware UTC."""
    h, m = (int(p) for p in hhmm.split(":"))
    return datetime(2026, 11, 2, h, m, tzinfo=SH).astimezone(UTC)


def presence(post: str, state: PostState, at: datetime, *, summary: bool = False) -> Fact:
    body = PresenceBody(camera="c1", post=post, window=post[-1], state=state, since=at,
                        summary=summary)  # fmt: skip
    return PresenceFact(hall=HALL, source=SOURCE, ts=at, body=body)


def absence(post: str, start: str, back: str | None) -> list[Fact]:
    """Off post from ``start``, a summary every minute, on post again at ``back``."""
    begin = t(start)
    end = t(back) if back else begin
    facts = [presence(post, PostState.OFF_POST, begin)]
    at = begin + timedelta(minutes=1)
    while at < end:
        facts.append(presence(post, PostState.OFF_POST, at, summary=True))
        at += timedelta(minutes=1)
    if back:
        facts.append(presence(post, PostState.ON_POST, end))
    return facts


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    state = StateStore(f"sqlite:///{tmp_path / 'state.sqlite'}")
    state.create_all()
    series = SqliteTimeSeriesStore(tmp_path / "series.sqlite")
    halls = {HALL: env_hall(HALL), OTHER: env_hall(OTHER)}
    app = signed_in_app(ApiServices(state=state, halls=halls, series=series))
    with TestClient(app) as c:
        c.app.state.series = series  # type: ignore[attr-defined]
        yield c
    series.close()
    state.dispose()


def write(client: TestClient, facts: list[Fact]) -> None:
    series: SqliteTimeSeriesStore = client.app.state.series  # type: ignore[attr-defined]
    series.write([p for f in facts for p in facts_to_points(f)])


def chart(client: TestClient, name: str, **params: str) -> dict[str, Any]:
    r = client.get(f"/api/v1/halls/{HALL}/charts/{name}", params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def values(body: dict[str, Any], key: str, subject: str | None = None) -> list[float | None]:
    (found,) = [s for s in body["series"] if s["key"] == key and s["subject"] == subject]
    return list(found["values"])


def at_hour(body: dict[str, Any], hour: int) -> int:
    """Index of the bucket starting at ``hour``:00 hall-local."""
    starts = [datetime.fromisoformat(b) for b in body["buckets"]]
    return next(i for i, s in enumerate(starts) if s.astimezone(SH).hour == hour)


def test_a_day_is_24_hall_local_hours(client: TestClient) -> None:
    body = chart(client, "waits", **DAY)
    assert len(body["buckets"]) == 24
    assert body["buckets"][0] == "2026-11-02T00:00:00+08:00"
    assert body["since"] == "2026-11-01T16:00:00Z" and body["until"] == "2026-11-02T16:00:00Z"
    assert (body["timezone"], body["bucket"], body["limit_min"]) == ("Asia/Shanghai", "hour", 30)
    quarter = chart(client, "waits", since=t("10:00").isoformat(), until=t("11:00").isoformat(),
                    bucket="15min")  # fmt: skip
    assert [b[11:16] for b in quarter["buckets"]] == ["10:00", "10:15", "10:30", "10:45"]


def test_waits_per_hour(client: TestClient) -> None:
    gauges = [
        ("10:05", [("A", 3, 600), ("B", 2, 1200)]),
        ("10:20", [("A", 1, 300), ("B", 0, 0)]),
        ("11:05", [("A", 4, 1500), ("B", 1, 60)]),
    ]
    facts: list[Fact] = [
        QueueFact(hall=HALL, source=SOURCE, ts=t(hhmm), body=QueueBody(services=[
            ServiceQueue(service=s, waiting=w, longest_wait_s=lw) for s, w, lw in rows]))
        for hhmm, rows in gauges
    ]  # fmt: skip
    for i, (hhmm, event, wait_s) in enumerate(
        [("10:10", "called", 300), ("10:12", "called", 900), ("10:13", "recalled", 5000)]
    ):
        ticket = TicketBody(event=TicketEventType(event), ticket=f"A{i:03d}",
                            ticket_id=f"20261102-A{i:03d}", at=t(hhmm), service="A",
                            window="1", wait_s=wait_s)  # fmt: skip
        facts.append(TicketFact(hall=HALL, source=SOURCE, ts=t(hhmm), body=ticket))
    over = WaitBody(ticket="A009", ticket_id="20261102-A009", service="A", leg=1,
                    clock_start=t("10:10"), waited_s=1800, limit_s=1800)  # fmt: skip
    facts.append(WaitFact(hall=HALL, source=SOURCE, ts=t("10:40"), body=over))
    write(client, facts)
    body = chart(client, "waits", **DAY)
    ten, eleven, nine = at_hour(body, 10), at_hour(body, 11), at_hour(body, 9)
    assert values(body, "longest_wait_min")[ten] == 20.0
    assert values(body, "longest_wait_min")[eleven] == 25.0
    assert values(body, "longest_wait_min")[nine] is None
    assert values(body, "waiting_peak")[ten] == 5 and values(body, "waiting_peak")[eleven] == 5
    assert values(body, "mean_wait_min")[ten] == 10.0  # (5 + 15) / 2: first calls only
    assert values(body, "over_limit")[ten] == 1 and values(body, "over_limit")[eleven] == 0
    only_b = chart(client, "waits", service="B", **DAY)
    assert values(only_b, "longest_wait_min")[eleven] == 1.0
    assert values(only_b, "mean_wait_min")[ten] is None


def test_off_post_minutes_count_service_time_only(client: TestClient) -> None:
    facts = [presence("w1", PostState.ON_POST, t("09:50"))]
    facts += absence("w1", "10:00", "10:30")  # 30 min
    facts += absence("w2", "11:50", "13:40")  # 10 min before lunch, 10 after
    facts += absence("w1", "14:00", None)  # then nothing: the edge went quiet
    write(client, facts)
    body = chart(client, "off_post", **DAY)
    w1, w2 = values(body, "off_post_min", "w1"), values(body, "off_post_min", "w2")
    hall = values(body, "off_post_min")
    assert w1[at_hour(body, 10)] == 30.0 and w1[at_hour(body, 9)] == 0.0
    assert (w2[at_hour(body, 11)], w2[at_hour(body, 12)], w2[at_hour(body, 13)]) == (10, 0, 10)
    assert w1[at_hour(body, 14)] == pytest.approx(3.0, abs=0.1)  # 3 summary periods, then unknown
    assert hall[at_hour(body, 13)] == 10.0 and sum(v or 0 for v in hall) == pytest.approx(53, 0.01)
    names = {s["subject"]: s["name"] for s in body["series"]}
    assert names == {None: "", "w1": "1号窗口", "w2": "2号窗口"}
    # a range starting inside an absence counts from its start (the run began earlier)
    part = chart(client, "off_post", since=t("10:15").isoformat(), until=t("11:00").isoformat())
    assert values(part, "off_post_min", "w1") == [15.0]


def test_occupancy_per_counted_zone(client: TestClient) -> None:
    facts: list[Fact] = []
    for hhmm, count in [("10:00", 4), ("10:01", 9), ("10:30", 2), ("11:10", 12)]:
        counted = OccupancyBody(camera="c1", zone="waiting", start=t(hhmm), interval_s=60,
                                count=count, peak=count + 1, mean=float(count), looks=12,
                                crowded=count >= 10)  # fmt: skip
        facts.append(OccupancyFact(hall=HALL, source=SOURCE, ts=t(hhmm), body=counted))
    write(client, facts)
    body = chart(client, "occupancy", **DAY)
    assert [s["subject"] for s in body["series"]] == ["waiting", "waiting", "door", "door"]
    peak, mean = values(body, "peak", "waiting"), values(body, "mean", "waiting")
    assert (peak[at_hour(body, 10)], peak[at_hour(body, 11)], peak[at_hour(body, 9)]) == (
        10, 13, None)  # fmt: skip
    assert mean[at_hour(body, 10)] == 5.0
    assert body["series"][0]["name"] == "候办区" and body["series"][0]["unit"] == "people"


def test_ratings_first_evaluations(client: TestClient) -> None:
    levels = [("10:00", "very_satisfied", 1), ("10:10", "dissatisfied", 1),
              ("10:20", "satisfied", 1), ("10:30", "very_satisfied", 2)]  # fmt: skip
    facts: list[Fact] = []
    for i, (hhmm, level, evaluation) in enumerate(levels):
        rating = RatingBody.model_validate({"rating_id": f"r{i}", "level": level,
                                            "channel": "evaluator", "window": "1",
                                            "evaluation": evaluation, "at": t(hhmm)})  # fmt: skip
        facts.append(RatingFact(hall=HALL, source=SOURCE, ts=t(hhmm), body=rating))
    write(client, facts)
    body = chart(client, "ratings", since="2026-11-01", until="2026-11-03", bucket="day")
    assert body["buckets"] == ["2026-11-01T00:00:00+08:00", "2026-11-02T00:00:00+08:00"]
    assert values(body, "ratings") == [0, 3] and values(body, "bad") == [0, 1]
    assert values(body, "mean_score") == [None, pytest.approx((5 + 2 + 4) / 3, abs=0.01)]


def test_default_is_today_in_the_hall(client: TestClient) -> None:
    body = chart(client, "off_post")
    starts = [datetime.fromisoformat(b) for b in body["buckets"]]
    today = datetime.now(SH).date()
    assert starts[0] == datetime(today.year, today.month, today.day, tzinfo=SH)
    assert len(starts) in (23, 24, 25) and all(s.date() == today for s in starts)
    now = datetime.now(SH)
    begun = [v for s, v in zip(starts, values(body, "off_post_min"), strict=True) if s <= now]
    to_come = [v for s, v in zip(starts, values(body, "off_post_min"), strict=True) if s > now]
    assert begun and set(begun) == {0.0}  # nobody was off post: zero, not "no data"
    assert set(to_come) <= {None}  # hours still to come: no data yet


def test_buckets_follow_daylight_saving_time() -> None:
    berlin = ZoneInfo("Europe/Berlin")  # 2026-10-25: 03:00 CEST → 02:00 CET, a 25-hour day
    start = datetime(2026, 10, 25, tzinfo=berlin)
    buckets = Buckets.cover(start, start.astimezone(UTC) + timedelta(hours=25), berlin, "hour")
    assert len(buckets) == 25
    assert [b.strftime("%H%z") for b in buckets.starts[2:4]] == ["02+0200", "02+0100"]


def test_bad_requests(client: TestClient) -> None:
    base = f"/api/v1/halls/{HALL}/charts"
    assert client.get(f"{base}/nonsense").status_code == 422
    assert client.get(f"{base}/waits", params={"since": "2026-11-03", "until": "2026-11-02"}
                      ).status_code == 422  # fmt: skip
    too_long = {"since": "2026-01-01", "until": "2026-03-01", "bucket": "hour"}
    r = client.get(f"{base}/waits", params=too_long)
    assert r.status_code == 422 and "too long" in r.json()["detail"]
    assert client.get(f"{base}/waits", params={**too_long, "bucket": "day"}).status_code == 200
    for since in ("yesterday", "1999-12-31", "0001-01-01T00:00:00+23:00", "2026-02-30"):
        r = client.get(f"{base}/waits", params={"since": since})
        assert r.status_code == 422 and "since" in r.json()["detail"], since
    r = client.get(f"{base}/off_post", params={"until": "2099-12-31", "bucket": "15min"})
    assert r.status_code == 422  # refused before 2.6 million buckets are made
    assert client.get("/api/v1/halls/nowhere/charts/waits").status_code == 404


def test_a_hall_manager_sees_only_their_hall(client: TestClient) -> None:
    manager = Caller(name="wang", role=Role.HALL_MANAGER, halls=frozenset({HALL}))
    client.app.dependency_overrides[get_caller] = lambda: manager  # type: ignore[attr-defined]
    assert client.get(f"/api/v1/halls/{HALL}/charts/ratings").status_code == 200
    assert client.get(f"/api/v1/halls/{OTHER}/charts/ratings").status_code == 404
    auditor = Caller(name="li", role=Role.AUDITOR)
    client.app.dependency_overrides[get_caller] = lambda: auditor  # type: ignore[attr-defined]
    assert client.get(f"/api/v1/halls/{OTHER}/charts/off_post").status_code == 200
