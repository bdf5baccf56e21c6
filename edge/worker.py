"""The edge worker of one hall: cameras in, facts out through the durable outbox.

Threads:

- one watchdog per camera (``edge.sources``): reads frames, keeps only the latest,
  reconnects with backoff, reports online/offline; a camera's failure stays its own;
- one analysis thread: every ``look_interval_s`` takes each camera's latest frame and looks
  at its posts (the detector runs one crop at a time, so two cores serve many cameras);
- one publisher thread (``edge.comms``): drains the outbox to the broker;
- with a ``queue`` or ``evaluators`` section, one feed runner (``edge.feeds.runner``):
  an MQTT client for the queue machine and evaluators and one thread turning their
  messages into facts (state in ``edge.feed_state_path``);
- with a ``devices`` section, a device monitor (``edge.health``): its MQTT heartbeats
  come through the feed runner (built for them alone if need be), the queue/evaluators
  traffic shows the devices probed by ``feed`` alive, one prober thread polls the HTTP
  and TCP probes, and the housekeeping thread ticks it about every second.

Every fact is appended to the outbox before anything publishes it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edge.analysis import CameraAnalysis
from edge.comms.mqtt_publisher import BrokerSettings, OutboxPublisher
from edge.detectors import Detector, create_detector
from edge.feeds.base import Feed, FeedStore
from edge.feeds.queue_feed import QueueFeed
from edge.feeds.ratings import EvaluatorFeed
from edge.feeds.runner import FeedRunner
from edge.health import DeviceMonitor, DeviceProber, heartbeat_feeds
from edge.outbox import Outbox
from edge.sources import CameraWatchdog
from hallwatch.config import HallConfig
from hallwatch.contract import (
    DeviceBody,
    DeviceFact,
    DeviceKind,
    DeviceState,
    Fact,
    StatsBody,
    StatsFact,
    encode,
    fact_topic,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _CameraStatus:
    camera: str
    online: bool
    reason: str


def broker_settings(config: HallConfig) -> BrokerSettings:
    """The broker a hall config names."""
    m = config.mqtt
    return BrokerSettings(
        host=m.host,
        port=m.port,
        username=m.username,
        password=m.password.get_secret_value() if m.password else None,
        tls=m.tls,
        keepalive_s=m.keepalive_s,
        client_id=m.client_id or "",
    )


def detector_for(config: HallConfig) -> Detector:
    """The detector a hall config asks for."""
    d = config.detector
    return create_detector(
        d.kind,
        model_path=d.model_path,
        precision=d.precision,
        providers=tuple(d.providers),
        threads=d.threads,
        score_threshold=d.score_threshold,
    )


class EdgeWorker:
    """Runs one hall's edge pipeline until stopped.

    Args:
        config: The hall.
        detector: Person detector; by default the one the config names.
        broker: Broker to publish to; by default the one the config names.
        outbox_path: Outbox file; by default ``config.edge.outbox_path``.
        stats_interval_s: How often a pipeline ``stats`` fact is sent.
    """

    def __init__(
        self,
        config: HallConfig,
        *,
        detector: Detector | None = None,
        broker: BrokerSettings | None = None,
        outbox_path: Path | None = None,
        stats_interval_s: float = 60.0,
    ) -> None:
        self.config = config
        self.hall = config.hall.id
        self.source = config.edge.source
        self._detector = detector or detector_for(config)
        self.outbox = Outbox(outbox_path or config.edge.outbox_path)
        settings = broker or broker_settings(config)
        self.publisher = OutboxPublisher(self.outbox, settings, hall=self.hall, source=self.source)
        self.feed_store: FeedStore | None = None
        self.feeds: FeedRunner | None = None
        self.devices: DeviceMonitor | None = None
        self.prober: DeviceProber | None = None
        feeds: list[Feed] = []
        if config.queue is not None or config.evaluators is not None:
            self.feed_store = FeedStore(config.edge.feed_state_path)
            if config.queue is not None:
                feeds.append(QueueFeed(config, self.feed_store))
            if config.evaluators is not None:
                feeds.append(EvaluatorFeed(config, self.feed_store))
        if config.devices:
            self.devices = DeviceMonitor(config)
            self.prober = DeviceProber(self.devices)
            # After the queue/evaluators feeds: a message matching both goes to them.
            feeds.extend(heartbeat_feeds(self.devices, {f.topic_filter for f in feeds}))
        if feeds:
            self.feeds = FeedRunner(
                feeds,
                settings,
                self.write,
                client_id=f"{settings.client_id or self.source}-feeds",
                store=self.feed_store,
                on_message=self.devices.observe if self.devices is not None else None,
            )
        self._status: queue.Queue[_CameraStatus] = queue.Queue()
        self._stats_interval_s = stats_interval_s
        self.analyses = {
            cam.id: CameraAnalysis(config, cam, self._detector, source=self.source)
            for cam in config.cameras
            if config.posts_for_camera(cam.id) or config.zones_for_camera(cam.id)
        }
        self.watchdogs = {
            cam.id: CameraWatchdog(
                cam.id,
                cam.url,
                on_status=self._on_camera_status,
                keyframes_only=cam.keyframes_only,
                stale_after_s=cam.stale_after_s,
                max_backoff_s=cam.max_backoff_s,
                start=False,
            )
            for cam in config.cameras
        }
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._housekeeping, name=f"edge-{self.hall}", daemon=True)
        ]
        shares = max(1, min(config.edge.analysis_threads, len(self.analyses)))
        cameras = sorted(self.analyses)
        for i in range(shares):
            self._threads.append(
                threading.Thread(
                    target=self._analyse,
                    args=(cameras[i::shares],),
                    name=f"analysis-{self.hall}-{i}",
                    daemon=True,
                )
            )
        self.facts_written = 0

    def _on_camera_status(self, camera: str, online: bool, reason: str) -> None:
        self._status.put(_CameraStatus(camera, online, reason))  # callbacks only enqueue

    def start(self) -> None:
        """Start publishing, the cameras and the analysis."""
        self.publisher.start()
        if self.feeds is not None:
            self.feeds.start()
        if self.prober is not None:
            self.prober.start()
        for watchdog in self.watchdogs.values():
            watchdog.start()
        for thread in self._threads:
            thread.start()
        logger.info(
            "edge %s started: %d cameras, %d posts, %d analysis threads",
            self.source,
            len(self.watchdogs),
            len(self.config.posts),
            len(self._threads) - 1,
        )

    def stop(self) -> None:
        """Stop everything; unpublished facts stay in the outbox for the next start.

        Stopping twice is harmless.
        """
        if self._stop.is_set():
            return
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=10)
        for watchdog in self.watchdogs.values():
            watchdog.stop()
        if self.prober is not None:
            self.prober.stop()
        feeds_stopped = self.feeds.stop() if self.feeds is not None else True
        if self.feed_store is not None:
            if feeds_stopped:
                self.feed_store.close()
            else:  # closing it under a running feed thread would break its transaction
                logger.error("the feed thread is still running; the feed store is left open")
        self.publisher.stop()
        self.outbox.close()

    def write(self, fact: Fact) -> None:
        """Append a fact to the outbox (durably); the publisher sends it."""
        self.outbox.append(fact.id, fact_topic(fact.hall, fact.kind), encode(fact))
        self.facts_written += 1

    def _housekeeping(self) -> None:
        """Camera status facts, device facts (about every second) and the pipeline stats."""
        next_stats = time.monotonic() + self._stats_interval_s
        next_devices = time.monotonic()
        while not self._stop.wait(0.05):
            self._drain_status()
            if self.devices is not None and time.monotonic() >= next_devices:
                self._tick_devices(self.devices)
                next_devices = time.monotonic() + 1.0
            if time.monotonic() >= next_stats:
                self._write_stats(self._stats_interval_s)
                next_stats += self._stats_interval_s

    def _analyse(self, cameras: list[str]) -> None:
        """Look at this thread's share of the cameras, each at its look interval."""
        last_pts: dict[str, float] = {}
        next_look: dict[str, float] = {}
        while not self._stop.is_set():
            now = time.monotonic()
            for camera_id in cameras:
                analysis = self.analyses[camera_id]
                if now < next_look.get(camera_id, 0.0):
                    continue
                frame = self.watchdogs[camera_id].latest()
                if frame is None or frame.pts == last_pts.get(camera_id):
                    continue
                last_pts[camera_id] = frame.pts
                next_look[camera_id] = now + analysis.camera.look_interval_s
                try:
                    facts = analysis.look(frame)
                except Exception:  # one camera's bad frame never stops the others
                    logger.exception("analysis of camera %s failed", camera_id)
                    continue
                for fact in facts:
                    self.write(fact)
            self._stop.wait(0.02)

    def _drain_status(self) -> None:
        while not self._status.empty():
            status = self._status.get_nowait()
            logger.info(
                "camera %s %s %s",
                status.camera,
                "online" if status.online else "offline:",
                status.reason,
            )
            if status.camera in self.analyses:
                self.analyses[status.camera].request_reset()  # done by its own thread
            self.write(
                DeviceFact(
                    hall=self.hall,
                    source=self.source,
                    body=DeviceBody(
                        device=status.camera,
                        device_kind=DeviceKind.CAMERA,
                        state=DeviceState.ONLINE if status.online else DeviceState.OFFLINE,
                        reason=status.reason[:500],
                    ),
                )
            )

    def _tick_devices(self, monitor: DeviceMonitor) -> None:
        """Write the device monitor's facts; a failure is logged (the thread goes on)."""
        try:
            listening = self.feeds.settled if self.feeds is not None else True
            for fact in monitor.tick(listening=listening):
                self.write(fact)
        except Exception:
            logger.exception("device monitor tick failed")

    def _write_stats(self, interval_s: float) -> None:
        taken = [a.counters.take() for a in self.analyses.values()]
        inferred = sum(c.crops_inferred for c in taken)
        self.write(
            StatsFact(
                hall=self.hall,
                source=self.source,
                body=StatsBody(
                    interval_s=interval_s,
                    cameras_online=sum(w.online for w in self.watchdogs.values()),
                    cameras_total=len(self.watchdogs),
                    frames_looked=sum(c.frames_looked for c in taken),
                    crops_inferred=inferred,
                    crops_skipped=sum(c.crops_skipped for c in taken),
                    inference_ms_mean=(
                        sum(c.inference_ms_total for c in taken) / inferred if inferred else 0.0
                    ),
                    outbox_depth=self.outbox.depth(),
                ),
            )
        )
