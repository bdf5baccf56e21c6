"""``hallwatch demo --for S``: the whole chain on embedded defaults gives exactly the
alerts the demo's script predicts, and exactly the 异常办件 its queue machine predicts."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest

from hallwatch.demo.queue_sim import RETURNING_CASE, TZ, demo_morning
from hallwatch.demo.run import DEMO_HALL, GRACE_S, OFF_POST_AFTER_S
from hallwatch.demo.scene import default_script, expected_off_post
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
    expected = expected_off_post(default_script(), RUN_S - 3.0, GRACE_S, OFF_POST_AFTER_S)
    assert [(a["kind"], a["hall"], a["post"]) for a in result["alerts"]] == [
        ("off_post", DEMO_HALL, e["post"]) for e in expected
    ], result
    for alert, exp in zip(result["alerts"], expected, strict=True):
        assert alert["end"] is not None and exp["end_s"] is not None
        away = datetime.fromisoformat(alert["end"]) - datetime.fromisoformat(alert["start"])
        expected_away = float(exp["end_s"]) - float(exp["start_s"])  # type: ignore[arg-type]
        assert abs(away.total_seconds() - expected_away) <= float(exp["tolerance_s"])  # type: ignore[arg-type]
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
