"""``hallwatch demo --for S``: the whole chain on embedded defaults gives exactly the
alerts the demo's script predicts."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from hallwatch.demo.run import DEMO_HALL, GRACE_S, OFF_POST_AFTER_S
from hallwatch.demo.scene import default_script, expected_off_post

REPO = Path(__file__).resolve().parents[1]
RUN_S = 60.0


@pytest.mark.integration
def test_demo_for_a_minute_prints_exactly_the_expected_alerts(tmp_path: Path) -> None:
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
