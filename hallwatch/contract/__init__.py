"""The wire contract between edge workers and the aggregator.

One package, imported by both sides: MQTT topics, the fact envelope and the payload
models. Every message carries a schema version; a receiver rejects versions it does not
know. ``docs/protocol.md`` shows the topic table and an example of every payload.
Import every name from here; the submodules group them by source (:mod:`.video`,
:mod:`.queue`, :mod:`.rating`, :mod:`.messages`).

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

from typing import Annotated

from pydantic import Field, TypeAdapter

from hallwatch.contract._base import (
    DEFAULT_SHARE_GROUP,
    EDGE_STATUS_FILTER,
    FACTS_FILTER,
    ID_PATTERN,
    SCHEMA_VERSION,
    TOPIC_ROOT,
    ContractError,
    FactKind,
    alerts_topic,
    edge_status_topic,
    encode,
    fact_topic,
    hall_of_topic,
    new_id,
    shared_subscription,
    utcnow,
)
from hallwatch.contract.environment import (
    FlowBody,
    FlowFact,
    HygieneBody,
    HygieneFact,
    HygieneMethod,
    HygieneState,
    OccupancyBody,
    OccupancyFact,
)
from hallwatch.contract.evidence import EVIDENCE_MAX_B64, Evidence
from hallwatch.contract.messages import (
    AlertKind,
    AlertMessage,
    AlertState,
    AnomalyKind,
    AnomalyLevel,
    EdgeStatus,
)
from hallwatch.contract.queue import (
    APPLICANT_KEY_PATTERN,
    CODE_PATTERN,
    TICKET_ID_PATTERN,
    QueueBody,
    QueueFact,
    ServiceOutcome,
    ServiceQueue,
    TicketBody,
    TicketChannel,
    TicketEventType,
    TicketFact,
    TripsBody,
    TripsFact,
    WaitBody,
    WaitFact,
)
from hallwatch.contract.rating import (
    RATING_LABELS,
    Attitude,
    RatingBody,
    RatingChannel,
    RatingDimension,
    RatingFact,
    RatingLevel,
)
from hallwatch.contract.video import (
    DeviceBody,
    DeviceFact,
    DeviceKind,
    DeviceState,
    PostState,
    PresenceBody,
    PresenceFact,
    StatsBody,
    StatsFact,
)

Fact = Annotated[
    PresenceFact | DeviceFact | StatsFact | TicketFact | QueueFact | WaitFact | TripsFact
    | RatingFact | HygieneFact | OccupancyFact | FlowFact,
    Field(discriminator="kind"),
]  # fmt: skip
_FACT_ADAPTER: TypeAdapter[Fact] = TypeAdapter(Fact)
_FACT_VALIDATOR = _FACT_ADAPTER.validator
"""The adapter's validator, called directly: the aggregator parses every fact it ingests."""


def parse_fact(payload: bytes | str) -> Fact:
    """Parse and validate one fact.

    Raises:
        ContractError: The payload is not JSON, or not a valid fact of a known kind and
            schema version; the message says which field.
    """
    try:
        fact: Fact = _FACT_VALIDATOR.validate_json(payload)  # no cast(): a call per fact
    except ValueError as exc:
        raise ContractError(str(exc)) from exc
    return fact


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


__all__ = [
    "APPLICANT_KEY_PATTERN",
    "CODE_PATTERN",
    "DEFAULT_SHARE_GROUP",
    "EDGE_STATUS_FILTER",
    "EVIDENCE_MAX_B64",
    "FACTS_FILTER",
    "ID_PATTERN",
    "RATING_LABELS",
    "SCHEMA_VERSION",
    "TICKET_ID_PATTERN",
    "TOPIC_ROOT",
    "AlertKind",
    "AlertMessage",
    "AlertState",
    "AnomalyKind",
    "AnomalyLevel",
    "Attitude",
    "ContractError",
    "DeviceBody",
    "DeviceFact",
    "DeviceKind",
    "DeviceState",
    "EdgeStatus",
    "Evidence",
    "Fact",
    "FactKind",
    "FlowBody",
    "FlowFact",
    "HygieneBody",
    "HygieneFact",
    "HygieneMethod",
    "HygieneState",
    "OccupancyBody",
    "OccupancyFact",
    "PostState",
    "PresenceBody",
    "PresenceFact",
    "QueueBody",
    "QueueFact",
    "RatingBody",
    "RatingChannel",
    "RatingDimension",
    "RatingFact",
    "RatingLevel",
    "ServiceOutcome",
    "ServiceQueue",
    "StatsBody",
    "StatsFact",
    "TicketBody",
    "TicketChannel",
    "TicketEventType",
    "TicketFact",
    "TripsBody",
    "TripsFact",
    "WaitBody",
    "WaitFact",
    "alerts_topic",
    "edge_status_topic",
    "encode",
    "fact_topic",
    "hall_of_topic",
    "new_id",
    "parse_alert",
    "parse_edge_status",
    "parse_fact",
    "shared_subscription",
    "utcnow",
]
