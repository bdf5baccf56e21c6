"""``hallwatch demo``: the whole chain in one process, with no servers installed.

A generated demo-hall video plays as the camera (looping, at its own pace); the edge worker
watches its four windows with the real person detector and publishes facts to an embedded
MQTT broker (amqtt); the aggregator ingests them into SQLite, applies the off-post rule and
serves the live page. The demo's thresholds are short so an off-post alert comes within the
first minute.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
from pathlib import Path
from typing import Any

from aggregator.service import AggregatorService
from aggregator.settings import AggregatorSettings
from aggregator.store.state import Alert, SeenFact
from edge.worker import EdgeWorker
from hallwatch.broker import EmbeddedBroker
from hallwatch.config import HallConfig
from hallwatch.demo.scene import DemoScript, default_script, write_demo_video

logger = logging.getLogger(__name__)

DEMO_HALL = "demo-hall"
DEMO_CAMERA = "hall-cam"
GRACE_S = 3.0
OFF_POST_AFTER_S = 15.0


def demo_hall_config(
    video: Path, script: DemoScript, *, mqtt_port: int, workdir: Path
) -> HallConfig:
    """The demo hall: one camera (the generated video), a post per window, short thresholds,
    open around the clock so the demo works at any hour."""
    every_day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    return HallConfig.model_validate(
        {
            "hall": {"id": DEMO_HALL, "name": "演示政务服务大厅", "timezone": "Asia/Shanghai"},
            "service_hours": {
                "open_weekdays": every_day,
                "default": {"open": "00:00", "close": "23:59"},
            },
            "cameras": [
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
            ],
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
            "edge": {"outbox_path": str(workdir / "edge-outbox.sqlite")},
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


def summary(service: AggregatorService) -> dict[str, Any]:
    """The demo's closing JSON: every alert and how many facts the aggregator stored."""
    with service.state.session() as session:
        alerts = session.query(Alert).order_by(Alert.start).all()
        facts = session.query(SeenFact).count()
        return {
            "alerts": [
                {
                    "kind": a.kind,
                    "hall": a.hall,
                    "post": a.post,
                    "start": a.start.isoformat(),
                    "end": a.end.isoformat() if a.end else None,
                }
                for a in alerts
            ],
            "facts": facts,
        }


def run_demo(*, duration_s: float | None, http_port: int, workdir: Path) -> int:
    """Run the demo; with ``duration_s``, headless for that long, then print the summary."""
    _fresh(workdir)
    script = default_script()
    print("Rendering the demo hall video (cached after the first run)…", flush=True)
    video = write_demo_video(workdir / "demo-hall.mp4", script)
    broker = EmbeddedBroker().start()
    config = demo_hall_config(video, script, mqtt_port=broker.port, workdir=workdir)
    settings = AggregatorSettings(
        database_url=f"sqlite:///{workdir / 'hallwatch.sqlite'}",
        mqtt_host="127.0.0.1",
        mqtt_port=broker.port,
        mqtt_protocol="3.1.1",
        mqtt_client_id="hallwatch-demo-aggregator",
        http_port=http_port,
    )
    service = AggregatorService(settings, {DEMO_HALL: config})
    edge = EdgeWorker(config, stats_interval_s=10.0)
    try:
        service.start()
        service.wait_mqtt_connected(10.0)
        edge.start()
        print(f"HallWatch demo: open {service.url}/ (Ctrl-C to stop)", flush=True)
        stop = threading.Event()
        if duration_s is None:
            _wait_for_interrupt(stop)
        else:
            stop.wait(duration_s)
            edge.stop()  # publishes what is left in the outbox first
            stop.wait(1.0)  # let the aggregator ingest the last facts
            print(json.dumps(summary(service), ensure_ascii=False), flush=True)
    finally:
        edge.stop()
        service.stop()
        broker.stop()
    return 0


def _wait_for_interrupt(stop: threading.Event) -> None:
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
