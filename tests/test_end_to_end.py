"""Camera → edge → real Mosquitto → aggregator → alert, with the real detector.

The camera is a generated hall video (people composited from package photos) played in
real time from a file, or served over real RTSP on loopback.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from aggregator.service import AggregatorService
from aggregator.store.state import DeviceStatus
from edge.worker import EdgeWorker
from hallwatch.config import HallConfig
from hallwatch.contract import AlertMessage, AlertState, alerts_topic, parse_alert
from tests.support.api import admin_token
from tests.support.hall_scene import CAMERA, scene_hall, write_short_video
from tests.support.mosquitto import Mosquitto
from tests.support.rtsp import RtspServer, gst_rtsp_available
from tests.support.running import start_aggregator, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hall_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_short_video(tmp_path_factory.mktemp("video"))


class AlertListener:
    """A hall manager's client: collects the alerts of one hall from the broker."""

    def __init__(self, port: int, hall: str) -> None:
        self.alerts: list[AlertMessage] = []
        self._ready = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"manager-{hall}")
        self._client.on_connect = lambda c, *_: (c.subscribe(alerts_topic(hall), 1), None)[1]
        self._client.on_subscribe = lambda *_: self._ready.set()
        self._client.on_message = lambda _c, _u, m: self.alerts.append(parse_alert(m.payload))
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        assert self._ready.wait(10), "alert listener could not subscribe"

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


@pytest.fixture
def aggregator_for(
    tmp_path: Path,
) -> Iterator[Callable[[HallConfig, int], AggregatorService]]:
    services: list[AggregatorService] = []

    def start(hall: HallConfig, port: int) -> AggregatorService:
        services.append(start_aggregator(tmp_path, hall, port))
        return services[-1]

    yield start
    for service in services:
        service.stop()


def test_clerk_leaving_raises_and_return_resolves_an_off_post_alert(
    mosquitto: Mosquitto,
    hall_video: Path,
    tmp_path: Path,
    unique_id: Callable[[str], str],
    aggregator_for: Callable[[HallConfig, int], AggregatorService],
) -> None:
    hall = scene_hall(
        unique_id("e2e"), str(hall_video), mqtt_port=mosquitto.port, outbox=tmp_path / "o.sqlite"
    )
    service = aggregator_for(hall, mosquitto.port)
    listener = AlertListener(mosquitto.port, hall.hall.id)
    edge = EdgeWorker(hall)
    edge.start()
    try:
        # w2 leaves at 3 s (gone by 4.5 s); the alert opens ~10 s later, resolves at ~29.5 s.
        wait_until(
            lambda: any(a.state is AlertState.RESOLVED for a in listener.alerts), 50, "resolve"
        )
    finally:
        edge.stop()
        listener.close()
    opened = [a for a in listener.alerts if a.state is AlertState.OPEN]
    resolved = [a for a in listener.alerts if a.state is AlertState.RESOLVED]
    assert [(a.post, a.window) for a in opened] == [("w2", "2")]
    assert [a.id for a in resolved] == [opened[0].id]
    assert resolved[0].end is not None
    away = (resolved[0].end - resolved[0].start).total_seconds()
    assert 22 <= away <= 28, f"w2 was away ~25 s in the video, the alert says {away:.1f} s"

    posts = {p["id"]: p for p in _get_json(service, f"/api/v1/halls/{hall.hall.id}/posts")}
    assert {pid: posts[pid]["state"] for pid in ("w1", "w3", "w4")} == dict.fromkeys(
        ("w1", "w3", "w4"), "on_post"
    )


def _get_json(service: AggregatorService, path: str) -> Any:
    import httpx

    response = httpx.get(service.url + path, headers=admin_token(service), timeout=5)
    response.raise_for_status()
    return response.json()


def _camera_state(service: AggregatorService, hall: str) -> str | None:
    with service.state.session() as session:
        row = session.get(DeviceStatus, (hall, CAMERA))
        return None if row is None else str(row.state)


def test_rtsp_camera_drop_is_reported_offline_and_reconnects(
    mosquitto: Mosquitto,
    hall_video: Path,
    tmp_path: Path,
    unique_id: Callable[[str], str],
    aggregator_for: Callable[[HallConfig, int], AggregatorService],
) -> None:
    ok, why = gst_rtsp_available()
    if not ok:
        pytest.skip(f"GStreamer RTSP server unavailable: {why}")
    with RtspServer({"/hall": str(hall_video)}) as rtsp:
        hall = scene_hall(
            unique_id("rtsp"),
            rtsp.url("/hall"),
            mqtt_port=mosquitto.port,
            outbox=tmp_path / "o.sqlite",
            stale_after_s=6.0,
        )
        service = aggregator_for(hall, mosquitto.port)
        edge = EdgeWorker(hall)
        edge.start()
        try:
            wait_until(lambda: _camera_state(service, hall.hall.id) == "online", 20, "online")
            wait_until(
                lambda: any(
                    p["state"] == "on_post"
                    for p in _get_json(service, f"/api/v1/halls/{hall.hall.id}/posts")
                ),
                20,
                "presence facts from the RTSP stream",
            )
            rtsp.stop()
            wait_until(lambda: _camera_state(service, hall.hall.id) == "offline", 20, "offline")
            rtsp.start()
            wait_until(lambda: _camera_state(service, hall.hall.id) == "online", 30, "back online")
        finally:
            edge.stop()
    points = service.series.query(
        "device_status",
        hall=hall.hall.id,
        start=datetime(2000, 1, 1, tzinfo=UTC),
        end=datetime(2100, 1, 1, tzinfo=UTC),
    )
    assert [p.fields["online"] for p in sorted(points, key=lambda p: p.time)] == [1, 0, 1]
