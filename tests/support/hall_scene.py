"""A short generated hall video and a hall config that watches it, for end-to-end tests."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from hallwatch.config import HallConfig
from hallwatch.demo.scene import Absence, DemoScript, default_script, write_demo_video

CAMERA = "cam1"


def short_script() -> DemoScript:
    """40 s of the demo hall: w2's clerk is away from 3 s to 28 s, everyone else stays."""
    return dataclasses.replace(
        default_script(), duration_s=40.0, absences=[Absence("w2", 3.0, 28.0)]
    )


def write_short_video(folder: Path) -> Path:
    """Render (or reuse) the short scene as H.264 with a 1 s GOP."""
    return write_demo_video(folder / "short-hall.mp4", short_script(), gop_s=1.0)


def scene_hall(
    hall_id: str,
    camera_url: str,
    *,
    mqtt_port: int,
    outbox: Path,
    grace_s: float = 2.0,
    off_post_after_s: float = 10.0,
    summary_interval_s: float = 60.0,
    stale_after_s: float = 3.0,
) -> HallConfig:
    """A hall open around the clock whose one camera is ``camera_url``."""
    script = short_script()
    data: dict[str, Any] = {
        "hall": {"id": hall_id, "name": "测试大厅"},
        "service_hours": {
            "open_weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
            "default": {"open": "00:00", "close": "23:59"},
        },
        "cameras": [
            {
                "id": CAMERA,
                "url": camera_url,
                "width": script.size[0],
                "height": script.size[1],
                "look_interval_s": 0.5,
                "stale_after_s": stale_after_s,
                "max_backoff_s": 2.0,
            }
        ],
        "posts": [
            {
                "id": p.id,
                "name": p.name,
                "kind": "front_desk",
                "window": p.window,
                "camera": CAMERA,
                "polygon": [list(xy) for xy in p.polygon],
            }
            for p in script.posts
        ],
        "thresholds": {
            "presence_grace_s": grace_s,
            "off_post_after_s": off_post_after_s,
            "summary_interval_s": summary_interval_s,
        },
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port},
        "edge": {"outbox_path": str(outbox)},
    }
    return HallConfig.model_validate(data)
