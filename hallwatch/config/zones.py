"""Config of the hall's zones (区域) and of how the edge watches them.

A zone is a polygon in one camera's image. What the edge does with it follows from its
kind, and each can be switched explicitly:

- ``window_public`` (窗口公共区域): the public side of a window; its hygiene is graded
  环境好 / 环境差 against a clean reference of the zone;
- ``waiting_area`` (候办区), ``self_service`` (自助服务区), ``entrance`` (出入口): the
  people in it are counted (a gauge every ``environment.occupancy_interval_s``), with an
  optional crowding threshold;
- a zone with a ``line`` counts the people crossing it, in and out of the hall.

``environment`` holds the tuning shared by all zones; ``evidence`` says how snapshots for
alerts from video are made.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from hallwatch.config.errors import _Base
from hallwatch.contract import ID_PATTERN

Point = tuple[float, float]


class ZoneKind(StrEnum):
    """What a zone is."""

    WINDOW_PUBLIC = "window_public"
    """窗口公共区域: the public side of a service window (counter, floor in front)."""
    WAITING_AREA = "waiting_area"
    """候办区."""
    SELF_SERVICE = "self_service"
    """自助服务区."""
    ENTRANCE = "entrance"
    """出入口."""
    OTHER = "other"


COUNTED_BY_DEFAULT = frozenset({ZoneKind.WAITING_AREA, ZoneKind.SELF_SERVICE, ZoneKind.ENTRANCE})


def polygon_area(points: list[Point]) -> float:
    """Area enclosed by a polygon (shoelace formula), in square pixels.

    >>> polygon_area([(0, 0), (4, 0), (4, 3)])
    6.0
    """
    area2 = 0.0
    for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1], strict=True):
        area2 += x1 * y2 - x2 * y1
    return abs(area2) / 2


def point_in_polygon(point: Point, polygon: list[Point]) -> bool:
    """Whether ``point`` lies inside ``polygon`` (even-odd rule).

    >>> triangle = [(0, 0), (4, 0), (4, 3)]
    >>> point_in_polygon((3, 1), triangle), point_in_polygon((1, 2), triangle)
    (True, False)
    """
    x, y = point
    inside = False
    for (x1, y1), (x2, y2) in zip(polygon, polygon[1:] + polygon[:1], strict=True):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def require_area(points: list[Point]) -> list[Point]:
    """``points`` if they enclose at least a square pixel; else a clear ``ValueError``."""
    if polygon_area(points) < 1.0:
        raise ValueError(
            "polygon encloses less than one square pixel; points are pixel "
            "coordinates of the camera's width × height image, not fractions"
        )
    return points


class EntranceLine(_Base):
    """A line people cross to enter or leave the hall."""

    points: list[Point] = Field(
        min_length=2, max_length=2, description="[[x1, y1], [x2, y2]] in the camera's pixels."
    )
    inside: Literal["left", "right"] = Field(
        description="Side of the line, looking from its first point to its second, that is "
        "inside the hall: crossing onto it is 'in'."
    )

    @field_validator("points")
    @classmethod
    def _has_length(cls, value: list[Point]) -> list[Point]:
        (x1, y1), (x2, y2) = value
        if (x2 - x1) ** 2 + (y2 - y1) ** 2 < 16:
            raise ValueError("the line's two points must be at least 4 pixels apart")
        return value


class HygieneClassifierConfig(_Base):
    """A hall's own trained hygiene classifier (an ONNX plugin on the detector interface)."""

    kind: str = Field(
        default="hygiene_onnx",
        min_length=1,
        max_length=64,
        description="Registered detector plugin that grades a zone crop.",
    )
    model_path: Path = Field(description="The classifier's model file.")
    mode: Literal["replace", "confirm"] = Field(
        default="confirm",
        description="replace: the classifier alone decides; confirm: 环境差 only when both "
        "the reference difference and the classifier say so.",
    )
    threshold: float = Field(
        default=0.5, gt=0, lt=1, description="Probability from which the zone is dirty."
    )
    input_size: tuple[int, int] = Field(
        default=(224, 224),
        description="[width, height] the model takes (a fixed size in the model wins).",
    )
    output: Literal["probability", "logits"] = Field(
        default="probability",
        description="probability: one value (or per-class probabilities); logits: per-class "
        "scores, softmaxed.",
    )
    dirty_index: int = Field(
        default=1, ge=0, le=63, description="Index of the dirty class in a per-class output."
    )
    mean: tuple[float, float, float] = Field(
        default=(0.0, 0.0, 0.0), description="Per-channel mean subtracted from RGB in [0, 1]."
    )
    std: tuple[float, float, float] = Field(
        default=(1.0, 1.0, 1.0), description="Per-channel divisor after the mean."
    )

    @field_validator("input_size")
    @classmethod
    def _sane_size(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not all(16 <= v <= 2048 for v in value):
            raise ValueError("each of width and height must be 16…2048 pixels")
        return value

    @field_validator("std")
    @classmethod
    def _no_zero_std(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(v <= 0 for v in value):
            raise ValueError("std values must be > 0")
        return value


class ZoneConfig(_Base):
    """区域: a polygon of one camera's image that the edge watches."""

    id: str = Field(pattern=ID_PATTERN, description="Zone id, unique among zones.")
    name: str = Field(min_length=1, max_length=100, description="Display name, e.g. 候办区.")
    kind: ZoneKind = Field(
        description="window_public, waiting_area, self_service, entrance or other."
    )
    camera: str = Field(pattern=ID_PATTERN, description="Id of the camera that sees it.")
    window: str | None = Field(
        default=None, min_length=1, max_length=32, description="Window whose public area it is."
    )
    polygon: list[Point] = Field(
        min_length=3,
        max_length=64,
        description="[x, y] pixel points in the camera's width × height image.",
    )
    hygiene: bool | None = Field(
        default=None,
        description="Grade its hygiene (环境好/差); default: true for window_public only.",
    )
    reference_image: Path | None = Field(
        default=None,
        description="Operator-set clean frame of the camera (PNG/JPEG); else learned.",
    )
    classifier: HygieneClassifierConfig | None = Field(
        default=None, description="Optional trained classifier for its hygiene."
    )
    count_people: bool | None = Field(
        default=None,
        description="Count the people in it; default: true for waiting_area, self_service "
        "and entrance.",
    )
    crowding_at: int | None = Field(
        default=None, ge=1, le=10_000, description="People count from which it is crowded."
    )
    line: EntranceLine | None = Field(
        default=None, description="Count the people crossing this line (flow in/out)."
    )

    @field_validator("window", mode="before")
    @classmethod
    def _window_str(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("polygon")
    @classmethod
    def _has_area(cls, value: list[Point]) -> list[Point]:
        return require_area(value)

    @model_validator(mode="after")
    def _defaults(self) -> ZoneConfig:
        if self.hygiene is None:
            self.hygiene = self.kind is ZoneKind.WINDOW_PUBLIC
        if self.count_people is None:
            self.count_people = self.kind in COUNTED_BY_DEFAULT
        if self.crowding_at is not None and not self.count_people:
            raise ValueError("crowding_at needs count_people: true")
        if not self.hygiene and (self.reference_image is not None or self.classifier is not None):
            raise ValueError("reference_image and classifier need hygiene: true")
        if self.line is not None:
            (x1, y1), (x2, y2) = self.line.points
            if not point_in_polygon(((x1 + x2) / 2, (y1 + y2) / 2), self.polygon):
                raise ValueError(
                    "the line's midpoint is outside the zone's polygon: only people in the "
                    "zone are tracked, so the line must cross it"
                )
        return self

    @property
    def grades_hygiene(self) -> bool:
        """Whether the edge grades this zone's hygiene."""
        return bool(self.hygiene)

    @property
    def counts_people(self) -> bool:
        """Whether the edge counts the people in it."""
        return bool(self.count_people)


class EnvironmentConfig(_Base):
    """Tuning of the zones' watch (hygiene, occupancy, flow)."""

    occupancy_interval_s: float = Field(
        default=60, ge=5, le=3600, description="Interval of the occupancy gauge."
    )
    count_every_s: float = Field(
        default=2.0,
        ge=0.1,
        le=600,
        description="A counted zone without a line is counted at most this often (a wide "
        "zone costs several detector calls).",
    )
    flow_interval_s: float = Field(
        default=300,
        ge=10,
        le=3600,
        description="Interval of the edge's flow counts (the aggregator sums hours and days).",
    )
    hygiene_bad_after_s: float = Field(
        default=300, ge=10, le=86400, description="A difference this persistent is 环境差."
    )
    hygiene_good_after_s: float = Field(
        default=60, ge=1, le=86400, description="Clear this long, the zone is 环境好 again."
    )
    hygiene_threshold: float = Field(
        default=0.03, gt=0, lt=1, description="Fraction of the zone that must differ."
    )
    hygiene_pixel_delta: int = Field(
        default=30, ge=5, le=200, description="Grey-level difference that counts for a pixel."
    )
    hygiene_learn_s: float = Field(
        default=30,
        ge=1,
        le=3600,
        description="Person-free and unchanged this long, a zone's look is its clean reference.",
    )
    reference_dir: Path = Field(
        default=Path("/var/lib/hallwatch/{hall}/hygiene"),
        description="Where learned clean references are kept across restarts ({hall} replaced).",
    )

    @model_validator(mode="after")
    def _counted_each_interval(self) -> EnvironmentConfig:
        if self.count_every_s > self.occupancy_interval_s:
            raise ValueError(
                f"count_every_s ({self.count_every_s:g}) must not exceed occupancy_interval_s "
                f"({self.occupancy_interval_s:g}): every interval needs a count"
            )
        return self


class EvidenceConfig(_Base):
    """Snapshots sent with the facts behind alerts from video."""

    enabled: bool = Field(default=True, description="Send snapshots at all.")
    show_clerks: bool = Field(
        default=False,
        description="Leave clerks inside post polygons unblurred (where the hall allows it); "
        "the public is always blurred.",
    )
    max_width: int = Field(default=640, ge=160, le=1920, description="Widest snapshot, pixels.")
    jpeg_quality: int = Field(default=75, ge=30, le=95, description="JPEG quality.")
