"""Config of the device feeds an edge subscribes to: the queue machine and the evaluators.

Both arrive over MQTT on the edge's broker (``mqtt``), on the topic filter given here, in
the vendor's own format; ``adapter`` names the module that normalises it
(``edge.feeds``). The rules that turn tickets into waits and trips are in
``docs/cases.md``.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, SecretStr, field_validator

from hallwatch.config.errors import _Base, require_unique_ids
from hallwatch.contract import CODE_PATTERN


class QueueAdapter(StrEnum):
    """Formats of queue machines the edge understands."""

    GENERIC_JSON = "generic_json"
    """HallWatch's own JSON (docs/protocol.md): one event per message, named fields."""
    NUMERIC_STATE = "numeric_state"
    """A vendor that reports call records with numeric states (-1 弃号, 0 已叫号, 1 已完成,
    2 已转移, 3 已挂起) and separate 取号 records."""
    WEBHOOK = "webhook"
    """A vendor that forwards webhook-style events (ticket_created, ticket_called, …)."""


class WaitStart(StrEnum):
    """When a ticket's wait clock starts."""

    ISSUED = "issued"
    """At issue (取号), for every ticket."""
    CHECKED_IN = "checked_in"
    """Appointments (预约) at check-in (签到); on-site tickets at issue."""


class WaitEnd(StrEnum):
    """When a ticket's wait clock stops."""

    FIRST_CALL = "first_call"
    """At the first call (叫号), even if the applicant does not come."""
    LAST_CALL = "last_call"
    """At the call the applicant answers: after a no-show the clock runs on until the
    ticket is recalled (Qmatic's definition)."""


class WaitCounts(StrEnum):
    """Which time counts on a wait clock."""

    SERVICE_TIME = "service_time"
    """Only while the hall serves (a lunch break the hall closes for does not count)."""
    ELAPSED = "elapsed"
    """All of it."""


class FeedClock(StrEnum):
    """What moves the feed's time forward (when waits pass their limit)."""

    WALL = "wall"
    """The edge's clock (live). Event times never move it backwards."""
    EVENTS = "events"
    """Only the queue machine's event times (replaying a day's log)."""


class QueueServiceConfig(_Base):
    """One service (queue) of the queue machine, where it differs from the defaults."""

    id: str = Field(pattern=CODE_PATTERN, description="Service code as the machine sends it.")
    name: str = Field(default="", max_length=100, description="Display name, e.g. 社保业务.")
    department: str | None = Field(
        default=None, max_length=64, description="Department id serving it (departments[].id)."
    )
    promised_trips: int | None = Field(
        default=None, ge=1, le=10, description="Promised trips (跑动次数); null: the default."
    )
    wait_limit_min: float | None = Field(
        default=None, gt=0, le=600, description="Wait limit in minutes; null: the default."
    )


class QueueFeedConfig(_Base):
    """排队叫号机: the queue machine feed."""

    adapter: QueueAdapter = Field(
        default=QueueAdapter.GENERIC_JSON,
        description="Message format: generic_json, numeric_state or webhook.",
    )
    topic: str = Field(
        min_length=1,
        max_length=200,
        description="MQTT topic filter the machine publishes on ({hall} is replaced).",
    )
    applicant_salt: SecretStr = Field(
        min_length=16,
        description="Secret salt of the applicant key (HMAC of the ID number). Keep it "
        "in the environment, e.g. ${HALLWATCH_APPLICANT_SALT}; at least 16 characters. "
        "Changing it unlinks earlier visits from later ones.",
        json_schema_extra={"env_expand": True},
    )
    wait_limit_min: float = Field(
        default=30, gt=0, le=600, description="Wait limit (窗口等待时间) in minutes."
    )
    wait_start: WaitStart = Field(
        default=WaitStart.ISSUED, description="When the wait clock starts: issued or checked_in."
    )
    wait_end: WaitEnd = Field(
        default=WaitEnd.FIRST_CALL, description="When it stops: first_call or last_call."
    )
    wait_counts: WaitCounts = Field(
        default=WaitCounts.SERVICE_TIME, description="service_time or elapsed."
    )
    clock: FeedClock = Field(
        default=FeedClock.WALL, description="wall (live) or events (replaying a log)."
    )
    promised_trips: int = Field(
        default=1, ge=1, le=10, description="Promised trips per case (最多跑一次: 1)."
    )
    trip_link_days: int = Field(
        default=90,
        ge=1,
        le=3650,
        description="Visits of one case more than this many days apart are not linked.",
    )
    gauge_interval_s: float = Field(
        default=60, ge=5, le=3600, description="Seconds between queue gauges (length, wait)."
    )
    services: list[QueueServiceConfig] = Field(
        default_factory=list, description="Per-service names, departments and overrides."
    )

    @field_validator("services")
    @classmethod
    def _unique_services(cls, value: list[QueueServiceConfig]) -> list[QueueServiceConfig]:
        require_unique_ids(value, "service")
        return value

    def service(self, code: str) -> QueueServiceConfig | None:
        """The per-service settings of a service code, if any."""
        for item in self.services:
            if item.id == code:
                return item
        return None

    def wait_limit_s(self, service: str) -> float:
        """The wait limit of a service, in seconds."""
        item = self.service(service)
        minutes = item.wait_limit_min if item and item.wait_limit_min else self.wait_limit_min
        return minutes * 60.0

    def promised_trips_for(self, service: str) -> int:
        """The promised trips of a service."""
        item = self.service(service)
        return item.promised_trips if item and item.promised_trips else self.promised_trips


class EvaluatorAdapter(StrEnum):
    """Formats of evaluator devices the edge understands."""

    GENERIC_JSON = "generic_json"
    """HallWatch's own JSON (docs/protocol.md): level by name."""
    GBT39046 = "gbt39046"
    """GB/T 39046-2020 style: ``satisfaction`` 1 = 非常满意 … 5 = 非常不满意."""
    PROVINCIAL = "provincial"
    """A provincial platform style: ``pj`` 5 = 非常满意 … 1 = 非常不满意 and
    ``assessNumber`` 1/2 for first/second evaluation."""


class EvaluatorFeedConfig(_Base):
    """评价器: the evaluator feed (ratings)."""

    adapter: EvaluatorAdapter = Field(
        default=EvaluatorAdapter.GENERIC_JSON,
        description="Message format: generic_json, gbt39046 or provincial.",
    )
    topic: str = Field(
        min_length=1,
        max_length=200,
        description="MQTT topic filter the evaluators publish on ({hall} is replaced).",
    )
