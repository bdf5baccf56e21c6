"""Evidence snapshots: a JPEG of the region an alert is about, faces of the public blurred."""

from __future__ import annotations

import base64
import binascii

from pydantic import AwareDatetime, Field, field_validator

from hallwatch.contract._base import ID_PATTERN, _Model

EVIDENCE_MAX_B64 = 400_000
"""Largest snapshot accepted on the wire: base64 characters (~300 KB of JPEG)."""


class Evidence(_Model):
    """A snapshot sent with a fact from video (off-post, 环境差, crowding).

    The edge crops the region of the camera image the fact is about, blurs the faces of
    the public in it (and the clerks' too unless the hall's config allows them to stay
    visible), scales it down and encodes it as a JPEG.

    Example:
        >>> from datetime import UTC, datetime
        >>> ev = Evidence(camera="cam1", taken=datetime(2026, 11, 2, tzinfo=UTC),
        ...               region=[0, 0, 4, 4], width=4, height=4, faces_blurred=0,
        ...               jpeg=base64.b64encode(b"\\xff\\xd8\\xff\\xd9").decode())
        >>> ev.image_bytes()[:2]
        b'\\xff\\xd8'
    """

    camera: str = Field(pattern=ID_PATTERN, description="Camera the snapshot is from.")
    taken: AwareDatetime = Field(description="When the frame was received (UTC).")
    region: list[int] = Field(
        min_length=4,
        max_length=4,
        description="x1, y1, x2, y2 of the snapshot in the camera's configured image pixels.",
    )
    width: int = Field(ge=1, le=4096, description="Width of the JPEG, pixels.")
    height: int = Field(ge=1, le=4096, description="Height of the JPEG, pixels.")
    faces_blurred: int = Field(ge=0, le=10_000, description="Face regions blurred in it.")
    jpeg: str = Field(
        min_length=4, max_length=EVIDENCE_MAX_B64, description="The JPEG, base64 (standard)."
    )

    @field_validator("jpeg")
    @classmethod
    def _is_jpeg(cls, value: str) -> str:
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("not base64") from None
        if not data.startswith(b"\xff\xd8"):
            raise ValueError("not a JPEG (no SOI marker)")
        return value

    def image_bytes(self) -> bytes:
        """The JPEG file's bytes."""
        return base64.b64decode(self.jpeg)
