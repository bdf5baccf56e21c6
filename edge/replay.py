"""``hallwatch replay``: the edge pipeline over a recorded video, as fast as it can go.

Frames are sampled by the video's own timestamps at the camera's look interval, and every
fact the live edge would have sent is printed as one JSON line::

    {"kind": "presence", "post": "w1", "state": "off_post", "t": 12.4, "since_t": 2.0, ...}

``t`` is seconds into the video. Auditors use it to check what would have been flagged;
``benchmarks/`` use it to measure detection accuracy on real footage.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import TextIO

from edge.analysis import CameraAnalysis
from edge.sources import iter_file_frames
from edge.worker import detector_for
from hallwatch.config import ConfigError, HallConfig, read_hall_config
from hallwatch.contract import Fact, PresenceFact

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""Replayed frames are stamped from the epoch, so wall time minus epoch is video time."""


def replay_facts(video: Path, config: HallConfig, camera_id: str) -> Iterator[dict[str, object]]:
    """Yield each fact of the replay as a JSON-ready dict with ``t`` in video seconds.

    Raises:
        KeyError: ``camera_id`` is not a camera of the hall.
        FileNotFoundError: The video does not exist.
    """
    if not video.is_file():
        raise FileNotFoundError(f"no such video: {video}")
    camera = config.camera(camera_id)
    analysis = CameraAnalysis(config, camera, detector_for(config), source=config.edge.source)
    for frame in iter_file_frames(
        video, camera.id, every_s=camera.look_interval_s, start_wall=EPOCH
    ):
        for fact in analysis.look(frame):
            yield _replayed(fact)


def _replayed(fact: Fact) -> dict[str, object]:
    """A fact as replay prints it: video seconds instead of wall times, no snapshot bytes."""
    t = round((fact.ts - EPOCH).total_seconds(), 3)
    if isinstance(fact, PresenceFact):
        body = fact.body
        return {
            "kind": fact.kind.value,
            "post": body.post,
            "state": body.state.value,
            "t": t,
            "since_t": round((body.since - EPOCH).total_seconds(), 3),
            "summary": body.summary,
            "score": body.score,
        }
    out: dict[str, object] = {"kind": fact.kind.value, "t": t}
    for key, value in fact.body:
        if key == "evidence":
            out["evidence"] = value is not None
        elif isinstance(value, datetime):
            out[f"{key}_t"] = round((value - EPOCH).total_seconds(), 3)
        else:
            out[key] = value.value if isinstance(value, Enum) else value
    return out


def replay_to_stdout(
    video: Path, config_path: Path, camera_id: str, out: TextIO = sys.stdout
) -> int:
    """The ``hallwatch replay`` command: print facts as JSON lines; return the exit code."""
    try:
        # replay opens no camera and no broker: their credentials need not be set
        config, _warnings = read_hall_config(config_path, require_env=False)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        for fact in replay_facts(video, config, camera_id):
            print(json.dumps(fact, ensure_ascii=False), file=out, flush=True)
    except (KeyError, FileNotFoundError) as exc:
        print(f"hallwatch replay: {exc}", file=sys.stderr)
        return 2
    return 0
