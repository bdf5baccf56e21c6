"""The wire contract between edge workers and the aggregator.

One module, imported by both sides: MQTT topics, the fact envelope and the payload models.
Every message carries a schema version; a receiver rejects versions it does not know.
``docs/protocol.md`` shows the topic table and an example of every payload.

Example:
    >>> from datetime import UTC, datetime
    >>> fact = PresenceFact(hall="h1", source="edge-h1", body=PresenceBody(
    ...     camera="cam1", post="w1", state=PostState.OFF_POST,
    ...     since=datetime(2026, 11, 2, 2, 0, tzinfo=UTC)))
    >>> fact_topic(fact.hall, fact.kind)
    'hallwatch/v1/h1/facts/presence'
    >>> parse_fact(encode(fact)) == fact
    True
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, field_validator
from ulid import ULID

SCHEMA_VERSION = 1
TOPIC_ROOT = "hallwatch/v1"
ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
"""Hall, camera, post and source ids: they appear in MQTT topics and URLs."""

FACTS_FILTER = f"{TOPIC_ROOT}/+/facts/+"
EDGE_STATUS_FILTER = f"{TOPIC_ROOT}/+/edge/status"
DEFAULT_SHARE_GROUP = "aggregators"


def fact_topic(hall: str, kind: str) -> str:
    """Topic an edge publishes a fact of ``kind`` on (QoS 1)."""
    return f"{TOPIC_ROOT}/{hall}/facts/{kind}"


def edge_status_topic(hall: str) -> str:
    """Retained topic holding an edge's ``online``/``offline`` state (its MQTT will)."""
    return f"{TOPIC_ROOT}/{hall}/edge/status"


def alerts_topic(hall: str) -> str:
    """Topic the aggregator publishes a hall's alerts on, for hall managers (QoS 1)."""
    return f"{TOPIC_ROOT}/{hall}/alerts"


def shared_subscription(topic_filter: str, group: str = DEFAULT_SHARE_GROUP) -> str:
    """MQTT 5 shared subscription, so aggregator replicas split the load.

    >>> shared_subscription(FACTS_FILTER)
    '$share/aggregators/hallwatch/v1/+/facts/+'
    """
    return f"$share/{group}/{topic_filter}"


def hall_of_topic(topic: str) -> str | None:
    """The hall id in a HallWatch topic, or ``None`` for a foreign topic.

    >>> hall_of_topic("hallwatch/v1/h1/facts/presence")
    'h1'
    """
    parts = topic.split("/")
    if len(parts) < 4 or "/".join(parts[:2]) != TOPIC_ROOT:
        return None
    return parts[2]


def new_id() -> str:
    """A new unique, time-sortable id (ULID, 26 characters)."""
    return str(ULID())


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class FactKind(StrEnum):
    """Kinds of fact an edge sends. Later issues add occupancy, hygiene, ticket, rating."""

    PRESENCE = "presence"
    DEVICE = "device"
    STATS = "stats"


class PostState(StrEnum):
    """在岗在位 / 离岗."""

    ON_POST = "on_post"
    OFF_POST = "off_post"


class DeviceKind(StrEnum):
    CAMERA = "camera"


class DeviceState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class PresenceBody(_Model):
    """A post's staffing changed, or a periodic summary of it."""

    camera: str = Field(pattern=ID_PATTERN, description="Camera the post is seen by.")
    post: str = Field(pattern=ID_PATTERN, description="Post id from the hall config.")
    window: str | None = Field(default=None, max_length=32, description="Window number.")
    state: PostState = Field(description="on_post or off_post.")
    since: AwareDatetime = Field(description="When the post entered this state (UTC).")
    summary: bool = Field(
        default=False, description="True for a periodic summary, false for a change."
    )
    score: float | None = Field(
        default=None, ge=0, le=1, description="Best accepted person score at the last look."
    )


class DeviceBody(_Model):
    """A device went online or offline."""

    device: str = Field(pattern=ID_PATTERN, description="Device id (a camera id for cameras).")
    device_kind: DeviceKind = Field(description="What kind of device.")
    state: DeviceState = Field(description="online or offline.")
    reason: str = Field(default="", max_length=500, description="Why, for offline.")


class StatsBody(_Model):
    """The edge pipeline's own health over the last interval."""

    interval_s: float = Field(gt=0, description="Length of the interval these figures cover.")
    cameras_online: int = Field(ge=0, description="Cameras delivering frames.")
    cameras_total: int = Field(ge=0, description="Cameras configured.")
    frames_looked: int = Field(ge=0, description="Frames analysed in the interval.")
    crops_inferred: int = Field(ge=0, description="Post crops run through the detector.")
    crops_skipped: int = Field(ge=0, description="Post crops skipped by the motion gate.")
    inference_ms_mean: float = Field(ge=0, description="Mean detector time per crop.")
    outbox_depth: int = Field(ge=0, description="Facts written but not yet acknowledged.")


class _FactBase(_Model):
    id: str = Field(default_factory=new_id, min_length=10, max_length=40, description="Unique.")
    hall: str = Field(pattern=ID_PATTERN, description="Hall id.")
    source: str = Field(pattern=ID_PATTERN, description="Edge worker id.")
    ts: AwareDatetime = Field(default_factory=utcnow, description="When observed (UTC).")
    schema_version: Literal[1] = Field(default=1, alias="schema", description="Schema version.")

    @field_validator("ts")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)


class PresenceFact(_FactBase):
    kind: Literal[FactKind.PRESENCE] = FactKind.PRESENCE
    body: PresenceBody


class DeviceFact(_FactBase):
    kind: Literal[FactKind.DEVICE] = FactKind.DEVICE
    body: DeviceBody


class StatsFact(_FactBase):
    kind: Literal[FactKind.STATS] = FactKind.STATS
    body: StatsBody


Fact = Annotated[PresenceFact | DeviceFact | StatsFact, Field(discriminator="kind")]
_FACT_ADAPTER: TypeAdapter[Fact] = TypeAdapter(Fact)


class EdgeStatus(_Model):
    """Retained on ``edge_status_topic``; the ``offline`` form is the MQTT will."""

    hall: str = Field(pattern=ID_PATTERN)
    source: str = Field(pattern=ID_PATTERN)
    state: DeviceState
    ts: AwareDatetime = Field(default_factory=utcnow)
    schema_version: Literal[1] = Field(default=1, alias="schema")


class AlertKind(StrEnum):
    OFF_POST = "off_post"


class AlertState(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class AlertMessage(_Model):
    """An alert as published to hall managers on ``alerts_topic``."""

    id: str = Field(description="Alert id; the same id is re-sent when the alert resolves.")
    hall: str = Field(pattern=ID_PATTERN)
    kind: AlertKind
    state: AlertState
    post: str | None = None
    window: str | None = None
    start: AwareDatetime = Field(description="When the breach began.")
    end: AwareDatetime | None = Field(default=None, description="When it ended, if resolved.")
    message: str = Field(default="", max_length=500, description="Human-readable, Chinese.")
    ts: AwareDatetime = Field(default_factory=utcnow)
    schema_version: Literal[1] = Field(default=1, alias="schema")


class ContractError(ValueError):
    """A message that does not follow this contract."""


def encode(message: BaseModel) -> bytes:
    """Serialise a contract model to its JSON wire form (``schema`` key, RFC 3339 times)."""
    return message.model_dump_json(by_alias=True).encode()


def parse_fact(payload: bytes | str) -> Fact:
    """Parse and validate one fact.

    Raises:
        ContractError: The payload is not JSON, or not a valid fact of a known kind and
            schema version; the message says which field.
    """
    try:
        return _FACT_ADAPTER.validate_json(payload)
    except ValueError as exc:
        raise ContractError(str(exc)) from exc


def parse_edge_status(payload: bytes | str) -> EdgeStatus:
    """Parse a retained edge status message.

    Raises:
        ContractError: The payload is not a valid edge status.
    """
    try:
        return EdgeStatus.model_validate_json(payload)
    except ValueError as exc:
        raise ContractError(str(exc)) from exc


def parse_alert(payload: bytes | str) -> AlertMessage:
    """Parse an alert message (for hall-manager clients and tests).

    Raises:
        ContractError: The payload is not a valid alert.
    """
    try:
        return AlertMessage.model_validate_json(payload)
    except ValueError as exc:
        raise ContractError(str(exc)) from exc
