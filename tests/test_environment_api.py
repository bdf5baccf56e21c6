"""Zones, occupancy and flow through the API (issue 4): live zone state, peak and mean per
zone over a range, in/out sums per hall-local hour and day with totals.

Facts go through the real ingestor into real SQLite stores; the app reads the same stores.
The hall is in Asia/Shanghai: 07:30 on the 3rd there is 23:30 UTC on the 2nd, so a flow
summed by UTC day would land in the wrong day.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aggregator.api.deps import ApiServices, Caller, Role, get_caller
from hallwatch.contract import FlowBody, FlowFact, HygieneMethod
from tests.support.api import signed_in_app
from tests.test_zone_alerts import BAD, HALL, SOURCE, Harness, hygiene, occupancy, snapshot, t


@dataclass
class Api:
    h: Harness
    client: TestClient

    def get(self, suffix: str, **params: Any) -> Any:
        r = self.client.get(f"/api/v1/halls/{HALL}/{suffix}", params=params)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    h = Harness(tmp_path)
    app = signed_in_app(ApiServices(state=h.state, halls=h.halls, series=h.series))
    with TestClient(app) as client:
        yield Api(h, client)
    h.close()


def flow(start: datetime, in_count: int, out_count: int, zone: str = "door") -> FlowFact:
    body = FlowBody(camera="c1", zone=zone, start=start, interval_s=300, in_count=in_count,
                    out_count=out_count)  # fmt: skip
    return FlowFact(hall=HALL, source=SOURCE, ts=start, body=body)


def iso(at: datetime) -> str:
    return at.isoformat()


def test_zones_show_hygiene_and_latest_occupancy(api: Api) -> None:
    zones = {z["id"]: z for z in api.get("zones")}
    assert list(zones) == ["w1-public", "waiting", "door"]
    assert zones["w1-public"]["hygiene"] is None and zones["waiting"]["occupancy"] is None
    api.h.feed(hygiene(BAD, t("10:00"), score=0.2, evidence=snapshot(t("10:05"))))
    api.h.feed(occupancy(t("10:00"), 12, peak=14))
    zones = {z["id"]: z for z in api.get("zones")}
    (hyg_alert,) = [a for a in api.h.alerts() if a.kind == "hygiene_bad"]
    (crowd_alert,) = [a for a in api.h.alerts() if a.kind == "crowding"]
    w1 = zones["w1-public"]
    assert (w1["kind"], w1["window"], w1["grades_hygiene"], w1["counts_people"]) == (
        "window_public", "1", True, False,
    )  # fmt: skip
    assert w1["hygiene"] == {
        "state": "bad",
        "since": "2026-11-02T02:00:00Z",
        "score": 0.2,
        "method": HygieneMethod.REFERENCE.value,
    }
    assert (w1["hygiene_alert"], w1["crowding_alert"]) == (hyg_alert.id, None)
    waiting = zones["waiting"]
    assert (waiting["crowding_at"], waiting["crowding_alert"]) == (10, crowd_alert.id)
    assert waiting["occupancy"] == {
        "count": 12,
        "peak": 14,
        "crowded": True,
        "at": "2026-11-02T02:01:00Z",
        "crowded_since": "2026-11-02T02:00:00Z",
    }
    assert zones["door"]["hygiene"] is None and zones["door"]["counts_people"] is True


def test_occupancy_peak_and_mean_over_two_hours(api: Api) -> None:
    for start, count, peak, mean in [
        ("10:58", 4, 6, 4.5),
        ("10:59", 12, 14, 11.0),
        ("11:00", 8, 9, 8.0),
        ("11:30", 2, 3, 2.5),
    ]:
        api.h.feed(occupancy(t(start), count, peak=peak, mean=mean))
    api.h.feed(occupancy(t("11:00"), 3, zone="elsewhere"))  # a zone the config does not list
    both = api.get("occupancy", since=iso(t("10:00")), until=iso(t("12:00")))
    zones = {z["zone"]: z for z in both["zones"]}
    assert list(zones) == ["waiting", "door", "elsewhere"]
    assert zones["waiting"] == {
        "zone": "waiting",
        "name": "候办区",
        "reports": 4,
        "peak": 14,
        "mean": 6.5,
        "crowded_reports": 1,
    }
    assert (zones["door"]["reports"], zones["door"]["peak"], zones["door"]["mean"]) == (
        0,
        None,
        None,
    )
    assert (zones["elsewhere"]["name"], zones["elsewhere"]["peak"]) == ("elsewhere", 3)
    # an interval is reported at its end: 10:58–10:59 is the only one ending before 11:00
    first = api.get("occupancy", since=iso(t("10:00")), until=iso(t("11:00")))
    (waiting,) = [z for z in first["zones"] if z["zone"] == "waiting"]
    assert (waiting["reports"], waiting["peak"], waiting["mean"]) == (1, 6, 4.5)
    assert (first["since"], first["until"]) == ("2026-11-02T02:00:00Z", "2026-11-02T03:00:00Z")


FLOWS = [  # (day, hh:mm local, in, out, zone)
    (2, "10:50", 3, 1, "door"),
    (2, "10:55", 2, 0, "door"),
    (2, "11:00", 4, 2, "door"),
    (2, "11:55", 1, 1, "door"),  # ends at 12:00: still the 11:00 hour
    (2, "11:00", 1, 1, "side"),  # an entrance the config does not list
    (2, "23:55", 5, 0, "door"),  # ends on the 3rd: still the 2nd
    (3, "07:30", 6, 3, "door"),  # 23:30 UTC on the 2nd: the 3rd in the hall
]


@pytest.fixture
def flows(api: Api) -> Api:
    for day, hhmm, n_in, n_out, zone in FLOWS:
        api.h.feed(flow(t(hhmm, day), n_in, n_out, zone))
    return api


def test_flow_per_hour_over_two_hours(flows: Api) -> None:
    out = flows.get("flow", bucket="hour", since=iso(t("10:00")), until=iso(t("12:00")))
    assert [(b["start"], b["in_count"], b["out_count"], b["reports"]) for b in out["buckets"]] == [
        ("2026-11-02T10:00:00+08:00", 5, 1, 2),
        ("2026-11-02T11:00:00+08:00", 6, 4, 3),
    ]
    assert (out["in_count"], out["out_count"], out["timezone"]) == (11, 5, "Asia/Shanghai")
    assert out["zones"] == [
        {"zone": "door", "name": "东门", "in_count": 10, "out_count": 4},
        {"zone": "side", "name": "side", "in_count": 1, "out_count": 1},
    ]


def test_flow_per_day_over_two_days_in_the_halls_timezone(flows: Api) -> None:
    out = flows.get("flow", bucket="day", since=iso(t("00:00")), until=iso(t("00:00", day=4)))
    assert [(b["start"], b["in_count"], b["out_count"], b["reports"]) for b in out["buckets"]] == [
        ("2026-11-02T00:00:00+08:00", 16, 5, 6),
        ("2026-11-03T00:00:00+08:00", 6, 3, 1),
    ]
    assert (out["in_count"], out["out_count"]) == (22, 8)
    assert {z["zone"]: (z["in_count"], z["out_count"]) for z in out["zones"]} == {
        "door": (21, 7),
        "side": (1, 1),
    }
    # hours with no report are listed, with reports 0
    hours = flows.get("flow", since=iso(t("09:00")), until=iso(t("12:00")))["buckets"]
    assert [(b["start"][11:16], b["reports"]) for b in hours] == [
        ("09:00", 0),
        ("10:00", 2),
        ("11:00", 3),
    ]


def test_range_errors_and_scoping(flows: Api) -> None:
    url = f"/api/v1/halls/{HALL}/flow"
    c = flows.client
    assert (
        c.get(url, params={"since": iso(t("12:00")), "until": iso(t("10:00"))}).status_code == 422
    )
    long_hours = {
        "bucket": "hour",
        "since": iso(t("10:00")),
        "until": iso(t("10:00") + timedelta(days=32)),
    }
    r = c.get(url, params=long_hours)
    assert r.status_code == 422 and "at most 31 days" in r.json()["detail"]
    assert c.get(url, params={**long_hours, "bucket": "day"}).status_code == 200
    assert c.get(url, params={"bucket": "week"}).status_code == 422
    # defaults: today (hall-local) until now
    today = c.get(url).json()
    assert today["since"].endswith("16:00:00Z")  # midnight in Shanghai
    outsider = Caller(name="x", role=Role.AUDITOR, halls=frozenset({"h-elsewhere"}))
    c.app.dependency_overrides[get_caller] = lambda: outsider  # type: ignore[attr-defined]
    for suffix in ("zones", "occupancy", "flow"):
        r = c.get(f"/api/v1/halls/{HALL}/{suffix}")
        assert (r.status_code, r.json()["detail"]) == (404, f"unknown hall {HALL!r}")
    auditor = Caller(name="y", role=Role.AUDITOR)
    c.app.dependency_overrides[get_caller] = lambda: auditor  # type: ignore[attr-defined]
    assert c.get(f"/api/v1/halls/{HALL}/zones").status_code == 200  # counts: every role


def test_without_a_series_store_the_ranges_are_503(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    try:
        with TestClient(signed_in_app(ApiServices(state=h.state, halls=h.halls))) as client:
            r = client.get(f"/api/v1/halls/{HALL}/flow")
            assert r.status_code == 503 and "time-series" in r.json()["detail"]
            assert client.get(f"/api/v1/halls/{HALL}/zones").status_code == 200
    finally:
        h.close()
