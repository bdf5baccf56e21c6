"""One post's watch: crop → motion gate → detector → empty-look check → presence tracker.

A global score threshold is not enough to tell a clerk from an empty chair: at low
resolution this model scores an empty office chair 0.6–0.8 as a person. So each post
learns what it looks like *empty* and a detection that the empty look explains is not a
person:

- **Geometry**: a detection counts only if its centre lies inside the post's polygon and
  it is tall enough for a person at that post (a fraction of the polygon's height).
- **Confirmed-empty look**: while the post is off post and the detector finds nobody, the
  crop is kept as the post's empty look (refreshed as light changes through the day).
- **Static look**: a "person" whose pixels have not changed at all for ``static_learn_s``
  (people breathe, type and turn; chairs, coats and posters do not) is learned as an empty
  look too; the absence is then dated from the last moment the crop changed.

A detection whose box region matches any empty look (few pixels differ) is rejected.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from edge.detectors.base import Detector
from edge.detectors.detections import Detections
from edge.regions.geometry import points_in_polygon
from edge.regions.motion_gate import GateDecision, MotionGate, changed_fraction
from edge.regions.post_region import PostRegion
from edge.sources.frame import Frame
from edge.tracking.presence import PresenceEvent, PresenceTracker
from hallwatch.contract import PostState

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WatchSettings:
    """Tuning of a post's watch; the hall config supplies these."""

    grace_s: float = 20.0
    summary_interval_s: float = 60.0
    motion_threshold: float = 0.01
    motion_pixel_delta: int = 25
    static_learn_s: float = 180.0
    min_box_height: float = 0.25
    """A person box must be at least this fraction of the polygon's height."""
    empty_match: float = 0.04
    """A box whose region differs from an empty look in fewer pixels than this is empty.

    Kept tight: a seated clerk's small movements change 5–9 % of the box region, camera
    noise and light changes about 0 % (levels are median-matched), so a clerk who sat very
    still and was learned as "empty" is seen again as soon as they move."""
    max_empty_looks: int = 4
    hold_change: float = 0.15
    """While a person is confirmed at the post, a crop that changed less than this fraction
    since the last inference keeps its state without inference (a clerk typing or turning
    changes 2–9 %; one leaving changes far more)."""
    reconfirm_s: float = 20.0
    """A staffed post held without inference is re-inferred at least this often."""
    settle_looks: int = 2
    """Holding resumes only after this many looks in a row without a large change, so a
    departure spread over several looks (walking out) is followed look by look."""


@dataclass(slots=True)
class LookResult:
    """What one look at a post produced."""

    events: list[PresenceEvent] = field(default_factory=list)
    inferred: bool = False
    inference_ms: float = 0.0


class EmptyLooks:
    """The learned appearances of a post with nobody at it (gate-image scale)."""

    def __init__(self, *, max_looks: int, pixel_delta: int, match: float) -> None:
        self._confirmed: np.ndarray | None = None
        self._static: deque[np.ndarray] = deque(maxlen=max(1, max_looks - 1))
        self._pixel_delta = pixel_delta
        self._match = match

    def confirm_empty(self, small: np.ndarray) -> None:
        self._confirmed = small

    def learn_static(self, small: np.ndarray) -> None:
        self._static.append(small)

    def explains(self, small: np.ndarray, box: np.ndarray) -> bool:
        """Whether the region ``box`` (x1, y1, x2, y2 at gate scale) looks as when empty."""
        looks = [*self._static, *([self._confirmed] if self._confirmed is not None else [])]
        if not looks:
            return False
        h, w = small.shape
        x1, y1 = int(max(0, box[0])), int(max(0, box[1]))
        x2, y2 = int(min(w, np.ceil(box[2]))), int(min(h, np.ceil(box[3])))
        if x2 - x1 < 2 or y2 - y1 < 2:
            return False
        region = small[y1:y2, x1:x2]
        return any(
            look.shape == small.shape
            and changed_fraction(look[y1:y2, x1:x2], region, self._pixel_delta) < self._match
            for look in looks
        )


class PostWatcher:
    """Watches one post of one camera.

    Args:
        region: The post's polygon.
        detector: Person detector (shared between posts; called one crop at a time).
        settings: Tuning.
    """

    def __init__(self, region: PostRegion, detector: Detector, settings: WatchSettings) -> None:
        self.region = region
        self.post = region.post
        self._detector = detector
        self._settings = settings
        self._gate = MotionGate(
            threshold=settings.motion_threshold, pixel_delta=settings.motion_pixel_delta
        )
        self._empty = EmptyLooks(
            max_looks=settings.max_empty_looks,
            pixel_delta=settings.motion_pixel_delta,
            match=settings.empty_match,
        )
        self.tracker = PresenceTracker(
            region.post, grace_s=settings.grace_s, summary_interval_s=settings.summary_interval_s
        )
        self._candidates = Detections.empty()
        self._candidates_small: np.ndarray | None = None
        self._candidates_scale = 1.0
        self._last_change_pts: float | None = None
        self._last_infer_pts: float | None = None
        self._holding = False
        self._quiet_looks = 0

    def reset(self) -> None:
        """Forget the scene (camera reconnected): next look infers, state is re-established."""
        self._gate.reset()
        self.tracker.reset()
        self._candidates = Detections.empty()
        self._candidates_small = None
        self._last_change_pts = None
        self._last_infer_pts = None
        self._holding = False
        self._quiet_looks = 0

    def look(self, frame: Frame) -> LookResult:
        """Look at the post in one frame and return the presence events it causes."""
        result = LookResult()
        crop = self.region.crop(frame.image)
        decision = self._gate.look(crop)
        if decision.infer or self._last_change_pts is None:
            self._last_change_pts = frame.pts  # the scene moved (static-look clock restarts)
        if self._needs_inference(decision, frame.pts):
            self._last_infer_pts = frame.pts
            started = time.perf_counter()
            raw = self._detector.detect(np.ascontiguousarray(crop))
            result.inference_ms = (time.perf_counter() - started) * 1000
            result.inferred = True
            self._gate.inferred(decision)
            self._candidates = self._plausible(raw, frame)
            self._candidates_small = decision.small
            self._candidates_scale = decision.small.shape[1] / max(1, crop.shape[1])
        result.events = self._judge(frame.pts)
        return result

    def _needs_inference(self, decision: GateDecision, pts: float) -> bool:
        """The motion gate, with a hold for a confirmed person.

        - First look, or the crop changed since the last inference: infer.
        - But while a person is confirmed at the post (on post, seen at the last look) and
          the post has been quiet for ``settle_looks`` looks, small changes are that person
          moving: hold the state without inference, unless the change is large (they may
          be leaving) or ``reconfirm_s`` has passed.
        """
        large = decision.changed >= self._settings.hold_change
        self._quiet_looks = 0 if large else self._quiet_looks + 1
        if self._last_infer_pts is None:
            return True
        settled = self._quiet_looks >= self._settings.settle_looks
        if settled and self._holding and self.tracker.state is PostState.ON_POST:
            return pts - self._last_infer_pts >= self._settings.reconfirm_s
        return decision.infer

    def _plausible(self, dets: Detections, frame: Frame) -> Detections:
        """Detections whose centre is inside the polygon and that are tall enough.

        A centre exactly on the polygon's edge may count either way (even-odd rule of
        :func:`~edge.regions.geometry.points_in_polygon`; the detector's float boxes do not
        land there in practice).
        """
        if len(dets) == 0:
            return dets
        poly = self.region.polygon_in_crop(frame.width, frame.height)
        poly_h = float(poly[:, 1].max() - poly[:, 1].min())
        inside = points_in_polygon((dets.xyxy[:, :2] + dets.xyxy[:, 2:]) / 2, poly)
        tall = (dets.xyxy[:, 3] - dets.xyxy[:, 1]) >= self._settings.min_box_height * poly_h
        return dets[inside & tall]

    def _judge(self, pts: float) -> list[PresenceEvent]:
        small = self._candidates_small
        people = self._candidates
        if len(people) and small is not None:
            scale = self._candidates_scale
            keep = np.array(
                [not self._empty.explains(small, box * scale) for box in people.xyxy], bool
            )
            people = people[keep]
        last_seen: float | None = None
        still_for = pts - (self._last_change_pts if self._last_change_pts is not None else pts)
        if len(people) and small is not None and still_for >= self._settings.static_learn_s:
            logger.info(
                "post %s: a detection has not moved for %.0f s; learned as the empty look",
                self.post,
                still_for,
            )
            self._empty.learn_static(small)
            last_seen = self._last_change_pts
            people = Detections.empty()
        person = len(people) > 0
        self._holding = person
        if (
            not person
            and len(self._candidates) == 0
            and small is not None
            and self.tracker.state is PostState.OFF_POST
        ):
            self._empty.confirm_empty(small)
        score = float(people.confidence.max()) if person else None
        return self.tracker.observe(pts, person, score=score, last_seen_pts=last_seen)
