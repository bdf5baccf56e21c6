"""Config of alert routing (告警分级推送): who gets which alerts, by MQTT and SMS, and when.

The ``routing`` section of a hall's file. ``recipients`` are the people; ``routes`` send
alert kinds to recipients (by id) or to everyone with a role, at an escalation level
(1..3); an alert still open and not acknowledged ``escalation.after_min`` minutes after it
reached a level goes to the next level that has a route. SMS waits out ``quiet_hours``
(hall-local; MQTT still goes), a flapping subject re-opened within
``dedup.reopen_window_min`` is not notified again, and each recipient gets at most
``rate_limit.sms_per_hour`` texts (then one summary). The aggregator's
:class:`aggregator.notify.routing.AlertRouter` applies it; docs/alert-routing.md explains
the decisions.

Without routes (the default) nothing changes: every alert goes to the hall's alerts
topic, and 异常办件 texts go to the ``notify.sms`` recipients.

Example:
    >>> routing = RoutingConfig.model_validate({
    ...     "recipients": [{"id": "zhang", "name": "张三", "role": "hall_manager",
    ...                     "phone": "13800000001"}],
    ...     "routes": [{"kinds": ["off_post"], "roles": ["hall_manager"]}],
    ... })
    >>> [r.id for r in routing.recipients_for(AlertKind.OFF_POST, 1)]
    ['zhang']
    >>> routing.next_level(AlertKind.OFF_POST, 1) is None
    True
"""

from __future__ import annotations

from datetime import time, timedelta
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from hallwatch.config.errors import Loc, _Base, _raise_if, require_unique_ids
from hallwatch.config.hours import _parse_hhmm
from hallwatch.contract import ID_PATTERN, AlertKind

MAX_LEVEL = 3
"""Escalation levels are 1 (first responders) to 3."""

ROLE_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
"""Routing roles: lowercase words, e.g. hall_manager, supervision_officer."""

Minutes = Annotated[int, Field(ge=1, le=1440)]


class RoutingRecipient(_Base):
    """A person who gets the hall's alerts (告警接收人)."""

    id: str = Field(
        pattern=ID_PATTERN,
        description="Recipient id (slug, unique in the hall); routes name it, and it names "
        "the person's MQTT topic hallwatch/v1/{hall}/alerts/{id}.",
    )
    name: str = Field(min_length=1, max_length=50, description="Name, e.g. 大厅负责人 张三.")
    role: str = Field(
        default="hall_manager",
        pattern=ROLE_PATTERN,
        description="Role routes can name instead of people: hall_manager (大厅负责人), "
        "supervision_officer (监督员), chief_representative (首席代表), or another word.",
    )
    phone: str | None = Field(
        default=None,
        pattern=r"^\+?[0-9]{6,20}$",
        repr=False,
        description="Mobile number for SMS (needs the aggregator's SMS gateway); null: no "
        "SMS. Logs show it masked.",
    )
    mqtt: bool = Field(
        default=True,
        description="Publish this person's alerts (QoS 1) on hallwatch/v1/{hall}/alerts/{id}.",
    )


class RouteConfig(_Base):
    """Which alert kinds go to whom at one escalation level."""

    kinds: list[AlertKind] = Field(
        min_length=1,
        max_length=len(AlertKind),
        description="Alert kinds: off_post, device_offline, hygiene_bad, crowding, and the "
        "异常办件 kinds wait_over_limit, trips_over_promise, bad_rating, bad_attitude, manual.",
    )
    level: int = Field(
        default=1,
        ge=1,
        le=MAX_LEVEL,
        description="Escalation level: 1 when the alert opens, 2 and 3 when it is still "
        "unacknowledged escalation.after_min later.",
    )
    recipients: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Recipient ids (recipients[].id).",
    )
    roles: list[str] = Field(
        default_factory=list,
        max_length=10,
        description="Roles: every recipient with one of them (recipients[].role).",
    )
    ignore_quiet_hours: bool = Field(
        default=False,
        description="Text these recipients even in quiet hours (e.g. the machine room).",
    )

    @model_validator(mode="after")
    def _someone(self) -> RouteConfig:
        if not self.recipients and not self.roles:
            _raise_if([(("recipients",), "name recipients or roles (a route to nobody)")])
        return self


class EscalationConfig(_Base):
    """When an unacknowledged alert goes to the next level."""

    after_min: int = Field(
        default=15,
        ge=1,
        le=1440,
        description="Minutes an open alert may stay unacknowledged at a level before it "
        "goes to the next level with a route.",
    )
    after_min_by_kind: dict[AlertKind, Minutes] = Field(
        default_factory=dict,
        description="after_min for some kinds (1..1440 each), e.g. {device_offline: 60}.",
    )

    def after(self, kind: AlertKind) -> timedelta:
        """How long an alert of ``kind`` waits at a level."""
        return timedelta(minutes=self.after_min_by_kind.get(kind, self.after_min))


class QuietHours(_Base):
    """Hall-local hours in which SMS is held (MQTT still goes)."""

    start: time = Field(description='Start, "HH:MM" (hall-local).')
    end: time = Field(description='End, "HH:MM"; earlier than start: the range spans midnight.')

    @field_validator("start", "end", mode="before")
    @classmethod
    def _parse_times(cls, value: Any) -> Any:
        return _parse_hhmm(value)

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            _raise_if([(("end",), "end equals start: an empty range")])
        return self

    def contains(self, local: time) -> bool:
        """Whether a hall-local time of day is inside.

        >>> night = QuietHours(start="22:00", end="07:00")
        >>> night.contains(time(23, 30)), night.contains(time(7, 0)), night.contains(time(6))
        (True, False, True)
        """
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


class DedupConfig(_Base):
    """De-duplication beyond "one notification per alert, recipient and level"."""

    reopen_window_min: int = Field(
        default=10,
        ge=0,
        le=1440,
        description="An alert of the same kind and post, device or zone re-opened within "
        "this many minutes of the last one resolving (flapping) is not notified at level 1; "
        "it still escalates. 0: off.",
    )


class RateLimitConfig(_Base):
    """Texts per recipient."""

    sms_per_hour: int = Field(
        default=6,
        ge=1,
        le=100,
        description="At most this many texts per recipient in any sliding hour; the alerts "
        "beyond are summed up in one text (另有K条) once the hour has room.",
    )


class RoutingConfig(_Base):
    """Alert routing: recipients, routes by kind and level, escalation, quiet hours."""

    recipients: list[RoutingRecipient] = Field(
        default_factory=list, max_length=200, description="People; ids unique."
    )
    routes: list[RouteConfig] = Field(
        default_factory=list,
        max_length=100,
        description="Alert kinds → recipients or roles, per level. Empty: no routing (alerts "
        "topic and notify.sms only).",
    )
    escalation: EscalationConfig = Field(
        default_factory=EscalationConfig, description="When to escalate."
    )
    quiet_hours: list[QuietHours] = Field(
        default_factory=list,
        max_length=10,
        description='Hall-local ranges without SMS, e.g. [{start: "22:00", end: "07:30"}]; '
        "held texts go out when they end if the alert is still open and unacknowledged.",
    )
    dedup: DedupConfig = Field(default_factory=DedupConfig, description="Flapping alerts.")
    rate_limit: RateLimitConfig = Field(
        default_factory=RateLimitConfig, description="Texts per recipient and hour."
    )

    @field_validator("recipients")
    @classmethod
    def _unique_ids(cls, value: list[RoutingRecipient]) -> list[RoutingRecipient]:
        require_unique_ids(value, "recipient id")
        return value

    @model_validator(mode="after")
    def _known_references(self) -> RoutingConfig:
        ids = {r.id for r in self.recipients}
        roles = {r.role for r in self.recipients}
        problems: list[tuple[Loc, str]] = []
        for i, route in enumerate(self.routes):
            for j, rid in enumerate(route.recipients):
                if rid not in ids:
                    known = ", ".join(sorted(ids)) or "none"
                    problems.append(
                        (("routes", i, "recipients", j), f"unknown recipient {rid!r} ({known})")
                    )
            for j, role in enumerate(route.roles):
                if role not in roles:
                    known = ", ".join(sorted(roles)) or "none"
                    problems.append(
                        (("routes", i, "roles", j), f"no recipient has role {role!r} ({known})")
                    )
        _raise_if(problems)
        return self

    # -- what the router asks --------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """Whether any route exists (else the router leaves the hall alone)."""
        return bool(self.routes)

    def recipient(self, recipient_id: str) -> RoutingRecipient | None:
        """A recipient by id (None: not configured, e.g. removed since)."""
        return next((r for r in self.recipients if r.id == recipient_id), None)

    def routes_for(self, kind: AlertKind, level: int) -> list[RouteConfig]:
        """The routes of ``kind`` at ``level``."""
        return [r for r in self.routes if kind in r.kinds and r.level == level]

    def recipients_for(self, kind: AlertKind, level: int) -> list[RoutingRecipient]:
        """Who gets an alert of ``kind`` at ``level`` (each once, in configured order)."""
        chosen: set[str] = set()
        for route in self.routes_for(kind, level):
            chosen.update(route.recipients)
            chosen.update(r.id for r in self.recipients if r.role in route.roles)
        return [r for r in self.recipients if r.id in chosen]

    def routes_kind(self, kind: AlertKind) -> bool:
        """Whether any route names ``kind``."""
        return any(kind in r.kinds for r in self.routes)

    def next_level(self, kind: AlertKind, level: int) -> int | None:
        """The lowest level above ``level`` with a route for ``kind`` (None: none)."""
        above = [r.level for r in self.routes if kind in r.kinds and r.level > level]
        return min(above) if above else None

    def ignores_quiet_hours(self, kind: AlertKind, level: int, recipient_id: str) -> bool:
        """Whether a route of ``kind`` at ``level`` reaching the recipient texts at night."""
        role = next((r.role for r in self.recipients if r.id == recipient_id), None)
        return any(
            route.ignore_quiet_hours and (recipient_id in route.recipients or role in route.roles)
            for route in self.routes_for(kind, level)
        )

    def is_quiet(self, local: time) -> bool:
        """Whether a hall-local time of day is in quiet hours."""
        return any(q.contains(local) for q in self.quiet_hours)
