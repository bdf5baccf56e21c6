"""The envelope shared by every message: topics, ids, times, the fact base model.

Internal to :mod:`hallwatch.contract`; import names from there.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
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
    # Inputs stay out of error messages: a rejected message's reason is logged and kept.
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, hide_input_in_errors=True
    )


class FactKind(StrEnum):
    """Kinds of fact an edge sends (the last part of the fact topic)."""

    PRESENCE = "presence"
    DEVICE = "device"
    STATS = "stats"
    TICKET = "ticket"
    QUEUE = "queue"
    WAIT = "wait"
    TRIPS = "trips"
    RATING = "rating"
    HYGIENE = "hygiene"
    OCCUPANCY = "occupancy"
    FLOW = "flow"


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


class ContractError(ValueError):
    """A message that does not follow this contract."""


def encode(message: BaseModel) -> bytes:
    """Serialise a contract model to its JSON wire form (``schema`` key, RFC 3339 times)."""
    return message.model_dump_json(by_alias=True).encode()
