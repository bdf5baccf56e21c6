"""``hallwatch demo --for S``: the whole chain on embedded defaults gives exactly the
alerts the demo's scripts predict (off-post, 环境差, crowding, a device offline), the
occupancy peaks and entrance flow of its lobby, and exactly the 异常办件 its queue machine
predicts."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from hallwatch.demo.devices_sim import OFFLINE_AFTER_S, expected_device_offline
from hallwatch.demo.lobby import (
    default_lobby_script,
    expected_crowding,
    expected_flow,
    expected_occupancy_peaks,
)
from hallwatch.demo.queue_sim import RETURNING_CASE, TZ, demo_morning
from hallwatch.demo.run import (
    COUNT_EVERY_S,
    CROWDING_AT,
    DEMO_HALL,
    GRACE_S,
    HYGIENE_BAD_AFTER_S,
    HYGIENE_GOOD_AFTER_S,
    OCCUPANCY_INTERVAL_S,
    OFF_POST_AFTER_S,
)
from hallwatch.demo.scene import default_script, expected_hygiene, expected_off_post
from tests.support.queue_oracle import OraclePolicy, expected_anomalies

REPO = Path(__file__).resolve().parents[1]
RUN_S = 60.0


@pytest.mark.integration
def test_demo_for_a_minute_prints_exactly_the_expected_alerts(tmp_path: Path) -> None:
    before = datetime.now(TZ).date()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hallwatch.cli",
            "demo",
            "--for",
            str(RUN_S),
            "--port",
            "0",
            "--workdir",
            str(tmp_path / "demo"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert any("http://127.0.0.1:" in line for line in lines), "the demo prints its page's URL"
    result = json.loads(lines[-1])
    alerts: dict[str, list[dict[str, Any]]] = {}
    for alert in result["alerts"]:
        assert alert["hall"] == DEMO_HALL
        alerts.setdefault(alert["kind"], []).append(alert)
    assert set(alerts) == {"off_post", "hygiene_bad", "crowding", "device_offline"}, result

    expected = expected_off_post(default_script(), RUN_S - 3.0, GRACE_S, OFF_POST_AFTER_S)
    assert [a["post"] for a in alerts["off_post"]] == [e["post"] for e in expected], result
    for alert, exp in zip(alerts["off_post"], expected, strict=True):
        assert_lasted(alert, exp["start_s"], exp["end_s"], exp["tolerance_s"])

    # litter on window 1's counter: one 环境差 from when it was put down until removed
    (dirty,) = expected_hygiene(
        default_script(), RUN_S - 3.0, HYGIENE_BAD_AFTER_S, HYGIENE_GOOD_AFTER_S, look_s=1.0
    )
    assert [a["zone"] for a in alerts["hygiene_bad"]] == [dirty["zone"]]
    removed_s = float(dirty["good_s"]) - HYGIENE_GOOD_AFTER_S  # type: ignore[arg-type]
    assert_lasted(alerts["hygiene_bad"][0], dirty["since_s"], removed_s, dirty["tolerance_s"])

    # the lobby: the waiting area crowded once; its peaks and the entrance flow
    lobby = default_lobby_script()
    (crowd,) = expected_crowding(
        lobby, RUN_S - 3.0, OCCUPANCY_INTERVAL_S, CROWDING_AT, look_s=COUNT_EVERY_S
    )
    assert [a["zone"] for a in alerts["crowding"]] == ["waiting"]
    assert_lasted(alerts["crowding"][0], crowd["start_s"], crowd["end_s"], crowd["tolerance_s"])
    assert result["occupancy"] == expected_occupancy_peaks(lobby, RUN_S - 3.0)
    assert result["flow"] == expected_flow(lobby, RUN_S - 3.0)

    # the kiosk that went silent for 20 s, and only it
    (silent,) = expected_device_offline(RUN_S - 3.0, OFFLINE_AFTER_S)
    assert [a["device"] for a in alerts["device_offline"]] == [silent["device"]], result
    assert alerts["device_offline"][0]["end"] is not None  # it came back
    # changes, summaries, the camera's online fact and the pipeline stats all arrived
    assert result["facts"] >= 12

    # the queue machine's morning: every predicted 异常办件, in order of opening, no other
    predicted = demo_morning(before).predicted
    anomalies = result["anomalies"]
    assert [(a["kind"], a["hall"], a["window"], a["case_no"]) for a in anomalies] == [
        (p.kind, DEMO_HALL, p.window, p.case_no) for p in predicted
    ], anomalies
    yesterday = {before - timedelta(days=1), datetime.now(TZ).date() - timedelta(days=1)}
    for anomaly, p in zip(anomalies, predicted, strict=True):
        opened = datetime.fromisoformat(anomaly["opened"]).astimezone(TZ)
        assert opened.date() in yesterday and opened.time() == p.opened.time(), anomaly
        assert anomaly["level"] in ("warning", "red")


def assert_lasted(alert: dict[str, Any], start_s: object, end_s: object, tolerance: object) -> None:
    """The alert ended, and lasted as long as the script says (within ``tolerance``)."""
    assert alert["end"] is not None and end_s is not None, alert
    lasted = datetime.fromisoformat(alert["end"]) - datetime.fromisoformat(alert["start"])
    expected = float(end_s) - float(start_s)  # type: ignore[arg-type]
    assert abs(lasted.total_seconds() - expected) <= float(tolerance), alert  # type: ignore[arg-type]


def test_demo_morning_predicts_what_the_rule_book_opens() -> None:
    """The simulator's own predictions agree with the independent oracle, and the morning
    has what the demo promises: waits over 30 minutes, a second trip, 差评."""
    morning = demo_morning(date(2026, 11, 3))
    every_day = OraclePolicy(
        salt="demo-salt-0123456789",
        open_weekdays=frozenset(range(7)),
        open_at=time(0),
        close_at=time(23, 59),
        lunch=None,
    )
    oracle = expected_anomalies(morning.messages, every_day)
    assert sorted((a.kind, a.window, a.case_no if a.kind != "wait_over_limit" else None, a.opened)
                  for a in oracle) == sorted(
        (p.kind, p.window, p.case_no, p.opened) for p in morning.predicted
    )  # fmt: skip
    kinds = [p.kind for p in morning.predicted]
    assert 5 <= kinds.count("wait_over_limit") <= 20
    assert {p.window for p in morning.predicted if p.kind == "wait_over_limit"} == {
        "1", "2", "3", "4"
    }  # fmt: skip
    assert [p.case_no for p in morning.predicted if p.kind == "trips_over_promise"] == [
        RETURNING_CASE
    ]
    assert kinds.count("bad_rating") >= 2 and kinds.count("bad_attitude") >= 1
    assert 60 <= morning.tickets <= 120
    assert all(p.opened.date() == date(2026, 11, 2) for p in morning.predicted)
