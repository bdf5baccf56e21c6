"""Facts from the queue machine (排队叫号机): ticket events, queue gauges, waits, trips.

The edge normalises every vendor's messages into :class:`TicketBody` (one model, whatever
the machine), keeps each ticket's wait clock, and reports two kinds of breach as they
happen: a wait passing the limit (:class:`WaitBody`, sent at the moment the limit is
passed, not when the ticket is finally called) and a case needing more trips than
promised (:class:`TripsBody`). The aggregator turns breaches into 异常办件.

No raw ID number is ever in a fact: ``applicant_key`` is a salted HMAC of it, made at
the edge (see :func:`edge.feeds.applicant.applicant_key`).
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, Field

from hallwatch.contract._base import FactKind, _FactBase, _Model

CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
"""Ticket numbers, service codes, window numbers, staff ids and case numbers."""

TICKET_ID_PATTERN = r"^\d{8}-[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
"""A ticket id: hall-local issue date and ticket number, ``20261102-A017``."""

APPLICANT_KEY_PATTERN = r"^[0-9a-f]{32}$"
"""An applicant key: 32 hex digits of a salted HMAC-SHA256, never an ID number."""


class TicketEventType(StrEnum):
    """What happened to a ticket (取号 … 办结)."""

    ISSUED = "issued"
    """取号: the ticket was printed (on site) or taken for an appointment (预约)."""
    CHECKED_IN = "checked_in"
    """签到: an appointment's applicant arrived and checked in."""
    CALLED = "called"
    """叫号: a window called the ticket (first call)."""
    RECALLED = "recalled"
    """重呼 / 过号重排: called again (after a no-show, or a repeat call)."""
    NO_SHOW = "no_show"
    """过号: called, the applicant did not come; the ticket waits again."""
    TRANSFERRED = "transferred"
    """转移: sent to another queue (service) or window; a new leg of waiting starts."""
    SERVICE_STARTED = "service_started"
    """开始办理: the window started serving the applicant."""
    SERVICE_ENDED = "service_ended"
    """办结 / 结束: the window finished; ``outcome`` says how."""
    ABANDONED = "abandoned"
    """弃号: the applicant left, or the hall closed with the ticket never served."""


class TicketChannel(StrEnum):
    """How the ticket was taken."""

    ON_SITE = "on_site"
    """现场取号."""
    APPOINTMENT = "appointment"
    """预约取号."""


class ServiceOutcome(StrEnum):
    """How a service ended (办理结果)."""

    COMPLETED = "completed"
    """办结: done."""
    ACCEPTED = "accepted"
    """受理: accepted, to be approved later (no further trip needed)."""
    INCOMPLETE = "incomplete"
    """补正 / 材料不全: the applicant must come back with documents."""
    REJECTED = "rejected"
    """不予受理."""
    CONSULTED = "consulted"
    """咨询: information only."""
    OTHER = "other"


class TicketBody(_Model):
    """One queue-machine event, normalised (the same model for every vendor).

    ``ticket_id`` is made by the edge: the ticket's hall-local issue date and its printed
    number (``20261102-A017``), unique in a hall because machines restart numbering daily.
    """

    event: TicketEventType = Field(description="What happened.")
    ticket: str = Field(pattern=CODE_PATTERN, description="Ticket number as printed, e.g. A017.")
    ticket_id: str = Field(
        pattern=TICKET_ID_PATTERN,
        description="Issue date (hall-local, YYYYMMDD) and ticket number: unique in a hall.",
    )
    at: AwareDatetime = Field(description="When it happened, by the queue machine's clock.")
    service: str = Field(pattern=CODE_PATTERN, description="Service (queue) code, e.g. A.")
    channel: TicketChannel | None = Field(
        default=None, description="on_site or appointment (issued events)."
    )
    case_no: str | None = Field(
        default=None, pattern=CODE_PATTERN, description="办件编号, when the machine knows it."
    )
    applicant_key: str | None = Field(
        default=None,
        pattern=APPLICANT_KEY_PATTERN,
        description="Salted HMAC of the applicant's ID number (never the number).",
    )
    window: str | None = Field(
        default=None, pattern=CODE_PATTERN, description="Window number (called and later)."
    )
    staff: str | None = Field(default=None, pattern=CODE_PATTERN, description="Staff id.")
    to_service: str | None = Field(
        default=None, pattern=CODE_PATTERN, description="Transferred: the new queue."
    )
    to_window: str | None = Field(
        default=None, pattern=CODE_PATTERN, description="Transferred: the new window."
    )
    outcome: ServiceOutcome | None = Field(default=None, description="Service ended: how.")
    reason: str | None = Field(
        default=None, max_length=200, description="Abandoned or no-show: why (e.g. closed)."
    )
    wait_s: float | None = Field(
        default=None,
        ge=0,
        description="Called / recalled / service started: the leg's wait so far, by the "
        "hall's wait clock (docs/cases.md).",
    )


class ServiceQueue(_Model):
    """The queue of one service at one moment."""

    service: str = Field(pattern=CODE_PATTERN, description="Service (queue) code.")
    waiting: int = Field(ge=0, description="Tickets waiting (not yet called, or no-show).")
    longest_wait_s: float = Field(ge=0, description="Longest current wait, by the wait clock.")


class QueueBody(_Model):
    """Queue gauges of a hall, sent every ``queue.gauge_interval_s``."""

    services: list[ServiceQueue] = Field(max_length=500, description="One entry per service.")


class WaitBody(_Model):
    """A waiting ticket passed the wait limit (窗口等待超时). Sent once per leg.

    The fact's ``ts`` is the moment the limit was passed.
    """

    ticket: str = Field(pattern=CODE_PATTERN, description="Ticket number.")
    ticket_id: str = Field(pattern=TICKET_ID_PATTERN)
    leg: int = Field(ge=1, le=100, description="Which leg of the ticket (1; +1 per transfer).")
    service: str = Field(pattern=CODE_PATTERN, description="The queue it waits in.")
    channel: TicketChannel | None = Field(default=None, description="on_site or appointment.")
    case_no: str | None = Field(default=None, pattern=CODE_PATTERN)
    applicant_key: str | None = Field(default=None, pattern=APPLICANT_KEY_PATTERN)
    clock_start: AwareDatetime = Field(description="When the leg's wait clock started.")
    waited_s: float = Field(ge=0, description="Wait by the clock when reported (≥ limit).")
    limit_s: float = Field(gt=0, description="The limit in force (default 30 min).")


class TripsBody(_Model):
    """A case needed more trips (跑动次数) than promised. Sent each time the count grows."""

    case_ref: str = Field(
        max_length=120,
        description="The case: ``case:<case_no>``, or ``applicant:<key>:<service>`` while "
        "no case number is known.",
    )
    case_no: str | None = Field(default=None, pattern=CODE_PATTERN)
    applicant_key: str | None = Field(default=None, pattern=APPLICANT_KEY_PATTERN)
    service: str = Field(pattern=CODE_PATTERN, description="Service of the latest visit.")
    trips: int = Field(ge=2, description="Visits so far (distinct hall-local days).")
    promised: int = Field(ge=1, description="Promised trips for the service (最多跑一次: 1).")
    visits: list[date] = Field(max_length=100, description="Hall-local dates of the visits.")
    ticket_id: str = Field(pattern=TICKET_ID_PATTERN)
    window: str | None = Field(default=None, pattern=CODE_PATTERN, description="Latest window.")
    staff: str | None = Field(default=None, pattern=CODE_PATTERN, description="Latest staff.")


class TicketFact(_FactBase):
    kind: Literal[FactKind.TICKET] = FactKind.TICKET
    body: TicketBody


class QueueFact(_FactBase):
    kind: Literal[FactKind.QUEUE] = FactKind.QUEUE
    body: QueueBody


class WaitFact(_FactBase):
    kind: Literal[FactKind.WAIT] = FactKind.WAIT
    body: WaitBody


class TripsFact(_FactBase):
    kind: Literal[FactKind.TRIPS] = FactKind.TRIPS
    body: TripsBody
