"""One camera's zones: hygiene, people counts, entrance flow, each turned into facts.

:class:`ZoneWatch` is the zone half of a camera's analysis (the posts are the other half,
:mod:`edge.analysis`). Per zone and look:

- the people in it are found once, with the detector, and shared: the entrance line uses
  them every look, the occupancy gauge at most every ``environment.count_every_s`` (a
  wide waiting area is cut into several detector tiles); the hygiene watcher asks for
  them only when the zone differs from its clean reference (a clean, empty counter costs
  no inference) and counts anybody overlapping the zone, not only people standing in it;
- a counted zone whose crop has not changed since its last inference keeps its people
  (the motion gate of the posts), so a quiet waiting area costs little;
- a fact that may raise an alert (a zone turning 环境差, a zone becoming crowded) carries
  an evidence snapshot with the faces of the public blurred (:mod:`edge.evidence`); a
  snapshot that fails is logged and the fact goes without it;
- a zone's first clean measurement after the start is reported as 环境好, so a 环境差
  the aggregator still holds from before a restart is resolved if the zone was cleaned
  meanwhile (a zone still dirty turns 环境差 again after the persistence time);
- a learned clean reference is saved under a name that includes the camera's size and
  the polygon, so a moved zone or a re-aimed camera never reuses an old reference.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from edge.detectors import Detections, Detector, create_detector
from edge.environment.flow import FlowReport, LineCounter
from edge.environment.hygiene import HygieneEvent, HygieneSettings, HygieneWatcher
from edge.environment.occupancy import OccupancyGauge, OccupancyReport
from edge.environment.people import ZonePeople
from edge.evidence import SnapshotMaker
from edge.regions.geometry import polygon_box
from edge.regions.motion_gate import MotionGate
from edge.regions.post_region import PostRegion
from edge.sources.frame import Frame
from hallwatch.config import CameraConfig, HallConfig, ZoneConfig
from hallwatch.contract import (
    Evidence,
    Fact,
    FlowBody,
    FlowFact,
    HygieneBody,
    HygieneFact,
    HygieneMethod,
    HygieneState,
    OccupancyBody,
    OccupancyFact,
)

logger = logging.getLogger(__name__)


def hygiene_settings(config: HallConfig) -> HygieneSettings:
    """The hygiene tuning a hall config asks for."""
    env = config.environment
    return HygieneSettings(
        bad_after_s=env.hygiene_bad_after_s,
        good_after_s=env.hygiene_good_after_s,
        threshold=env.hygiene_threshold,
        pixel_delta=env.hygiene_pixel_delta,
        learn_s=env.hygiene_learn_s,
    )


def load_reference(path: Path, zone: str) -> np.ndarray | None:
    """An operator-set clean frame (RGB), or None (logged) when the file cannot be read:
    the zone then learns its reference instead of stopping the edge."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        logger.error(
            "zone %s: reference_image %s is missing or not an image; learning one instead",
            zone,
            path,
        )
        return None
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def reference_file(reference_dir: Path, camera: CameraConfig, zone: ZoneConfig) -> Path:
    """Where a zone's learned reference is saved: named by the zone and a digest of what
    it was learned for (the camera's image size and the polygon).

    >>> from hallwatch.config import CameraConfig, ZoneConfig
    >>> cam = CameraConfig(id="c1", url="a.mp4", width=640, height=480)
    >>> z = ZoneConfig(id="w1-public", name="1", kind="window_public", camera="c1",
    ...                polygon=[(0, 0), (10, 0), (10, 10)])
    >>> reference_file(Path("/refs"), cam, z).name
    'w1-public-685c9890.png'
    """
    key = f"{camera.id}:{camera.width}x{camera.height}:{zone.polygon}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return reference_dir / f"{zone.id}-{digest}.png"


@dataclass
class _Zone:
    """Everything watched in one zone."""

    config: ZoneConfig
    region: PostRegion
    people: ZonePeople
    gate: MotionGate
    hygiene: HygieneWatcher | None
    gauge: OccupancyGauge | None
    line: LineCounter | None
    seen: Detections | None = None
    seen_pts: float | None = None
    counted_pts: float | None = None
    announced: bool = False
    """Whether the zone's grade was reported since the start."""

    @property
    def box(self) -> tuple[float, float, float, float]:
        """The polygon's bounding box in configured pixels."""
        return polygon_box(self.config.polygon)


class ZoneWatch:
    """Watches the zones of one camera.

    Args:
        config: The hall.
        camera: The camera.
        detector: The person detector (shared with the posts; one call at a time).
        source: This edge's id, stamped on every fact.
        snapshots: Evidence maker for this camera; ``None``: no snapshots.
    """

    def __init__(
        self,
        config: HallConfig,
        camera: CameraConfig,
        detector: Detector,
        *,
        source: str,
        snapshots: SnapshotMaker | None,
    ) -> None:
        self.camera = camera
        self._hall = config.hall.id
        self._source = source
        self._snapshots = snapshots
        env = config.environment
        size = (camera.width, camera.height)
        t = config.thresholds
        self._count_every_s = env.count_every_s
        self.zones: list[_Zone] = []
        for zc in config.zones_for_camera(camera.id):
            region = PostRegion(zc.id, [(p[0], p[1]) for p in zc.polygon], size)
            hygiene = None
            if zc.grades_hygiene:
                hygiene = self._hygiene_watcher(config, camera, zc, region)
            gauge = None
            if zc.counts_people:
                gauge = OccupancyGauge(
                    zc.id, interval_s=env.occupancy_interval_s, crowding_at=zc.crowding_at
                )
            line = None
            if zc.line is not None:
                (a, b) = zc.line.points
                line = LineCounter(
                    zc.id,
                    ((a[0], a[1]), (b[0], b[1])),
                    size,
                    zc.line.inside,
                    interval_s=env.flow_interval_s,
                )
            self.zones.append(
                _Zone(
                    config=zc,
                    region=region,
                    people=ZonePeople(zc.id, region, detector),
                    gate=MotionGate(threshold=t.motion_threshold, pixel_delta=t.motion_pixel_delta),
                    hygiene=hygiene,
                    gauge=gauge,
                    line=line,
                )
            )
        self.inferences = 0

    @staticmethod
    def _hygiene_watcher(
        config: HallConfig, camera: CameraConfig, zc: ZoneConfig, region: PostRegion
    ) -> HygieneWatcher:
        reference = None
        if zc.reference_image is not None:
            reference = load_reference(zc.reference_image, zc.id)
        classifier: Detector | None = None
        mode: Literal["replace", "confirm"] = "confirm"
        threshold = 0.5
        if zc.classifier is not None:
            c = zc.classifier
            classifier = create_detector(
                c.kind,
                model_path=c.model_path,
                input_size=c.input_size,
                output=c.output,
                dirty_index=c.dirty_index,
                mean=c.mean,
                std=c.std,
            )
            mode, threshold = c.mode, c.threshold
        return HygieneWatcher(
            zc.id,
            region,
            hygiene_settings(config),
            reference=reference,
            reference_path=reference_file(config.environment.reference_dir, camera, zc),
            classifier=classifier,
            classifier_mode=mode,
            classifier_threshold=threshold,
        )

    def reset(self) -> None:
        """The camera reconnected: clocks and tracks restart; references are kept."""
        for zone in self.zones:
            zone.gate.reset()
            zone.seen = zone.seen_pts = zone.counted_pts = None
            if zone.hygiene is not None:
                zone.hygiene.reset()
            if zone.gauge is not None:
                zone.gauge.reset()
            if zone.line is not None:
                zone.line.reset()

    def look(self, frame: Frame) -> list[Fact]:
        """Look at every zone in ``frame``; return the facts this produced."""
        facts: list[Fact] = []
        for zone in self.zones:
            try:
                facts.extend(self._look_zone(zone, frame))
            except Exception:  # one zone's failure never stops the others or the posts
                logger.exception("camera %s zone %s: look failed", self.camera.id, zone.config.id)
        return facts

    # -- one zone ------------------------------------------------------------------------

    def _look_zone(self, zone: _Zone, frame: Frame) -> list[Fact]:
        facts: list[Fact] = []
        if zone.line is not None or (zone.gauge is not None and self._count_due(zone, frame)):
            people = self._people(zone, frame)
            if zone.gauge is not None:
                zone.counted_pts = frame.pts
                report = zone.gauge.observe(frame.pts, len(people))
                if report is not None:
                    facts.append(self._occupancy_fact(zone, frame, report, people))
            if zone.line is not None:
                flow = zone.line.observe(frame.pts, (frame.width, frame.height), people)
                if flow is not None:
                    facts.append(self._flow_fact(zone, frame, flow))
        if zone.hygiene is not None:
            watcher = zone.hygiene
            event = watcher.look(frame, lambda: zone.people.find_all(frame))
            if event is None and not zone.announced and watcher.stats.clean > 0:
                # the first clean measurement since the start: say so (see the module doc)
                event = HygieneEvent(
                    zone.config.id,
                    watcher.state,
                    frame.pts,
                    frame.pts,
                    watcher.score or 0.0,
                    watcher.method,
                )
            if event is not None:
                zone.announced = True
                facts.append(self._hygiene_fact(zone, frame, event))
        return facts

    def _count_due(self, zone: _Zone, frame: Frame) -> bool:
        last = zone.counted_pts
        return last is None or frame.pts < last or frame.pts - last >= self._count_every_s

    def _people(self, zone: _Zone, frame: Frame) -> Detections:
        """The people in the zone at this frame (reused while the crop does not change)."""
        if zone.seen is not None and zone.seen_pts == frame.pts:
            return zone.seen
        decision = zone.gate.look(zone.region.crop(frame.image))
        if zone.seen is None or decision.infer:
            zone.seen = zone.people.find(frame)
            zone.gate.inferred(decision)
            self.inferences += 1
        zone.seen_pts = frame.pts
        return zone.seen

    def _snapshot(
        self, zone: _Zone, frame: Frame, people: Detections | None = None
    ) -> Evidence | None:
        if self._snapshots is None:
            return None
        try:
            return self._snapshots.take(frame, zone.box, people=people)
        except Exception:  # the fact matters more than its picture
            logger.exception("camera %s zone %s: snapshot failed", self.camera.id, zone.config.id)
            return None

    def _occupancy_fact(
        self, zone: _Zone, frame: Frame, report: OccupancyReport, people: Detections
    ) -> OccupancyFact:
        interval = report.end_pts - report.start_pts
        if interval <= 0:
            interval = zone.gauge.interval_s if zone.gauge is not None else 1.0
        evidence = self._snapshot(zone, frame, people) if report.crowding_started else None
        return OccupancyFact(
            hall=self._hall,
            source=self._source,
            ts=frame.wall_at(report.end_pts),
            body=OccupancyBody(
                camera=self.camera.id,
                zone=zone.config.id,
                start=frame.wall_at(report.start_pts),
                interval_s=round(interval, 3),
                count=report.count,
                peak=report.peak,
                mean=report.mean,
                looks=report.looks,
                crowded=report.crowded,
                evidence=evidence,
            ),
        )

    def _flow_fact(self, zone: _Zone, frame: Frame, report: FlowReport) -> FlowFact:
        interval = max(report.end_pts - report.start_pts, 0.001)
        return FlowFact(
            hall=self._hall,
            source=self._source,
            ts=frame.wall_at(report.end_pts),
            body=FlowBody(
                camera=self.camera.id,
                zone=zone.config.id,
                start=frame.wall_at(report.start_pts),
                interval_s=round(interval, 3),
                in_count=report.in_count,
                out_count=report.out_count,
            ),
        )

    def _hygiene_fact(self, zone: _Zone, frame: Frame, event: HygieneEvent) -> HygieneFact:
        state = HygieneState(event.state)
        evidence = self._snapshot(zone, frame) if state is HygieneState.BAD else None
        return HygieneFact(
            hall=self._hall,
            source=self._source,
            ts=frame.wall_at(event.pts),
            body=HygieneBody(
                camera=self.camera.id,
                zone=zone.config.id,
                window=zone.config.window,
                state=state,
                since=frame.wall_at(event.since_pts),
                score=round(min(1.0, max(0.0, event.score)), 4),
                method=HygieneMethod(event.method),
                evidence=evidence,
            ),
        )
