"""Evidence snapshots at the edge: a JPEG of an alert's region, faces of the public blurred.

Example:
    >>> from edge.evidence import SnapshotMaker, FaceCascade
    >>> FaceCascade().min_size
    20
"""

from __future__ import annotations

from edge.evidence.blur import (
    BlurPlan,
    FaceCascade,
    FaceRegion,
    at_posts,
    blur_regions,
    head_regions,
    plan_blur,
)
from edge.evidence.snapshot import BlurredCrop, FittedJpeg, SnapshotMaker, encode_jpeg, fit_jpeg

__all__ = [
    "BlurPlan",
    "BlurredCrop",
    "FaceCascade",
    "FaceRegion",
    "FittedJpeg",
    "SnapshotMaker",
    "at_posts",
    "blur_regions",
    "encode_jpeg",
    "fit_jpeg",
    "head_regions",
    "plan_blur",
]
