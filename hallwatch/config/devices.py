"""Config of the hall's devices (设备运转): what each is and how the edge knows it is alive.

Cameras are devices already (their watchdog reports them); every other device is listed
under ``devices`` with exactly one probe: MQTT heartbeats on a topic, an HTTP URL that
must answer, a TCP port that must accept, or the traffic of one of the edge's feeds (the
queue machine, the evaluators). A device with no sign of life for ``offline_after_s`` is
offline.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, field_validator, model_validator

from hallwatch.config.errors import _Base
from hallwatch.contract import ID_PATTERN, DeviceKind


class FeedName(StrEnum):
    """The edge's device feeds whose traffic shows a device alive."""

    QUEUE = "queue"
    EVALUATORS = "evaluators"


class DeviceProbe(_Base):
    """How the edge knows a device is alive: exactly one of these."""

    mqtt_topic: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Any message on this MQTT topic (filter) is a heartbeat ({hall} replaced).",
    )
    http_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        max_length=500,
        description="GET must answer 2xx/3xx; polled every interval_s.",
        json_schema_extra={"env_expand": True},
    )
    tcp: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9.\-\[\]:]+:[0-9]{1,5}$",
        description='"host:port" that must accept a connection; polled every interval_s.',
    )
    feed: FeedName | None = Field(
        default=None, description="queue or evaluators: that feed's messages are heartbeats."
    )
    interval_s: float = Field(
        default=30, ge=5, le=3600, description="Polling interval of http_url and tcp probes."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> DeviceProbe:
        given = [n for n in ("mqtt_topic", "http_url", "tcp", "feed") if getattr(self, n)]
        if len(given) != 1:
            what = "none" if not given else ", ".join(given)
            raise ValueError(f"give exactly one of mqtt_topic, http_url, tcp or feed (got {what})")
        return self


class DeviceConfig(_Base):
    """One device of the hall, other than a camera."""

    id: str = Field(pattern=ID_PATTERN, description="Device id, unique among devices and cameras.")
    name: str = Field(min_length=1, max_length=100, description="Display name, e.g. 1号自助终端.")
    kind: DeviceKind = Field(
        description="queue_machine, evaluator, kiosk, screen, computer, machine_room, lift or "
        "other (cameras are listed under cameras)."
    )
    probe: DeviceProbe | None = Field(
        default=None, description="How its signs of life are seen (required)."
    )
    offline_after_s: float = Field(
        default=300, ge=10, le=86400, description="No sign of life this long: offline."
    )

    @field_validator("kind")
    @classmethod
    def _not_a_camera(cls, value: DeviceKind) -> DeviceKind:
        if value is DeviceKind.CAMERA:
            raise ValueError("cameras are listed under cameras (their watchdog reports them)")
        return value

    @model_validator(mode="after")
    def _has_probe(self) -> DeviceConfig:
        if self.probe is None:
            raise ValueError(
                f"device {self.id!r} has no probe: give probe.mqtt_topic, probe.http_url, "
                "probe.tcp or probe.feed, so the edge can tell whether it is alive"
            )
        return self
