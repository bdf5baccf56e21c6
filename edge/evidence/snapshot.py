"""Evidence snapshots: the region an alert is about, faces blurred, as a small JPEG.

:class:`SnapshotMaker` is made once per camera; :meth:`SnapshotMaker.take` is called when a
fact from video needs a snapshot (a change to off-post, 环境差, crowding starts). It crops the
region (plus a margin) out of the frame, scales it to at most ``max_width``, finds and blurs
the faces (:mod:`edge.evidence.blur`), and encodes a JPEG that fits the wire's limit.

People: the person detector always runs on the crop. Person boxes the caller already has
(a zone's tiled detection, better for small people) are *added* to what it finds, never used
instead: a caller's list may hold only some of the people in the crop (a zone keeps those
whose foot point is inside its polygon, the crop reaches beyond it), and a member of the
public left out of it would otherwise be covered by the frontal-face cascade alone.

Coordinates: regions and post polygons are in the camera's *configured* image pixels (the
hall config's ``width`` × ``height``); frames may arrive at another size and are mapped like
:class:`~edge.regions.post_region.PostRegion` does. ``Evidence.region`` is the crop actually
taken, in configured pixels.
"""

from __future__ import annotations

import base64
import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np

from edge.detectors.base import Detector
from edge.detectors.detections import Detections
from edge.evidence.blur import FaceCascade, at_posts, blur_regions, plan_blur
from edge.regions.post_region import CropBox, PostRegion
from edge.sources.frame import Frame
from hallwatch.config.models import CameraConfig
from hallwatch.config.zones import EvidenceConfig
from hallwatch.contract.evidence import EVIDENCE_MAX_B64, Evidence

logger = logging.getLogger(__name__)

#: Smallest crop, frame pixels on each side, worth a snapshot.
MIN_CROP_PX = 8
#: Tallest snapshot, pixels (the contract's limit; a very tall region is scaled to it).
MAX_HEIGHT = 4096
#: Lowest JPEG quality tried before the image is made smaller to fit the wire.
MIN_QUALITY = 40


@dataclass(frozen=True, slots=True)
class BlurredCrop:
    """The snapshot's image before encoding.

    Attributes:
        image: RGB ``uint8``, the crop scaled to the snapshot's size, faces blurred.
        box: The crop in frame pixels.
        faces_blurred: Regions blurred in it.
    """

    image: np.ndarray
    box: CropBox
    faces_blurred: int


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """JPEG of an RGB ``uint8`` image (OpenCV encodes BGR: the channels are swapped first).

    Example:
        >>> encode_jpeg(np.zeros((8, 8, 3), np.uint8), 75)[:2]
        b'\\xff\\xd8'
    """
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    )
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


@dataclass(frozen=True, slots=True)
class FittedJpeg:
    """A JPEG that fits the wire.

    Attributes:
        jpeg: The file's bytes.
        width: Its width, pixels.
        height: Its height, pixels.
        quality: The JPEG quality it was encoded at.
    """

    jpeg: bytes
    width: int
    height: int
    quality: int


def fit_jpeg(image: np.ndarray, quality: int, max_b64: int = EVIDENCE_MAX_B64) -> FittedJpeg:
    """Encode ``image`` so that its base64 fits ``max_b64`` characters.

    Lowers the quality in steps of 10 down to :data:`MIN_QUALITY`, then halves the size
    until it fits.

    Raises:
        ValueError: If even a 32-pixel image does not fit (``max_b64`` absurdly small).

    Example:
        >>> noise = np.random.default_rng(0).integers(0, 256, (400, 400, 3), dtype=np.uint8)
        >>> fit = fit_jpeg(noise, 90, max_b64=60_000)
        >>> fit.quality, fit.width, len(fit.jpeg) * 4 / 3 <= 60_000
        (40, 200, True)
    """
    q = quality
    while True:
        jpeg = encode_jpeg(image, q)
        if 4 * math.ceil(len(jpeg) / 3) <= max_b64:
            return FittedJpeg(jpeg, int(image.shape[1]), int(image.shape[0]), q)
        if q > MIN_QUALITY:
            q = max(q - 10, MIN_QUALITY)
            continue
        h, w = image.shape[:2]
        if w < 32 or h < 32:
            raise ValueError(f"a {w}x{h} JPEG does not fit {max_b64} base64 characters")
        size = (max(w // 2, 1), max(h // 2, 1))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        logger.info("snapshot too large at quality %d; halved to %dx%d", q, size[0], size[1])


class SnapshotMaker:
    """Makes evidence snapshots for one camera.

    Args:
        camera: The camera (its ``width``/``height`` are the configured image size).
        clerk_polygons: The post polygons (clerks' seats) of this camera, configured pixels.
        detector: Finds the people in the crop (on every snapshot).
        settings: The hall's ``evidence`` config.
        cascade: The face cascade (its defaults bound the search for a ≤ 640 px snapshot).

    Example:
        >>> from datetime import UTC, datetime
        >>> from hallwatch.config.models import CameraConfig
        >>> from hallwatch.config.zones import EvidenceConfig
        >>> class Nobody:
        ...     name = "nobody"
        ...     def detect(self, image): return Detections.empty()
        >>> cam = CameraConfig(id="c1", url="file.mp4", width=1280, height=720)
        >>> maker = SnapshotMaker(cam, clerk_polygons=[], detector=Nobody(),
        ...                       settings=EvidenceConfig())
        >>> frame = Frame("c1", np.zeros((360, 640, 3), np.uint8), 0.0, datetime.now(UTC))
        >>> ev = maker.take(frame, (100, 100, 300, 300))
        >>> ev.region, (ev.width, ev.height)
        ([70, 70, 330, 330], (130, 130))
    """

    def __init__(
        self,
        camera: CameraConfig,
        *,
        clerk_polygons: list[list[tuple[float, float]]],
        detector: Detector,
        settings: EvidenceConfig,
        cascade: FaceCascade | None = None,
    ) -> None:
        self.camera = camera
        self.settings = settings
        self._config_size = (camera.width, camera.height)
        self._clerks = [
            PostRegion(f"post-{i}", polygon, self._config_size)
            for i, polygon in enumerate(clerk_polygons)
        ]
        self._detector = detector
        self._cascade = cascade or FaceCascade()

    def take(
        self,
        frame: Frame,
        region: tuple[float, float, float, float],
        *,
        margin: float = 0.15,
        people: Detections | None = None,
    ) -> Evidence | None:
        """A snapshot of ``region`` of ``frame``, faces blurred.

        Args:
            frame: The frame the fact was decided on.
            region: ``(x1, y1, x2, y2)`` in configured-image pixels.
            margin: Fraction of the region's width/height added on each side (clamped to
                the image).
            people: Person boxes in frame pixels if the caller has them (e.g. a zone's
                tiled detection): blurred in addition to the people the detector finds on
                the crop, which runs in any case.

        Returns:
            The evidence, or ``None`` when snapshots are disabled or the region is unusable
            (logged).
        """
        if not self.settings.enabled:
            return None
        box = self._crop_box(frame, region, margin)
        if box is None:
            return None
        blurred = self.blurred_crop(frame, box, people)
        fitted = fit_jpeg(blurred.image, self.settings.jpeg_quality)
        sx, sy = self.camera.width / frame.width, self.camera.height / frame.height
        configured = [
            round(box.x1 * sx),
            round(box.y1 * sy),
            min(round(box.x2 * sx), self.camera.width),
            min(round(box.y2 * sy), self.camera.height),
        ]
        return Evidence(
            camera=self.camera.id,
            taken=frame.wall,
            region=configured,
            width=fitted.width,
            height=fitted.height,
            faces_blurred=blurred.faces_blurred,
            jpeg=base64.b64encode(fitted.jpeg).decode("ascii"),
        )

    def blurred_crop(
        self, frame: Frame, box: CropBox, people: Detections | None = None
    ) -> BlurredCrop:
        """Crop ``box`` (frame pixels), scale it to ``max_width`` and blur the faces in it.

        Args:
            frame: The frame.
            box: The crop, frame pixels, inside the frame.
            people: The caller's person boxes in frame pixels, added to the detector's.

        Returns:
            The blurred, scaled crop.
        """
        crop = frame.image[box.y1 : box.y2, box.x1 : box.x2]
        people = self._people_in_crop(frame, box, crop, people)
        scale = min(1.0, self.settings.max_width / box.width, MAX_HEIGHT / box.height)
        if scale < 1.0:
            size = (max(round(box.width * scale), 1), max(round(box.height * scale), 1))
            image = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
        else:
            image = np.ascontiguousarray(crop)
        sx, sy = image.shape[1] / box.width, image.shape[0] / box.height
        people = Detections(
            people.xyxy * np.array([sx, sy, sx, sy], np.float32),
            people.confidence,
            people.class_id,
        )
        polygons = []
        if self.settings.show_clerks:
            for post in self._clerks:
                pb = post.crop_box(frame.width, frame.height)
                pts = post.polygon_in_crop(frame.width, frame.height)
                offset = np.array([pb.x1 - box.x1, pb.y1 - box.y1], np.float32)
                polygons.append((pts + offset) * np.array([sx, sy], np.float32))
        plan = plan_blur(
            people,
            self._cascade.find(image),
            clerk_polygons=polygons,
            show_clerks=self.settings.show_clerks,
        )
        logger.debug(
            "snapshot of %s: %d people, %d regions blurred, %d clerk regions kept",
            self.camera.id,
            len(people),
            len(plan.blur),
            len(plan.kept),
        )
        return BlurredCrop(blur_regions(image, plan.blur), box, len(plan.blur))

    def _people_in_crop(
        self, frame: Frame, box: CropBox, crop: np.ndarray, people: Detections | None
    ) -> Detections:
        """Person boxes in the crop's pixels: the detector's on the crop, plus the caller's.

        Both sets are kept whole (one person found twice gets two head regions, merged when
        blurred: :func:`~edge.evidence.blur.merge_same_heads`). With ``show_clerks`` each post
        overlapping the crop is also looked at in its own crop, as the post watcher does: in
        the crop of a large region a seated clerk is small for the detector, and a clerk it
        misses would be blurred.
        """
        found = [self._detector.detect(np.ascontiguousarray(crop))]
        if people is not None:
            found.append(people.shifted(-box.x1, -box.y1))
        if self.settings.show_clerks:
            for post in self._clerks:
                pb = post.crop_box(frame.width, frame.height)
                overlap = min(pb.x2, box.x2) > max(pb.x1, box.x1) and min(pb.y2, box.y2) > max(
                    pb.y1, box.y1
                )
                if not overlap or pb.width < MIN_CROP_PX or pb.height < MIN_CROP_PX:
                    continue
                seen = self._detector.detect(np.ascontiguousarray(post.crop(frame.image)))
                clerks = seen[at_posts(seen, [post.polygon_in_crop(frame.width, frame.height)])]
                found.append(clerks.shifted(pb.x1 - box.x1, pb.y1 - box.y1))
        return Detections(
            np.concatenate([d.xyxy for d in found]),
            np.concatenate([d.confidence for d in found]),
            np.concatenate([d.class_id for d in found]),
        )

    def _crop_box(
        self, frame: Frame, region: tuple[float, float, float, float], margin: float
    ) -> CropBox | None:
        """The region plus margin in frame pixels, clamped; ``None`` (logged) if unusable."""
        try:
            x1, y1, x2, y2 = (float(v) for v in region)
        except (TypeError, ValueError):
            logger.warning("snapshot of %s: bad region %r", self.camera.id, region)
            return None
        finite = all(math.isfinite(v) for v in (x1, y1, x2, y2, margin))
        if not finite or x2 <= x1 or y2 <= y1 or margin < 0:
            logger.warning(
                "snapshot of %s: bad region %r (margin %r)", self.camera.id, region, margin
            )
            return None
        polygon = [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
        box = PostRegion("evidence", polygon, self._config_size, margin=margin).crop_box(
            frame.width, frame.height
        )
        if box.width < MIN_CROP_PX or box.height < MIN_CROP_PX:
            logger.warning(
                "snapshot of %s: region %r is %dx%d frame pixels after clamping to the "
                "%dx%d frame; none taken",
                self.camera.id,
                region,
                box.width,
                box.height,
                frame.width,
                frame.height,
            )
            return None
        return box
