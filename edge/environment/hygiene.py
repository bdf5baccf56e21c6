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

**Measurement** (:mod:`edge.environment.zone_image`): the zone's crop is downscaled to at
most ``max_side`` pixels (one look costs well under 1 ms), the light is normalised
against the reference (a whole-scene brightness change or a mild colour cast is no
difference), and the score is the fraction of the zone's area whose pixels differ by more
than ``pixel_delta`` (away from the polygon's edge); dirty above ``threshold``.

**People.** A person is *in the zone* when their box overlaps the zone polygon by at least
``person_overlap`` of the smaller of the box and the zone. The caller's ``people()`` is
called only when it matters: when the zone differs from its reference (or when a
reference is about to be learned, or in classifier-replace mode before each grading).
While a person is in the zone, and for ``person_hold_s`` after last seeing one, there is
no measurement: the state does not change and the running clock is neither advanced to
``bad`` nor reset. A dirt clock started before the person came keeps its start, so litter
seen before and after a visit is dated from when it was first seen. People overlapping
the zone less than that are masked out of the measurement.

**Reference** (:mod:`edge.environment.hygiene_reference`): an operator's frame wins over a
saved one; while ``good`` and nearly identical (score ≤ ``adapt_below``), the reference
drifts towards the current look by ``adapt_rate`` per look, so slow changes of the hall's
light are absorbed. A learned reference is saved to ``reference_path`` when learned and
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

import numpy as np

from edge.detectors.base import Detector
from edge.detectors.detections import Detections
from edge.detectors.hygiene_classifier import HYGIENE_DIRTY_CLASS
from edge.environment.hygiene_reference import CleanReference
from edge.environment.zone_image import (
    Difference,
    PeopleCheck,
    ZoneGeometry,
    difference,
    downscale,
    people_in_zone,
    zone_geometry,
)
from edge.regions.post_region import CropBox, PostRegion
from edge.sources.frame import Frame
from hallwatch.contract import HygieneMethod, HygieneState

logger = logging.getLogger(__name__)


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
        self.zone = zone
        self.region = region
        self.settings = settings
        self._reference = CleanReference(
            zone,
            operator=reference,
            path=reference_path,
            blur_px=settings.blur_px,
            pixel_delta=settings.pixel_delta,
            steady_below=settings.threshold * settings.clear_ratio,
            adapt_rate=settings.adapt_rate,
            adapt_below=settings.adapt_below,
            save_interval_s=settings.save_interval_s,
        )
        self._classifier = classifier
        self._replace = classifier is not None and classifier_mode == "replace"
        self._classifier_threshold = classifier_threshold
        if classifier is None:
            self._method = HygieneMethod.REFERENCE
        else:
            self._method = HygieneMethod.CLASSIFIER if self._replace else HygieneMethod.BOTH
        self._geometries: dict[tuple[int, int], ZoneGeometry] = {}
        self._counts: dict[str, int] = {f.name: 0 for f in fields(HygieneStats)}
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
        return self._reference.available

    @property
    def reference_source(self) -> str | None:
        """``"operator"``, ``"saved"`` or ``"learned"``; ``None`` until there is one."""
        return self._reference.source

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
        self._reference.restart_learning()
        self._person_until = -np.inf
        self._verdict: float | None = None
        self._verdict_pts = -np.inf

    def set_reference(self, image: np.ndarray) -> None:
        """Use ``image`` (an operator's clean frame, RGB ``uint8``) as the reference now."""
        self._reference.set_operator(image)
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
        cur = downscale(frame.image, geom, self.settings.blur_px)
        self._reference.fit(frame.width, frame.height, geom)
        if self._reference.look is None:
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
        return geom.frame_box(self._dirty_rect, frame.width, frame.height)

    # --- looks ----------------------------------------------------------------------------

    def _look_reference(
        self, frame: Frame, cur: np.ndarray, geom: ZoneGeometry, ask: _People
    ) -> HygieneEvent | None:
        ref = self._reference.look
        assert ref is not None
        if frame.pts < self._person_until:
            self._counts["occluded"] += 1
            return None
        delta = self.settings.pixel_delta
        diff = difference(cur, ref, geom, delta)
        if self._is_clean(diff.score):
            self._verdict = None  # the next difference gets a fresh classifier verdict
            if self._state is HygieneState.GOOD:
                self._reference.adapt(diff, frame.pts)
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
            diff = difference(cur, ref, geom, delta, exclude=check.overlapping)
            if self._is_clean(diff.score):
                return self._measured(False, diff.score, frame.pts, diff)
        if self._classifier is not None and self._grade(frame, geom) < self._classifier_threshold:
            return self._measured(False, diff.score, frame.pts, diff)
        return self._measured(True, diff.score, frame.pts, diff)

    def _look_classifier(
        self, frame: Frame, cur: np.ndarray, geom: ZoneGeometry, ask: _People
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
        ref = self._reference.look
        if ref is not None:
            diff = difference(cur, ref, geom, self.settings.pixel_delta)
        return self._measured(p >= self._classifier_threshold, p, frame.pts, diff)

    def _grade(self, frame: Frame, geom: ZoneGeometry) -> float:
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
        self, dirty: bool, score: float, pts: float, diff: Difference | None
    ) -> HygieneEvent | None:
        self._score = score
        self._counts["dirty" if dirty else "clean"] += 1
        self._dirty_rect = diff.changed_rect() if dirty and diff is not None else None
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

    def _learn(self, pts: float, cur: np.ndarray, geom: ZoneGeometry, ask: _People) -> None:
        """Learn a reference from a zone unchanged and person-free for ``learn_s``."""
        self._counts["learning"] += 1
        s = self.settings
        age = self._reference.candidate_age(cur, pts, geom)
        if age is None or age < s.learn_s or pts < self._person_until:
            return
        check = self._check_people(ask(), geom)
        if check.in_zone or check.overlapping is not None:
            self._person_until = pts + s.person_hold_s
            return
        self._reference.learn(cur, pts)

    # --- geometry -------------------------------------------------------------------------

    def _geometry(self, width: int, height: int) -> ZoneGeometry:
        key = (width, height)
        if key not in self._geometries:
            self._geometries[key] = zone_geometry(
                self.region,
                width,
                height,
                max_side=self.settings.max_side,
                edge_px=self.settings.edge_px,
            )
        return self._geometries[key]

    def _check_people(self, people: Detections, geom: ZoneGeometry) -> PeopleCheck:
        """Whether a person is in the zone; else the boxes of those touching it."""
        return people_in_zone(people, geom, self.settings.person_overlap)
