"""Hygiene (环境好 / 环境差) of a window's public area, judged at the edge.

A zone's state is ``good`` (环境好) by default. The watcher keeps a *clean reference* of the
zone: an operator-set frame, a reference saved by an earlier run, or one learned from the
zone itself when it stayed unchanged and person-free for ``learn_s``. While no person is in
the zone it measures which fraction of the zone differs from the reference (litter, papers,
cups, items left behind) and runs a small state machine on those measurements:

- ``good`` → ``bad`` when dirty measurements continue for ``bad_after_s`` (a clean one in
  between restarts the clock); the event's ``since_pts`` is the first dirty measurement.
- ``bad`` → ``good`` when clean measurements continue for ``good_after_s``; ``since_pts`` is
  the first clean one. While bad, a look counts as clean only below
  ``threshold * clear_ratio`` (hysteresis: a half-picked-up mess is not clean).

How a measurement is made (at most ``max_side`` pixels, so one look costs well under 1 ms):

1. The zone's crop is downscaled by a whole factor (area average: OpenCV's fast path) and
   blurred a little against sensor noise.
2. **Light**: a gain per colour channel is estimated as the median ratio of the current to
   the reference level over the zone, and divided out. A whole-scene brightness change
   (clouds, lights, auto exposure) or a mild colour cast leaves no difference; the median
   ignores whatever litter or person covers less than half of the zone.
3. A pixel differs when, in any channel, its level lies more than ``pixel_delta`` outside
   the range of the reference's 3x3 neighbourhood (so a one-pixel camera shake or a
   polygon edge does not count). A band of ``edge_px`` along the polygon's edge is ignored
   and isolated pixels are removed (3x3 opening).
4. The score is the differing fraction of the zone's area; dirty above ``threshold``.

**People.** A person is *in the zone* when their box overlaps the zone polygon by at least
``person_overlap`` of the smaller of the box and the zone. The caller's ``people()`` is
called only when it matters: when the zone differs from its reference (or when a
reference is about to be learned, or in classifier-replace mode before each grading).
While a person is in the zone, and for ``person_hold_s`` after last seeing one, there is
no measurement: the state does not change and the running clock is neither advanced to
``bad`` nor reset. A dirt clock started before the person came keeps its start, so litter
seen before and after a visit is dated from when it was first seen. People overlapping
the zone less than that are masked out of the measurement.

**Drift.** While ``good`` and nearly identical (score ≤ ``adapt_below``), unchanged pixels
of the reference move towards the current look by ``adapt_rate`` per look, so slow
changes of the hall's light pattern are absorbed; litter (a change above ``adapt_below``)
stops the adaptation. A learned reference is saved to ``reference_path`` when learned and
then at most every ``save_interval_s`` as it adapts; an operator reference is never saved.

**Classifier.** An optional :class:`~edge.detectors.base.Detector` plugin (e.g.
:class:`~edge.detectors.hygiene_classifier.OnnxHygieneClassifier`) grades the zone's crop:
``replace`` — it alone decides (graded at most every ``classifier_interval_s``, each time
after checking that no person is in the zone; no reference needed); ``confirm`` — a look is
dirty only when the reference method *and* the classifier say so (the classifier runs only
on looks the reference calls dirty; its verdict is reused for ``classifier_interval_s``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from edge.detectors.base import Detector
from edge.detectors.detections import Detections
from edge.detectors.hygiene_classifier import HYGIENE_DIRTY_CLASS
from edge.regions.post_region import CropBox, PostRegion
from edge.sources.frame import Frame
from hallwatch.contract import HygieneMethod, HygieneState

logger = logging.getLogger(__name__)

_KERNEL3 = np.ones((3, 3), np.uint8)
_ONES3 = np.ones((1, 3), np.float32)  # sums the channels (cv2.transform)
_MIN_LEVEL = 8.0
"""Reference levels are floored at this for the light's gain (dark pixels are noisy)."""


@dataclass(frozen=True, slots=True)
class HygieneSettings:
    """Tuning of a zone's hygiene watch (the hall config's ``environment.hygiene_*``).

    Attributes:
        bad_after_s: Dirty measurements must continue this long before ``bad``.
        good_after_s: Clean measurements must continue this long before ``good`` again.
        threshold: Fraction of the zone's area that must differ to count as dirty.
        pixel_delta: Level difference (0–255, any colour channel, after the light is
            normalised) that makes a pixel differ.
        learn_s: Without a reference, a zone unchanged and person-free this long becomes it.
        max_side: The zone is compared at most this longest side, in pixels (speed); it is
            downscaled by the smallest whole factor that fits.
        clear_ratio: While ``bad``, a look is clean only below ``threshold * clear_ratio``.
        edge_px: Band along the polygon's edge ignored, in compare pixels.
        blur_px: Radius of the Gaussian blur against sensor noise, compare pixels (0: none).
        person_overlap: A person is in the zone when box ∩ polygon covers at least this
            fraction of the smaller of their box and the zone.
        person_hold_s: After a person was seen in the zone, no measurement for this long
            (people leaving are often missed by the detector for a look or two).
        adapt_rate: While good and nearly identical, the reference moves this fraction of
            the way to the current look per look (0: never adapts).
        adapt_below: "Nearly identical": score at or below this fraction.
        classifier_interval_s: The classifier runs at most this often (its verdict is
            reused in between in ``confirm`` mode; no grading in between in ``replace``).
        save_interval_s: A learned reference that adapts is saved at most this often.
    """

    bad_after_s: float = 300.0
    good_after_s: float = 60.0
    threshold: float = 0.03
    pixel_delta: int = 30
    learn_s: float = 30.0
    max_side: int = 160
    clear_ratio: float = 0.5
    edge_px: int = 2
    blur_px: int = 1
    person_overlap: float = 0.2
    person_hold_s: float = 5.0
    adapt_rate: float = 0.05
    adapt_below: float = 0.005
    classifier_interval_s: float = 5.0
    save_interval_s: float = 3600.0

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) < 0:
                raise ValueError(f"{f.name} must be >= 0, got {getattr(self, f.name)}")
        if not 0 < self.threshold < 1 or not 0 < self.clear_ratio <= 1:
            raise ValueError("threshold must be in (0, 1) and clear_ratio in (0, 1]")
        if not 0 < self.pixel_delta < 256 or self.max_side < 16:
            raise ValueError("pixel_delta must be in 1..255 and max_side >= 16")
        if not 0 < self.person_overlap <= 1 or self.adapt_rate > 1:
            raise ValueError("person_overlap must be in (0, 1] and adapt_rate <= 1")


@dataclass(frozen=True, slots=True)
class HygieneEvent:
    """A zone changed grade.

    Attributes:
        zone: Zone id.
        state: The new grade.
        since_pts: ``bad``: when the difference was first seen; ``good``: when it was first
            clear (stream seconds).
        pts: The look that made the change.
        score: Dirty fraction of the zone measured at the change (method ``classifier``:
            the classifier's probability).
        method: What judged it.
    """

    zone: str
    state: HygieneState
    since_pts: float
    pts: float
    score: float
    method: HygieneMethod


@dataclass(frozen=True, slots=True)
class HygieneStats:
    """What a watcher's looks did, counted since it started (for logs and stats facts)."""

    looks: int = 0
    learning: int = 0
    """Looks spent learning a reference (no judgement)."""
    occluded: int = 0
    """Looks with a person in the zone (or just after): no measurement."""
    skipped: int = 0
    """Looks whose measurement could not change anything (or classifier not due)."""
    clean: int = 0
    dirty: int = 0
    people_calls: int = 0
    classifier_calls: int = 0


@dataclass(frozen=True, slots=True)
class _Geometry:
    """The zone at compare scale for one frame size."""

    box: CropBox  # the zone's crop, frame pixels
    size: tuple[int, int]  # compare (width, height)
    scale: tuple[float, float]  # compare pixels per frame pixel (x, y)
    polygon: np.ndarray  # bool (h, w): the polygon
    inner: np.ndarray  # bool (h, w): the polygon less its edge band; what is measured
    area: int  # pixels of ``inner``
    grid_step: int  # the light's gain is estimated on every grid_step-th row and column
    grid: np.ndarray  # bool: ``inner[::grid_step, ::grid_step]``


@dataclass(frozen=True, slots=True)
class _Look:
    """A zone image (float32, compare scale) with its 3x3 minimum and maximum."""

    image: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    @classmethod
    def of(cls, image: np.ndarray) -> _Look:
        image = np.ascontiguousarray(image, np.float32)
        return cls(image, cv2.erode(image, _KERNEL3), cv2.dilate(image, _KERNEL3))


@dataclass(frozen=True, slots=True)
class _Difference:
    score: float  # differing fraction of the zone
    changed: np.ndarray  # bool (h, w)
    normalised: np.ndarray  # the current look with the reference's light, float32 (h, w, 3)


@dataclass(frozen=True, slots=True)
class _PeopleCheck:
    in_zone: bool
    overlapping: np.ndarray | None  # bool (h, w): boxes of people touching the zone


def _difference(
    cur: np.ndarray, ref: _Look, geom: _Geometry, delta: int, exclude: np.ndarray | None = None
) -> _Difference:
    """The pixels of ``cur`` that differ from ``ref`` once the light is normalised."""
    step = geom.grid_step
    here = cur[::step, ::step][geom.grid]
    there = np.maximum(ref.image[::step, ::step][geom.grid], _MIN_LEVEL)
    ratios = np.ascontiguousarray((here / there).T)
    middle = ratios.shape[1] // 2
    gains = np.clip(np.partition(ratios, middle, axis=1)[:, middle], 0.25, 4.0)
    norm = cv2.transform(cur, np.diag(1.0 / gains).astype(np.float32))
    # how far each channel lies outside the reference's 3x3 range; any channel counts
    outside = cv2.max(cv2.subtract(norm, ref.hi), cv2.subtract(ref.lo, norm))
    _, over = cv2.threshold(outside, delta, 1.0, cv2.THRESH_BINARY)
    differs = (cv2.transform(over, _ONES3) > 0.5) & geom.inner
    changed = cv2.morphologyEx(differs.view(np.uint8), cv2.MORPH_OPEN, _KERNEL3)
    if exclude is not None:
        changed[exclude] = 0
    mask = changed.view(bool)
    return _Difference(float(np.count_nonzero(mask)) / max(geom.area, 1), mask, norm)


class _People:
    """The caller's ``people()``, called at most once per look."""

    def __init__(self, people: Callable[[], Detections], counts: dict[str, int]) -> None:
        self._people = people
        self._counts = counts
        self._found: Detections | None = None

    def __call__(self) -> Detections:
        if self._found is None:
            self._found = self._people()
            self._counts["people_calls"] += 1
        return self._found


class HygieneWatcher:
    """Watches the hygiene of one zone of one camera (see the module docstring).

    Args:
        zone: Zone id.
        region: The zone's polygon (any :class:`PostRegion`; its id is not used).
        settings: Tuning.
        reference: An operator-set clean frame of the camera: RGB ``uint8``, any size (it
            is scaled to the frames like the polygon). Wins over a saved reference.
        reference_path: Where a learned reference is saved (PNG of the zone at compare
            scale) and loaded from at start, so a restart does not relearn while litter
            lies there.
        classifier: Optional grading plugin; its detections of class
            :data:`~edge.detectors.hygiene_classifier.HYGIENE_DIRTY_CLASS` give the
            probability that the zone is dirty.
        classifier_mode: ``replace`` (the classifier alone decides) or ``confirm`` (dirty
            only when the reference method and the classifier agree).
        classifier_threshold: Probability from which the classifier calls the zone dirty.

    Example:
        >>> import numpy as np
        >>> from datetime import UTC, datetime
        >>> from edge.detectors.detections import Detections
        >>> region = PostRegion("w1-public", [(10, 10), (90, 10), (90, 70), (10, 70)], (100, 80))
        >>> clean = np.full((80, 100, 3), 120, np.uint8)
        >>> w = HygieneWatcher("w1-public", region, HygieneSettings(bad_after_s=2),
        ...                    reference=clean)
        >>> dirty = clean.copy(); dirty[30:50, 30:60] = 250
        >>> nobody = Detections.empty
        >>> [w.look(Frame("cam", dirty, t, datetime.now(UTC)), nobody) for t in (0.0, 1.0)]
        [None, None]
        >>> w.look(Frame("cam", dirty, 2.0, datetime.now(UTC)), nobody).state
        <HygieneState.BAD: 'bad'>
    """

    def __init__(
        self,
        zone: str,
        region: PostRegion,
        settings: HygieneSettings,
        *,
        reference: np.ndarray | None = None,
        reference_path: Path | None = None,
        classifier: Detector | None = None,
        classifier_mode: Literal["replace", "confirm"] = "confirm",
        classifier_threshold: float = 0.5,
    ) -> None:
        if classifier_mode not in ("replace", "confirm"):
            raise ValueError(f"classifier_mode must be replace or confirm, got {classifier_mode}")
        if not 0 < classifier_threshold < 1:
            raise ValueError(f"classifier_threshold must be in (0, 1), got {classifier_threshold}")
        if reference is not None and (reference.ndim != 3 or reference.dtype != np.uint8):
            raise ValueError("reference must be an RGB uint8 image")
        self.zone = zone
        self.region = region
        self.settings = settings
        self._operator = reference
        self._reference_path = reference_path
        self._classifier = classifier
        self._replace = classifier is not None and classifier_mode == "replace"
        self._classifier_threshold = classifier_threshold
        if classifier is None:
            self._method = HygieneMethod.REFERENCE
        else:
            self._method = HygieneMethod.CLASSIFIER if self._replace else HygieneMethod.BOTH
        self._geometries: dict[tuple[int, int], _Geometry] = {}
        self._counts: dict[str, int] = {f.name: 0 for f in fields(HygieneStats)}
        self._ref: _Look | None = None
        self._ref_source: str | None = None
        self._saved: np.ndarray | None = None
        self._saved_pts = -np.inf
        if reference is None and reference_path is not None:
            self._saved = _load_png(reference_path)
        self._state = HygieneState.GOOD
        self._score: float | None = None
        self._dirty_since: float | None = None
        self._clean_since: float | None = None
        self._dirty_rect: tuple[int, int, int, int] | None = None
        self.reset()

    # --- public ---------------------------------------------------------------------------

    @property
    def state(self) -> HygieneState:
        """The zone's grade now."""
        return self._state

    @property
    def score(self) -> float | None:
        """The last measured score (dirty fraction, or probability); ``None`` before any."""
        return self._score

    @property
    def has_reference(self) -> bool:
        """Whether a clean reference is in use (or loaded and waiting for the first look)."""
        return self._ref is not None or self._operator is not None or self._saved is not None

    @property
    def reference_source(self) -> str | None:
        """``"operator"``, ``"saved"`` or ``"learned"``; ``None`` until there is one."""
        return self._ref_source

    @property
    def method(self) -> HygieneMethod:
        """What judges this zone."""
        return self._method

    @property
    def stats(self) -> HygieneStats:
        """Counts of what the looks did."""
        return HygieneStats(**self._counts)

    def reset(self) -> None:
        """Restart the evidence (camera reconnected): keep the reference and the state."""
        self._dirty_since = None
        self._clean_since = None
        self._candidate: _Look | None = None
        self._candidate_since = 0.0
        self._person_until = -np.inf
        self._verdict: float | None = None
        self._verdict_pts = -np.inf

    def set_reference(self, image: np.ndarray) -> None:
        """Use ``image`` (an operator's clean frame, RGB ``uint8``) as the reference now."""
        if image.ndim != 3 or image.dtype != np.uint8:
            raise ValueError("reference must be an RGB uint8 image")
        self._operator, self._ref, self._saved = image, None, None
        self.reset()

    def look(self, frame: Frame, people: Callable[[], Detections]) -> HygieneEvent | None:
        """Look at the zone in one frame.

        Args:
            frame: The camera's frame.
            people: Returns the person detections for this zone in frame pixels; called
                only when needed, at most once.

        Returns:
            The change of grade this look caused, if any.
        """
        self._counts["looks"] += 1
        geom = self._geometry(frame.width, frame.height)
        if geom.area == 0:
            return None
        ask = _People(people, self._counts)
        cur = self._small(frame.image, geom)
        self._ensure_reference(frame, geom)
        if self._ref is None:
            self._learn(frame.pts, cur, geom, ask)
            if not self._replace:
                return None
        if self._replace:
            return self._look_classifier(frame, cur, geom, ask)
        return self._look_reference(frame, cur, geom, ask)

    def dirty_box(self, frame: Frame) -> CropBox | None:
        """Where the zone differed at the last dirty measurement, in ``frame``'s pixels.

        Returns:
            The bounding box of the differing pixels, or ``None`` if the last measurement
            was clean (or judged by the classifier alone without a reference).
        """
        if self._dirty_rect is None:
            return None
        geom = self._geometry(frame.width, frame.height)
        x, y, w, h = self._dirty_rect
        sx, sy = geom.scale
        return CropBox(
            geom.box.x1 + int(x / sx),
            geom.box.y1 + int(y / sy),
            min(frame.width, geom.box.x1 + int(np.ceil((x + w) / sx))),
            min(frame.height, geom.box.y1 + int(np.ceil((y + h) / sy))),
        )

    # --- looks ----------------------------------------------------------------------------

    def _look_reference(
        self, frame: Frame, cur: np.ndarray, geom: _Geometry, ask: _People
    ) -> HygieneEvent | None:
        assert self._ref is not None
        if frame.pts < self._person_until:
            self._counts["occluded"] += 1
            return None
        delta = self.settings.pixel_delta
        diff = _difference(cur, self._ref, geom, delta)
        if self._is_clean(diff.score):
            self._verdict = None  # the next difference gets a fresh classifier verdict
            self._adapt(diff, frame.pts)
            return self._measured(False, diff.score, frame.pts, diff)
        if (
            self._state is HygieneState.BAD
            and self._clean_since is None
            and self._classifier is None
        ):
            self._counts["skipped"] += 1  # still bad, and no clean clock to restart
            self._score = diff.score
            return None
        check = self._check_people(ask(), geom)
        if check.in_zone:
            self._occluded(frame.pts)
            return None
        if check.overlapping is not None:
            diff = _difference(cur, self._ref, geom, delta, exclude=check.overlapping)
            if self._is_clean(diff.score):
                return self._measured(False, diff.score, frame.pts, diff)
        if self._classifier is not None and self._grade(frame, geom) < self._classifier_threshold:
            return self._measured(False, diff.score, frame.pts, diff)
        return self._measured(True, diff.score, frame.pts, diff)

    def _look_classifier(
        self, frame: Frame, cur: np.ndarray, geom: _Geometry, ask: _People
    ) -> HygieneEvent | None:
        if frame.pts - self._verdict_pts < self.settings.classifier_interval_s:
            self._counts["skipped"] += 1
            return None
        if frame.pts < self._person_until or self._check_people(ask(), geom).in_zone:
            self._occluded(frame.pts)
            return None
        self._verdict = None  # due: grade afresh
        p = self._grade(frame, geom)
        diff = None
        if self._ref is not None:
            diff = _difference(cur, self._ref, geom, self.settings.pixel_delta)
        return self._measured(p >= self._classifier_threshold, p, frame.pts, diff)

    def _grade(self, frame: Frame, geom: _Geometry) -> float:
        """The classifier's dirty probability for the zone's crop (reused while fresh)."""
        assert self._classifier is not None
        fresh = frame.pts - self._verdict_pts < self.settings.classifier_interval_s
        if self._verdict is not None and fresh:
            return self._verdict
        b = geom.box
        found = self._classifier.detect(np.ascontiguousarray(frame.image[b.y1 : b.y2, b.x1 : b.x2]))
        self._counts["classifier_calls"] += 1
        dirty = found.confidence[found.class_id == HYGIENE_DIRTY_CLASS]
        self._verdict = float(dirty.max()) if dirty.size else 0.0
        self._verdict_pts = frame.pts
        return self._verdict

    def _occluded(self, pts: float) -> None:
        self._counts["occluded"] += 1
        self._person_until = max(self._person_until, pts + self.settings.person_hold_s)

    def _is_clean(self, score: float) -> bool:
        limit = self.settings.threshold
        if self._state is HygieneState.BAD:
            limit *= self.settings.clear_ratio
        return score <= limit

    # --- the state machine ----------------------------------------------------------------

    def _measured(
        self, dirty: bool, score: float, pts: float, diff: _Difference | None
    ) -> HygieneEvent | None:
        self._score = score
        self._counts["dirty" if dirty else "clean"] += 1
        self._dirty_rect = None
        if dirty and diff is not None and diff.changed.any():
            x, y, w, h = cv2.boundingRect(diff.changed.view(np.uint8))
            self._dirty_rect = (x, y, w, h)
        s = self.settings
        if self._state is HygieneState.GOOD:
            if not dirty:
                self._dirty_since = None
                return None
            if self._dirty_since is None:
                self._dirty_since = pts
            if pts - self._dirty_since < s.bad_after_s:
                return None
            self._clean_since = None
            return self._change(HygieneState.BAD, self._dirty_since, pts, score)
        if dirty:
            self._clean_since = None
            return None
        if self._clean_since is None:
            self._clean_since = pts
        if pts - self._clean_since < s.good_after_s:
            return None
        self._dirty_since = None
        return self._change(HygieneState.GOOD, self._clean_since, pts, score)

    def _change(self, state: HygieneState, since: float, pts: float, score: float) -> HygieneEvent:
        self._state = state
        logger.info(
            "zone %s: hygiene %s since %.1f s (at %.1f s, score %.3f, %s)",
            self.zone,
            state.value,
            since,
            pts,
            score,
            self._method.value,
        )
        return HygieneEvent(self.zone, state, since, pts, score, self._method)

    # --- the reference --------------------------------------------------------------------

    def _learn(self, pts: float, cur: np.ndarray, geom: _Geometry, ask: _People) -> None:
        """Learn a reference from a zone unchanged and person-free for ``learn_s``."""
        self._counts["learning"] += 1
        s = self.settings
        cand = self._candidate
        if (
            cand is None
            or cand.image.shape != cur.shape
            or _difference(cur, cand, geom, s.pixel_delta).score > s.threshold * s.clear_ratio
        ):
            self._candidate, self._candidate_since = _Look.of(cur), pts
            return
        if pts - self._candidate_since < s.learn_s or pts < self._person_until:
            return
        check = self._check_people(ask(), geom)
        if check.in_zone or check.overlapping is not None:
            self._person_until = pts + s.person_hold_s
            return
        self._ref, self._ref_source = _Look.of(cur), "learned"
        logger.info(
            "zone %s: learned a clean reference (unchanged and person-free for %.0f s)",
            self.zone,
            pts - self._candidate_since,
        )
        self._save(pts)

    def _ensure_reference(self, frame: Frame, geom: _Geometry) -> None:
        """Build, load or rescale the reference for this frame size, if there is one."""
        width, height = geom.size
        if self._ref is not None and self._ref.image.shape[:2] == (height, width):
            return
        if self._operator is not None:
            image = self._operator
            if image.shape[:2] != (frame.height, frame.width):
                image = cv2.resize(image, (frame.width, frame.height), interpolation=cv2.INTER_AREA)
            self._ref, self._ref_source = _Look.of(self._small(image, geom)), "operator"
            return
        source = self._ref.image if self._ref is not None else self._saved
        if source is None:
            return
        have, want = source.shape[1] / source.shape[0], width / height
        if abs(have - want) > 0.03 * want:
            logger.warning("zone %s: saved reference has another shape; relearning", self.zone)
            self._ref = self._saved = None
            return
        resized = cv2.resize(source, (width, height), interpolation=cv2.INTER_AREA)
        self._ref = _Look.of(resized.astype(np.float32))
        self._ref_source = self._ref_source or "saved"
        self._saved = None

    def _adapt(self, diff: _Difference, pts: float) -> None:
        """Move the unchanged pixels of the reference slowly towards a nearly identical look."""
        s = self.settings
        ref = self._ref
        if ref is None or s.adapt_rate == 0 or self._state is HygieneState.BAD:
            return
        if diff.score > s.adapt_below:
            return
        image = ref.image.copy()
        unchanged = (~diff.changed).view(np.uint8)
        cv2.accumulateWeighted(diff.normalised, image, s.adapt_rate, mask=unchanged)
        self._ref = _Look.of(image)
        if pts - self._saved_pts >= s.save_interval_s:
            self._save(pts)

    def _save(self, pts: float) -> None:
        """Write a learned reference to ``reference_path`` (atomically); never raises."""
        if self._reference_path is None or self._ref is None or self._ref_source != "learned":
            return
        self._saved_pts = pts
        path = self._reference_path
        image = np.clip(self._ref.image + 0.5, 0, 255).astype(np.uint8)
        ok, png = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        try:
            if not ok:
                raise OSError("PNG encoding failed")
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(png.tobytes())
            tmp.replace(path)
        except OSError as exc:
            logger.warning("zone %s: cannot save the reference to %s: %s", self.zone, path, exc)

    # --- geometry -------------------------------------------------------------------------

    def _geometry(self, width: int, height: int) -> _Geometry:
        key = (width, height)
        if key not in self._geometries:
            self._geometries[key] = _zone_geometry(self.region, width, height, self.settings)
        return self._geometries[key]

    def _small(self, image: np.ndarray, geom: _Geometry) -> np.ndarray:
        """The zone's crop at compare scale, blurred, ``float32``."""
        b = geom.box
        small = cv2.resize(image[b.y1 : b.y2, b.x1 : b.x2], geom.size, interpolation=cv2.INTER_AREA)
        if self.settings.blur_px > 0:
            k = 2 * self.settings.blur_px + 1
            small = cv2.GaussianBlur(small, (k, k), 0)
        return small.astype(np.float32)

    def _check_people(self, people: Detections, geom: _Geometry) -> _PeopleCheck:
        """Whether a person is in the zone; else the boxes of those touching it."""
        overlapping: np.ndarray | None = None
        sx, sy = geom.scale
        width, height = geom.size
        zone_area = float(np.count_nonzero(geom.polygon))
        for x1, y1, x2, y2 in people.xyxy.tolist():
            bx1, by1 = (x1 - geom.box.x1) * sx, (y1 - geom.box.y1) * sy
            bx2, by2 = (x2 - geom.box.x1) * sx, (y2 - geom.box.y1) * sy
            ix1, iy1 = max(0, int(bx1)), max(0, int(by1))
            ix2, iy2 = min(width, int(np.ceil(bx2))), min(height, int(np.ceil(by2)))
            if ix2 <= ix1 or iy2 <= iy1:
                continue
            overlap = float(np.count_nonzero(geom.polygon[iy1:iy2, ix1:ix2]))
            if overlap == 0:
                continue
            box_area = max(bx2 - bx1, 1.0) * max(by2 - by1, 1.0)
            if overlap >= self.settings.person_overlap * min(box_area, zone_area):
                return _PeopleCheck(True, None)
            if overlapping is None:
                overlapping = np.zeros((height, width), bool)
            overlapping[iy1:iy2, ix1:ix2] = True
        return _PeopleCheck(False, overlapping)


def _zone_geometry(
    region: PostRegion, width: int, height: int, settings: HygieneSettings
) -> _Geometry:
    crop = region.crop_box(width, height)
    factor = max(1, -(-max(crop.width, crop.height) // settings.max_side))
    cw, ch = max(1, crop.width // factor), max(1, crop.height // factor)
    # trimmed to whole multiples of the factor (at most factor - 1 pixels right and below)
    box = CropBox(
        crop.x1, crop.y1, min(width, crop.x1 + cw * factor), min(height, crop.y1 + ch * factor)
    )
    sx, sy = cw / max(box.width, 1), ch / max(box.height, 1)
    points = region.polygon_in_crop(width, height) * np.array([sx, sy], np.float32)
    polygon = np.zeros((ch, cw), np.uint8)
    cv2.fillPoly(polygon, [np.round(points).astype(np.int32)], 1)
    inner: np.ndarray = polygon
    if settings.edge_px > 0:
        k = 2 * settings.edge_px + 1
        inner = cv2.erode(polygon, np.ones((k, k), np.uint8), borderValue=0)
        if not inner.any():
            inner = polygon
    area = int(np.count_nonzero(inner))
    step = max(1, round(np.sqrt(area / 1000)))  # about a thousand samples
    grid = inner[::step, ::step].astype(bool)
    return _Geometry(
        box, (cw, ch), (sx, sy), polygon.astype(bool), inner.astype(bool), area, step, grid
    )


def _load_png(path: Path) -> np.ndarray | None:
    """A saved reference (RGB ``float32``), or ``None`` if there is none or it is unreadable."""
    if not path.is_file():
        return None
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        logger.warning("cannot read the saved hygiene reference %s; relearning", path)
        return None
    logger.info("loaded the saved hygiene reference %s", path)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.float32)
