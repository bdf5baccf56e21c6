"""``hallwatch replay``: facts of a recorded video as JSON lines, timed by the video."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.support.hall_scene import CAMERA, scene_hall, write_short_video

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "deploy" / "examples" / "hall.yaml"


def _replay(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hallwatch.cli", "replay", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_replay_prints_each_change_at_its_video_time(tmp_path: Path) -> None:
    video = write_short_video(tmp_path)
    hall = scene_hall("replay", str(video), mqtt_port=1883, outbox=tmp_path / "o.sqlite")
    config = tmp_path / "hall.yaml"
    with config.open("w") as out:
        YAML(typ="safe").dump(hall.model_dump(mode="json", exclude_none=True), out)

    done = _replay(str(video), "--config", str(config), "--camera", CAMERA)

    assert done.returncode == 0, done.stderr
    facts = [json.loads(line) for line in done.stdout.splitlines()]
    changes = [(f["post"], f["state"]) for f in facts if not f["summary"]]
    assert sorted(changes[:4]) == [(p, "on_post") for p in ("w1", "w2", "w3", "w4")]
    w2 = [f for f in facts if f["post"] == "w2" and not f["summary"]]
    assert [f["state"] for f in w2] == ["on_post", "off_post", "on_post"]
    # the clerk walks off from 3.0 to 4.5 s and is back (seated) at 29.5 s
    assert 3.0 <= w2[1]["since_t"] <= 5.0
    assert w2[1]["t"] - w2[1]["since_t"] >= 2.0  # only after the grace period
    assert 27.5 <= w2[2]["since_t"] <= 30.5
    assert all(f["kind"] == "presence" for f in facts)


@pytest.mark.parametrize(
    ("video", "camera", "message"),
    [
        ("missing.mp4", "cam-hall-east", "no such video"),
        (str(EXAMPLE), "no-such-camera", "no-such-camera"),
    ],
)
def test_replay_reports_a_wrong_camera_or_video_clearly(
    tmp_path: Path, video: str, camera: str, message: str
) -> None:
    done = _replay(str(tmp_path / video), "--config", str(EXAMPLE), "--camera", camera)
    assert done.returncode == 2
    assert done.stderr.startswith("hallwatch replay:") and message in done.stderr
