"""``hallwatch demo``: the whole chain in one process, with no servers installed.

A generated demo-hall video plays as the camera (looping, at its own pace); the edge worker
watches its four windows with the real person detector and publishes facts to an embedded
MQTT broker (amqtt); the aggregator ingests them into SQLite, applies the off-post rule and
serves the live page. The demo's thresholds are short so an off-post alert comes within the
first minute.

The hall also has a queue machine and evaluators (:mod:`hallwatch.demo.queue_sim`): once
the edge listens, yesterday morning's tickets and ratings are replayed on the broker in
about 15 seconds, and the 异常办件 they cause (waits over 30 minutes, a second trip, 差评)
open in the aggregator's register.

And the hall's environment: a cup and a leaflet are left on window 1's counter for 37 s
(环境差 after 12 s), a second camera sees the lobby — a waiting area whose crowd grows
past its crowding threshold and shrinks again, and an entrance people walk in and out of
— and a self-service kiosk stops sending heartbeats for 20 s (设备离线).
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aggregator.cases.models import Anomaly
from aggregator.service import AggregatorService
from aggregator.settings import AggregatorSettings
from aggregator.store.state import Alert, SeenFact
from aggregator.store.timeseries import MEASUREMENT_FLOW, MEASUREMENT_OCCUPANCY
from edge.worker import EdgeWorker
from hallwatch.broker import EmbeddedBroker
from hallwatch.config import HallConfig
from hallwatch.demo.devices_sim import HeartbeatPublisher, demo_devices
from hallwatch.demo.hall import hall_layout
from hallwatch.demo.litter import public_area_polygon
from hallwatch.demo.lobby import (
    LOBBY_CAMERA,
    LobbyScript,
    default_lobby_script,
    lobby_zones,
    write_lobby_video,
)
from hallwatch.demo.queue_sim import DEPARTMENTS, SERVICES, MorningPublisher, demo_morning
from hallwatch.demo.scene import DemoScript, default_script, write_demo_video

logger = logging.getLogger(__name__)

DEMO_HALL = "demo-hall"
DEMO_USER = "demo"
DEMO_PASSWORD = "demo"  # the demo only: see _demo_user
DEMO_CAMERA = "hall-cam"
GRACE_S = 3.0
OFF_POST_AFTER_S = 15.0
QUEUE_TOPIC = "devices/{hall}/queue"
EVALUATOR_TOPIC = "devices/{hall}/evaluators"
DEMO_SALT = "hallwatch-demo-salt-not-a-secret"
"""Applicant-key salt of the demo only; a real hall keeps its salt in the environment."""
LOBBY_LOOK_S = 0.4
"""The lobby camera's look interval: a walker is seen several times crossing the door."""
CROWDING_AT = 6
OCCUPANCY_INTERVAL_S = 5.0
COUNT_EVERY_S = 1.0
FLOW_INTERVAL_S = 10.0
HYGIENE_BAD_AFTER_S = 12.0
HYGIENE_GOOD_AFTER_S = 5.0
HYGIENE_LEARN_S = 4.0
"""Short: the litter is put down 8 s into the video, after the clean counter is learned."""


def demo_hall_config(
    video: Path,
    script: DemoScript,
    *,
    mqtt_port: int,
    workdir: Path,
    lobby_video: Path | None = None,
    lobby: LobbyScript | None = None,
) -> HallConfig:
    """The demo hall: the windows' camera (the generated video), a post per window, short
    thresholds, open around the clock so the demo works at any hour; a queue machine and
    evaluators on the same broker, replayed on the events clock (see
    :mod:`hallwatch.demo.queue_sim`); window 1's public area graded for hygiene, the lobby
    camera's waiting area and entrance (with ``lobby_video``), and the hall's devices."""
    every_day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    cameras: list[dict[str, Any]] = [
        {
            "id": DEMO_CAMERA,
            "name": "大厅全景",
            "url": str(video),
            "width": script.size[0],
            "height": script.size[1],
            "keyframes_only": True,
            "look_interval_s": 1.0,
            "stale_after_s": 10.0,
        }
    ]
    zones: list[dict[str, Any]] = [
        {
            "id": f"{post.id}-public",
            "name": f"{post.window}号窗口公共区域",
            "kind": "window_public",
            "camera": DEMO_CAMERA,
            "window": post.window,
            "polygon": [list(p) for p in public_area_polygon(hall_layout(len(script.posts)), i)],
        }
        for i, post in enumerate(script.posts)
        if any(litter.window_post == post.id for litter in script.litter)
    ]
    if lobby_video is not None and lobby is not None:
        cameras.append(
            {
                "id": LOBBY_CAMERA,
                "name": "一楼大堂",
                "url": str(lobby_video),
                "width": lobby.size[0],
                "height": lobby.size[1],
                "keyframes_only": True,
                "look_interval_s": LOBBY_LOOK_S,
                "stale_after_s": 10.0,
            }
        )
        zones.extend(lobby_zones(lobby, crowding_at=CROWDING_AT).values())
    return HallConfig.model_validate(
        {
            "hall": {"id": DEMO_HALL, "name": "演示政务服务大厅", "timezone": "Asia/Shanghai"},
            "service_hours": {
                "open_weekdays": every_day,
                "default": {"open": "00:00", "close": "23:59"},
            },
            "cameras": cameras,
            "posts": [
                {
                    "id": post.id,
                    "name": f"{post.window}号窗口",
                    "kind": "front_desk",
                    "window": post.window,
                    "camera": DEMO_CAMERA,
                    "polygon": [list(p) for p in post.polygon],
                }
                for post in script.posts
            ],
            "thresholds": {
                "presence_grace_s": GRACE_S,
                "off_post_after_s": OFF_POST_AFTER_S,
                "summary_interval_s": 30.0,
            },
            "mqtt": {"host": "127.0.0.1", "port": mqtt_port},
            "edge": {
                "outbox_path": str(workdir / "edge-outbox.sqlite"),
                "feed_state_path": str(workdir / "edge-feeds.sqlite"),
            },
            "departments": [{"id": k, "name": v} for k, v in DEPARTMENTS.items()],
            "windows": [
                {"id": w, "name": f"{w}号窗口", "department": dept}
                for _, dept, windows in SERVICES.values()
                for w in windows
            ],
            "queue": {
                "adapter": "generic_json",
                "topic": QUEUE_TOPIC,
                "applicant_salt": DEMO_SALT,
                "clock": "events",
                "services": [
                    {"id": code, "name": name, "department": dept}
                    for code, (name, dept, _) in SERVICES.items()
                ],
            },
            "evaluators": {"adapter": "generic_json", "topic": EVALUATOR_TOPIC},
            "devices": demo_devices(),
            "zones": zones,
            "environment": {
                "occupancy_interval_s": OCCUPANCY_INTERVAL_S,
                "count_every_s": COUNT_EVERY_S,
                "flow_interval_s": FLOW_INTERVAL_S,
                "hygiene_bad_after_s": HYGIENE_BAD_AFTER_S,
                "hygiene_good_after_s": HYGIENE_GOOD_AFTER_S,
                "hygiene_learn_s": HYGIENE_LEARN_S,
                "reference_dir": str(workdir / "hygiene"),
            },
        }
    )


def _fresh(workdir: Path) -> None:
    """Keep the rendered video, forget the previous run's data."""
    workdir.mkdir(parents=True, exist_ok=True)
    for path in workdir.iterdir():
        if path.suffix in {".sqlite", ".sqlite-wal", ".sqlite-shm"}:
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)


def environment_summary(service: AggregatorService, hall: str) -> dict[str, Any]:
    """The peak count per counted zone and the entrance flow, from the time series."""
    start, end = datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC) + timedelta(days=1)
    peaks: dict[str, int] = {}
    for point in service.series.query(MEASUREMENT_OCCUPANCY, hall=hall, start=start, end=end):
        zone = point.tags["zone"]
        peaks[zone] = max(peaks.get(zone, 0), int(point.fields["peak"]))
    flow = {"in": 0, "out": 0}
    for point in service.series.query(MEASUREMENT_FLOW, hall=hall, start=start, end=end):
        flow["in"] += int(point.fields["in_count"])
        flow["out"] += int(point.fields["out_count"])
    return {"occupancy": dict(sorted(peaks.items())), "flow": flow}


def summary(service: AggregatorService) -> dict[str, Any]:
    """The demo's closing JSON: every alert, every 异常办件 (by opening time), the peak
    count per zone, the entrance flow and how many facts the aggregator stored."""
    with service.state.session() as session:
        alerts = session.query(Alert).order_by(Alert.start).all()
        anomalies = session.query(Anomaly).order_by(Anomaly.opened, Anomaly.id).all()
        facts = session.query(SeenFact).count()
        return {
            "alerts": [
                {
                    "kind": a.kind,
                    "hall": a.hall,
                    "post": a.post,
                    "zone": a.zone,
                    "device": a.device,
                    "start": a.start.isoformat(),
                    "end": a.end.isoformat() if a.end else None,
                }
                for a in alerts
            ],
            "anomalies": [
                {
                    "kind": a.kind,
                    "hall": a.hall,
                    "window": a.window,
                    "case_no": a.case_no,
                    "opened": a.opened.isoformat(),
                    "level": a.level,
                }
                for a in anomalies
            ],
            **environment_summary(service, DEMO_HALL),
            "facts": facts,
        }


def run_demo(*, duration_s: float | None, http_port: int, workdir: Path) -> int:
    """Run the demo; with ``duration_s``, headless for that long, then print the summary."""
    _fresh(workdir)
    script = default_script()
    print("Rendering the demo hall video (cached after the first run)…", flush=True)
    video = write_demo_video(workdir / "demo-hall.mp4", script)
    lobby = default_lobby_script()
    lobby_video = write_lobby_video(workdir / "demo-lobby.mp4", lobby)
    broker = EmbeddedBroker().start()
    config = demo_hall_config(
        video, script, mqtt_port=broker.port, workdir=workdir, lobby_video=lobby_video,
        lobby=lobby,
    )  # fmt: skip
    settings = AggregatorSettings(
        database_url=f"sqlite:///{workdir / 'hallwatch.sqlite'}",
        mqtt_host="127.0.0.1",
        mqtt_port=broker.port,
        mqtt_protocol="3.1.1",
        mqtt_client_id="hallwatch-demo-aggregator",
        http_port=http_port,
        report_dir=workdir / "reports",
    )
    service = AggregatorService(settings, {DEMO_HALL: config})
    _demo_user(service)
    edge = EdgeWorker(config, stats_interval_s=10.0)
    devices: MorningPublisher | None = None
    heartbeats = HeartbeatPublisher(DEMO_HALL, host="127.0.0.1", port=broker.port)
    try:
        service.start()
        service.wait_mqtt_connected(10.0)
        edge.start()
        heartbeats.start()  # at once: the devices' offline clocks start with the edge
        print(
            f"HallWatch demo: open {service.url}/ and sign in as {DEMO_USER} / {DEMO_PASSWORD}"
            " (Ctrl-C to stop)",
            flush=True,
        )
        devices = _start_devices(edge, config, broker.port)
        stop = threading.Event()
        if duration_s is None:
            _wait_for_interrupt(stop)
        else:
            stop.wait(duration_s)
            edge.stop()  # publishes what is left in the outbox first
            stop.wait(1.0)  # let the aggregator ingest the last facts
            print(json.dumps(summary(service), ensure_ascii=False), flush=True)
    finally:
        heartbeats.stop()
        if devices is not None:
            devices.stop()
        edge.stop()
        service.stop()
        broker.stop()
    return 0


def _demo_user(service: AggregatorService) -> None:
    """The demo's one account. Its password is the only default secret HallWatch has, and
    only the demo makes it (``hallwatch aggregator`` refuses to start without real users)."""
    from aggregator.auth.roles import Role

    service.state.create_all()
    if service.users.get(DEMO_USER) is None:
        service.users.add(
            DEMO_USER, role=Role.ADMIN, password=DEMO_PASSWORD, display_name="演示 (demo)",
            actor="demo", check_password=False,
        )  # fmt: skip


def _start_devices(edge: EdgeWorker, config: HallConfig, port: int) -> MorningPublisher | None:
    """Once the edge listens to the queue machine, replay yesterday morning on the broker."""
    assert config.queue is not None and config.evaluators is not None
    deadline = time.monotonic() + 10.0
    while edge.feeds is not None and not edge.feeds.ready and time.monotonic() < deadline:
        time.sleep(0.05)
    if edge.feeds is None or not edge.feeds.ready:
        logger.warning("the edge does not listen to the queue machine; no queue demo")
        return None
    morning = demo_morning(datetime.now(config.tzinfo).date())
    devices = MorningPublisher(
        morning,
        host="127.0.0.1",
        port=port,
        queue_topic=config.queue.topic,
        evaluator_topic=config.evaluators.topic,
    )
    devices.start()
    print(
        f"Queue machine: replaying yesterday morning ({morning.tickets} tickets, "
        f"{len(morning.messages)} messages) in ~15 s; 异常办件 at "
        f"/api/v1/halls/{DEMO_HALL}/anomalies",
        flush=True,
    )
    return devices


def _wait_for_interrupt(stop: threading.Event) -> None:
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
