"""One camera's analysis: every post and zone it sees, looked at once per frame handed in.

Shared by the live worker and by ``hallwatch replay``: what replay reports is exactly what
the edge would have sent.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import cv2

from edge.detectors.base import Detector
from edge.environment.zone_watch import ZoneWatch
from edge.evidence import SnapshotMaker
from edge.regions.geometry import polygon_box
from edge.regions.post_region import PostRegion
from edge.sources.frame import Frame
from edge.tracking.post_watcher import PostWatcher, WatchSettings
from edge.tracking.presence import PresenceEvent
from hallwatch.config import CameraConfig, HallConfig
from hallwatch.contract import Fact, PostState, PresenceBody, PresenceFact

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AnalysisCounters:
    """Work done in an interval."""

    frames_looked: int = 0
    crops_inferred: int = 0
    crops_skipped: int = 0
    inference_ms_total: float = 0.0


class _CounterBox:
    """Counters written by an analysis thread and taken by the stats thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = AnalysisCounters()

    def add_look(self, inferred: int, skipped: int, inference_ms: float) -> None:
        with self._lock:
            c = self._counts
            self._counts = AnalysisCounters(
                c.frames_looked + 1,
                c.crops_inferred + inferred,
                c.crops_skipped + skipped,
                c.inference_ms_total + inference_ms,
            )

    def take(self) -> AnalysisCounters:
        """Return the counters and start new ones."""
        with self._lock:
            taken, self._counts = self._counts, AnalysisCounters()
        return taken


def watch_settings(config: HallConfig) -> WatchSettings:
    """The post-watch tuning a hall config asks for."""
    t = config.thresholds
    return WatchSettings(
        grace_s=t.presence_grace_s,
        summary_interval_s=t.summary_interval_s,
        motion_threshold=t.motion_threshold,
        motion_pixel_delta=t.motion_pixel_delta,
        static_learn_s=t.static_learn_s,
    )


class CameraAnalysis:
    """Turns a camera's frames into presence facts for its posts and facts for its zones.

    A change of a post to off_post carries an evidence snapshot of the post (faces
    blurred) when the hall's ``evidence.enabled``.

    Args:
        config: The hall.
        camera: The camera, one of ``config.cameras``.
        detector: The person detector.
        source: This edge's id, stamped on every fact.
    """

    def __init__(
        self, config: HallConfig, camera: CameraConfig, detector: Detector, *, source: str
    ) -> None:
        # Post crops are small: OpenCV's thread pool costs more than it saves (the gate takes
        # 0.70 ms per crop with it, 0.23 ms without). Process-wide; the edge's parallelism is
        # its analysis threads.
        cv2.setNumThreads(1)
        self.camera = camera
        self._hall = config.hall.id
        self._source = source
        settings = watch_settings(config)
        self._posts = {p.id: p for p in config.posts_for_camera(camera.id)}
        self.watchers = [
            PostWatcher(
                PostRegion(
                    p.id, [(pt[0], pt[1]) for pt in p.polygon], (camera.width, camera.height)
                ),
                detector,
                settings,
            )
            for p in self._posts.values()
        ]
        self.snapshots: SnapshotMaker | None = None
        if config.evidence.enabled:
            self.snapshots = SnapshotMaker(
                camera,
                clerk_polygons=[[(x, y) for x, y in p.polygon] for p in self._posts.values()],
                detector=detector,
                settings=config.evidence,
            )
        self.zones = ZoneWatch(config, camera, detector, source=source, snapshots=self.snapshots)
        self.counters = _CounterBox()
        self._reset_requested = threading.Event()

    def reset(self) -> None:
        """The camera reconnected: re-establish every post's state from scratch."""
        for watcher in self.watchers:
            watcher.reset()
        self.zones.reset()

    def request_reset(self) -> None:
        """Ask for :meth:`reset` before the next look (safe from any thread)."""
        self._reset_requested.set()

    def look(self, frame: Frame) -> list[Fact]:
        """Look at every post and zone in ``frame``; return the facts this produced."""
        facts: list[Fact] = []
        if self._reset_requested.is_set():
            self._reset_requested.clear()
            self.reset()
        inferred = skipped = 0
        inference_ms = 0.0
        for watcher in self.watchers:
            result = watcher.look(frame)
            inferred += result.inferred
            skipped += not result.inferred
            inference_ms += result.inference_ms
            facts.extend(self._fact(event, frame) for event in result.events)
        zone_inferences = self.zones.inferences
        facts.extend(self.zones.look(frame))
        inferred += self.zones.inferences - zone_inferences
        self.counters.add_look(inferred, skipped, inference_ms)
        return facts

    def _fact(self, event: PresenceEvent, frame: Frame) -> PresenceFact:
        post = self._posts[event.post]
        evidence = None
        if self.snapshots is not None and event.state is PostState.OFF_POST and not event.summary:
            try:
                evidence = self.snapshots.take(frame, polygon_box(post.polygon))
            except Exception:  # the fact matters more than its picture
                logger.exception("camera %s post %s: snapshot failed", self.camera.id, post.id)
        return PresenceFact(
            hall=self._hall,
            source=self._source,
            ts=frame.wall_at(event.pts),
            body=PresenceBody(
                camera=self.camera.id,
                post=post.id,
                window=post.window,
                state=event.state,
                since=frame.wall_at(event.since_pts),
                summary=event.summary,
                score=None if event.score is None else round(event.score, 3),
                evidence=evidence,
            ),
        )
