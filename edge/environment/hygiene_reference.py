"""The clean reference of a hygiene zone: where it comes from, how it drifts, where it is kept.

A zone's :class:`CleanReference` is, by precedence:

- **operator**: a clean frame of the camera set by an operator (any size: it is scaled to
  the frames like the polygon); never saved;
- **saved**: a PNG of the zone at compare scale written by an earlier run
  (``reference_path``), loaded at start so that a restart does not relearn while litter
  lies there; rescaled to the frames' compare size (relearned if its shape differs);
- **learned**: the zone's look once it stayed unchanged and person-free for ``learn_s``.
  The reference keeps the *candidate* (the look later looks are matched against, and since
  when); the watcher (:mod:`edge.environment.hygiene`) decides when to learn it, from
  :meth:`CleanReference.candidate_age` and its people check.

**Drift.** While the zone is good and nearly identical (score ≤ ``adapt_below``), the
unchanged pixels of the reference move towards the current look by ``adapt_rate`` per
look (:meth:`CleanReference.adapt`). A learned reference is saved to ``reference_path``
(atomically) when learned and then at most every ``save_interval_s`` as it adapts.

The images and their comparison are in :mod:`edge.environment.zone_image`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from edge.environment.zone_image import Difference, ZoneGeometry, ZoneLook, difference, downscale

logger = logging.getLogger(__name__)


def check_clean_frame(image: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``image`` can be an operator's reference (RGB ``uint8``)."""
    if image.ndim != 3 or image.dtype != np.uint8:
        raise ValueError("reference must be an RGB uint8 image")


class CleanReference:
    """The clean reference of one zone (see the module docstring).

    Args:
        zone: Zone id (for the logs).
        operator: An operator-set clean frame of the camera, RGB ``uint8``, any size. Wins
            over a saved reference.
        path: Where a learned reference is saved (PNG of the zone at compare scale) and
            loaded from at start (only without ``operator``).
        blur_px: Blur of the operator's frame at compare scale, as for each look.
        pixel_delta: Level difference that makes a pixel differ from the candidate.
        steady_below: A look matches the candidate while its score is at most this.
        adapt_rate: Fraction of the way to a nearly identical look per look (0: never).
        adapt_below: "Nearly identical": score at or below this fraction.
        save_interval_s: A learned reference that adapts is saved at most this often.
    """

    def __init__(
        self,
        zone: str,
        *,
        operator: np.ndarray | None,
        path: Path | None,
        blur_px: int,
        pixel_delta: int,
        steady_below: float,
        adapt_rate: float,
        adapt_below: float,
        save_interval_s: float,
    ) -> None:
        if operator is not None:
            check_clean_frame(operator)
        self.zone = zone
        self._operator = operator
        self._path = path
        self._blur_px = blur_px
        self._pixel_delta = pixel_delta
        self._steady_below = steady_below
        self._adapt_rate = adapt_rate
        self._adapt_below = adapt_below
        self._save_interval_s = save_interval_s
        self._look: ZoneLook | None = None
        self._source: str | None = None
        self._saved: np.ndarray | None = None
        self._saved_pts = -np.inf
        if operator is None and path is not None:
            self._saved = _load_png(path)
        self._candidate: ZoneLook | None = None
        self._candidate_since = 0.0

    @property
    def look(self) -> ZoneLook | None:
        """The reference at the last frame size's compare scale; ``None`` until there is one."""
        return self._look

    @property
    def source(self) -> str | None:
        """``"operator"``, ``"saved"`` or ``"learned"``; ``None`` until there is one."""
        return self._source

    @property
    def available(self) -> bool:
        """Whether a reference is in use (or loaded and waiting for the first look)."""
        return self._look is not None or self._operator is not None or self._saved is not None

    def set_operator(self, image: np.ndarray) -> None:
        """Use ``image`` (an operator's clean frame, RGB ``uint8``) from the next look."""
        check_clean_frame(image)
        self._operator, self._look, self._saved = image, None, None

    def restart_learning(self) -> None:
        """Forget the candidate: learning starts again from the next look."""
        self._candidate = None
        self._candidate_since = 0.0

    def fit(self, width: int, height: int, geom: ZoneGeometry) -> None:
        """Build, load or rescale the reference for frames of this size, if there is one."""
        cw, ch = geom.size
        if self._look is not None and self._look.image.shape[:2] == (ch, cw):
            return
        if self._operator is not None:
            image = self._operator
            if image.shape[:2] != (height, width):
                image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
            self._look = ZoneLook.of(downscale(image, geom, self._blur_px))
            self._source = "operator"
            return
        source = self._look.image if self._look is not None else self._saved
        if source is None:
            return
        have, want = source.shape[1] / source.shape[0], cw / ch
        if abs(have - want) > 0.03 * want:
            logger.warning("zone %s: saved reference has another shape; relearning", self.zone)
            self._look = self._saved = None
            return
        resized = cv2.resize(source, (cw, ch), interpolation=cv2.INTER_AREA)
        self._look = ZoneLook.of(resized.astype(np.float32))
        self._source = self._source or "saved"
        self._saved = None

    def candidate_age(self, cur: np.ndarray, pts: float, geom: ZoneGeometry) -> float | None:
        """How long the zone has looked like the candidate, with ``cur`` seen at ``pts``.

        Returns:
            Seconds since the candidate was taken; ``None`` when ``cur`` does not match it
            (or there was none), and ``cur`` has become the candidate.
        """
        cand = self._candidate
        if (
            cand is None
            or cand.image.shape != cur.shape
            or difference(cur, cand, geom, self._pixel_delta).score > self._steady_below
        ):
            self._candidate, self._candidate_since = ZoneLook.of(cur), pts
            return None
        return pts - self._candidate_since

    def learn(self, cur: np.ndarray, pts: float) -> None:
        """Make ``cur`` (steady and person-free long enough) the learned reference; save it."""
        self._look, self._source = ZoneLook.of(cur), "learned"
        logger.info(
            "zone %s: learned a clean reference (unchanged and person-free for %.0f s)",
            self.zone,
            pts - self._candidate_since,
        )
        self._save(pts)

    def adapt(self, diff: Difference, pts: float) -> None:
        """Move the unchanged pixels towards a nearly identical look (call only while good)."""
        ref = self._look
        if ref is None or self._adapt_rate == 0:
            return
        if diff.score > self._adapt_below:
            return
        image = ref.image.copy()
        unchanged = (~diff.changed).view(np.uint8)
        cv2.accumulateWeighted(diff.normalised, image, self._adapt_rate, mask=unchanged)
        self._look = ZoneLook.of(image)
        if pts - self._saved_pts >= self._save_interval_s:
            self._save(pts)

    def _save(self, pts: float) -> None:
        """Write a learned reference to the path (atomically); never raises."""
        if self._path is None or self._look is None or self._source != "learned":
            return
        self._saved_pts = pts
        path = self._path
        image = np.clip(self._look.image + 0.5, 0, 255).astype(np.uint8)
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
