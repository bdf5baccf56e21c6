"""Shared pytest fixtures.

- ``mosquitto``: a real Mosquitto broker on a free loopback port, one per test session
  (tests use unique hall ids / topics; a test that restarts a broker starts its own
  :class:`tests.support.mosquitto.Mosquitto`).
- ``make_hall``: builds a valid :class:`~hallwatch.config.models.HallConfig` for tests.
- ``unique_id``: a fresh id matching the contract's id pattern.

Aggregators the tests start write their report files to a temporary folder
(``HALLWATCH_REPORT_DIR``), never into the checkout.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hallwatch.config.models import HallConfig
from hallwatch.contract import new_id
from tests.support.mosquitto import Mosquitto, find_mosquitto

_counter = itertools.count()


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("HALLWATCH_REPORT_DIR", tempfile.mkdtemp(prefix="hallwatch-reports-"))


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[Mosquitto]:
    """A running Mosquitto broker shared by the session's tests."""
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed")
    broker = Mosquitto()
    broker.start()
    try:
        yield broker
    finally:
        broker.cleanup()


@pytest.fixture
def unique_id() -> Callable[[str], str]:
    """Returns ``f(prefix)`` giving ids unique within and across test runs."""

    def make(prefix: str = "t") -> str:
        return f"{prefix}-{next(_counter)}-{new_id()[-8:].lower()}"

    return make


def build_hall(
    hall_id: str = "h1",
    *,
    posts: list[dict[str, Any]] | None = None,
    cameras: list[str] | None = None,
    off_post_after_s: float = 600,
    lunch_closed: bool = True,
    service_hours: dict[str, Any] | None = None,
    name: str = "测试大厅",
    timezone: str = "Asia/Shanghai",
) -> HallConfig:
    """A hall config: Mon–Fri 09:00–17:00, lunch 12:00–13:30, posts w1 (window 1) and w2
    (window 2) on camera c1 unless given."""
    cams = cameras or ["c1"]
    square = [[10, 10], [200, 10], [200, 200], [10, 200]]
    if posts is None:
        posts = [
            {"id": "w1", "name": "1号窗口", "kind": "front_desk", "window": "1", "camera": "c1"},
            {"id": "w2", "name": "2号窗口", "kind": "front_desk", "window": "2", "camera": "c1"},
        ]
    hours = service_hours or {
        "default": {
            "open": "09:00",
            "close": "17:00",
            "lunch_start": "12:00",
            "lunch_end": "13:30",
            "lunch_closed": lunch_closed,
        }
    }
    return HallConfig.model_validate(
        {
            "hall": {"id": hall_id, "name": name, "timezone": timezone},
            "service_hours": hours,
            "cameras": [
                {"id": c, "url": f"rtsp://127.0.0.1:8554/{c}", "width": 640, "height": 480}
                for c in cams
            ],
            "posts": [{"polygon": square, **p} for p in posts],
            "thresholds": {"off_post_after_s": off_post_after_s, "presence_grace_s": 10},
        }
    )


@pytest.fixture
def make_hall() -> Callable[..., HallConfig]:
    """The :func:`build_hall` factory."""
    return build_hall
