"""Queue-machine adapters: each vendor's messages in, one :class:`QueueEvent` out.

Three formats (``queue.adapter``, documented with examples in docs/protocol.md):

- ``generic_json``: HallWatch's own JSON, one event per message, named fields.
- ``numeric_state``: 取号 / 签到 records and call records with a numeric state
  (``zt``: -1 弃号, 0 已叫号, 1 已完成, 2 已转移, 3 已挂起, 4 开始办理), Chinese field
  names and hall-local times without an offset.
- ``webhook``: ``{"type": "ticket_called", "occurred_at": <epoch ms>, "data": {…}}``.

An ID number is replaced by its applicant key (:func:`edge.feeds.applicant.applicant_key`)
while the message is parsed; the number is never kept. Every bad message raises
:class:`QueueAdapterError` whose reason never quotes the input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from typing import Annotated, Any, Literal, Protocol, TypeVar

from pydantic import (
    AliasChoices,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from edge.feeds.applicant import applicant_key
from hallwatch.config.feeds import QueueAdapter, QueueFeedConfig
from hallwatch.contract import (
    APPLICANT_KEY_PATTERN,
    CODE_PATTERN,
    ServiceOutcome,
    TicketChannel,
    TicketEventType,
)

E = TicketEventType
Code = Annotated[str, Field(pattern=CODE_PATTERN)]
IdNumber = Annotated[str, Field(min_length=1, max_length=64)]


class QueueAdapterError(ValueError):
    """A queue-machine message an adapter cannot use; the message is the reason."""


@dataclass(frozen=True, slots=True)
class QueueEvent:
    """One queue-machine event, normalised (a :class:`TicketBody` without the parts
    the tracker adds: ``ticket_id`` and ``wait_s``). ``at`` is aware UTC.

    A later event may leave ``service`` out: the ticket's current service is used.
    ``issued_on`` (hall-local issue date) picks the ticket explicitly when the machine
    sends it.
    """

    event: TicketEventType
    ticket: str
    at: datetime
    service: str | None = None
    channel: TicketChannel | None = None
    case_no: str | None = None
    applicant_key: str | None = None
    window: str | None = None
    staff: str | None = None
    to_service: str | None = None
    to_window: str | None = None
    outcome: ServiceOutcome | None = None
    reason: str | None = None
    issued_on: date | None = None


class TicketAdapter(Protocol):
    """Parses one vendor's payloads."""

    def parse(self, payload: bytes) -> QueueEvent:
        """The event in one message.

        Raises:
            QueueAdapterError: Not JSON, unknown fields or states, missing fields.
        """
        ...


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_as_codes(cls, value: Any, info: Any) -> Any:
        # Windows, staff ids and services are often sent as numbers: 3 → "3".
        if (
            info.field_name in _CODE_FIELDS
            and isinstance(value, int)
            and not isinstance(value, bool)
        ):
            return str(value)
        return value


_CODE_FIELDS = frozenset(
    {"window", "staff", "service", "to_service", "to_window", "ckh", "gh", "ywlx", "zyywlx",
     "zyckh", "counter", "agent", "queue", "target_queue", "target_counter", "bjbh",
     "case_no", "case_number"}
)  # fmt: skip


def _reason(exc: ValidationError) -> str:
    """Field paths and messages only: never the input (it may hold an ID number)."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = ".".join(str(x) for x in err["loc"]) or "message"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def _load_object(payload: bytes) -> dict[str, Any]:
    try:
        value = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise QueueAdapterError(f"not JSON ({type(exc).__name__})") from None
    if not isinstance(value, dict):
        raise QueueAdapterError(f"expected a JSON object, got {type(value).__name__}")
    return value


_M = TypeVar("_M", bound=BaseModel)


def _validated(model: type[_M], payload: bytes) -> _M:
    """One vendor message, parsed and validated.

    Raises:
        QueueAdapterError: Not a JSON object, or not valid for ``model``.
    """
    raw = _load_object(payload)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise QueueAdapterError(_reason(exc)) from None


def _key(id_number: str | None, given: str | None, salt: SecretStr) -> str | None:
    if id_number is not None:
        try:
            return applicant_key(id_number, salt)
        except ValueError:
            raise QueueAdapterError("id_number: empty") from None
    return given


# --------------------------------------------------------------------------- generic_json


class _GenericMessage(_Strict):
    event: TicketEventType
    ticket: Code
    at: AwareDatetime
    service: Code | None = None
    channel: TicketChannel | None = None
    case_no: Code | None = None
    id_number: IdNumber | None = None
    applicant_key: Annotated[str, Field(pattern=APPLICANT_KEY_PATTERN)] | None = None
    window: Code | None = None
    staff: Code | None = None
    to_service: Code | None = None
    to_window: Code | None = None
    outcome: ServiceOutcome | None = None
    reason: Annotated[str, Field(max_length=200)] | None = None
    issued_on: date | None = None

    @field_validator("at", mode="before")
    @classmethod
    def _rfc3339(cls, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError("must be an RFC 3339 string with an offset")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> _GenericMessage:
        if self.id_number is not None and self.applicant_key is not None:
            raise ValueError("send id_number or applicant_key, not both")
        _check_needs(self.event, self.service, self.to_service, self.to_window)
        return self


def _check_needs(
    event: TicketEventType, service: str | None, to_service: str | None, to_window: str | None
) -> None:
    if event is E.ISSUED and service is None:
        raise ValueError("an issued event needs the service")
    if event is E.TRANSFERRED and to_service is None and to_window is None:
        raise ValueError("a transferred event needs to_service or to_window")


class GenericJsonAdapter:
    """HallWatch's reference format (docs/protocol.md, "Queue machine feeds").

    Args:
        salt: ``queue.applicant_salt``.
    """

    def __init__(self, salt: SecretStr) -> None:
        self._salt = salt

    def parse(self, payload: bytes) -> QueueEvent:
        """The event in one generic JSON message.

        Raises:
            QueueAdapterError: Why the message cannot be used.
        """
        m = _validated(_GenericMessage, payload)
        return QueueEvent(
            event=m.event,
            ticket=m.ticket,
            at=m.at.astimezone(UTC),
            service=m.service,
            channel=m.channel,
            case_no=m.case_no,
            applicant_key=_key(m.id_number, m.applicant_key, self._salt),
            window=m.window,
            staff=m.staff,
            to_service=m.to_service,
            to_window=m.to_window,
            outcome=m.outcome,
            reason=m.reason,
            issued_on=m.issued_on,
        )


# -------------------------------------------------------------------------- numeric_state

NUMERIC_STATES: dict[int, TicketEventType] = {
    -1: E.ABANDONED,  # 弃号
    0: E.CALLED,  # 已叫号 (a repeat 0 is a recall: the tracker decides)
    1: E.SERVICE_ENDED,  # 已完成
    2: E.TRANSFERRED,  # 已转移
    3: E.NO_SHOW,  # 已挂起 (过号)
    4: E.SERVICE_STARTED,  # 开始办理 (sent by newer firmware only)
}
"""``zt`` of a call record (叫号记录) → event."""

NUMERIC_OUTCOMES: dict[int, ServiceOutcome] = {
    1: ServiceOutcome.COMPLETED,  # 办结
    2: ServiceOutcome.ACCEPTED,  # 受理
    3: ServiceOutcome.INCOMPLETE,  # 补正
    4: ServiceOutcome.REJECTED,  # 不予受理
    5: ServiceOutcome.CONSULTED,  # 咨询
    9: ServiceOutcome.OTHER,
}
"""``bjjg`` (办件结果) of a 已完成 call record → outcome."""


class _NumericRecord(_Strict):
    lx: Literal["qh", "qd", "jh"] = Field(description="记录类型: 取号, 签到, 叫号.")
    qhh: Code = Field(validation_alias=AliasChoices("qhh", "ticketNo"))
    sj: str = Field(min_length=10, max_length=40)
    ywlx: Code | None = None
    qhfs: Literal[0, 1] | None = Field(default=None, description="取号方式: 0 现场, 1 预约.")
    sfzh: IdNumber | None = None
    bjbh: Code | None = None
    ckh: Code | None = None
    gh: Code | None = None
    zt: StrictInt | None = None
    zyywlx: Code | None = None
    zyckh: Code | None = None
    bjjg: StrictInt | None = None
    yy: Annotated[str, Field(max_length=200)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> _NumericRecord:
        if self.lx == "jh":
            if self.zt is None:
                raise ValueError("a call record (lx=jh) needs zt")
            if self.zt not in NUMERIC_STATES:
                raise ValueError("zt: unknown state (expected -1, 0, 1, 2, 3 or 4)")
        elif self.zt is not None:
            raise ValueError(f"zt is only for call records (lx=jh), not lx={self.lx}")
        if self.bjjg is not None and self.bjjg not in NUMERIC_OUTCOMES:
            raise ValueError("bjjg: unknown result (expected 1, 2, 3, 4, 5 or 9)")
        return self


class NumericStateAdapter:
    """The numeric-state vendor format (docs/protocol.md, "Queue machine feeds").

    Args:
        salt: ``queue.applicant_salt``.
        tz: The hall's timezone: ``sj`` times without an offset are hall-local.
    """

    def __init__(self, salt: SecretStr, tz: tzinfo) -> None:
        self._salt = salt
        self._tz = tz

    def _time(self, text: str) -> datetime:
        try:
            at = datetime.fromisoformat(text)
        except ValueError:
            raise QueueAdapterError("sj: expected 'YYYY-MM-DD HH:MM:SS'") from None
        if at.tzinfo is None:
            at = at.replace(tzinfo=self._tz)
        return at.astimezone(UTC)

    def parse(self, payload: bytes) -> QueueEvent:
        """The event in one 取号 / 签到 / 叫号 record.

        Raises:
            QueueAdapterError: Why the record cannot be used.
        """
        r = _validated(_NumericRecord, payload)
        if r.lx == "qh":
            event = E.ISSUED
        elif r.lx == "qd":
            event = E.CHECKED_IN
        else:
            assert r.zt is not None
            event = NUMERIC_STATES[r.zt]
        try:
            _check_needs(event, r.ywlx, r.zyywlx, r.zyckh)
        except ValueError as exc:
            raise QueueAdapterError(f"{exc} (ywlx / zyywlx / zyckh)") from None
        channel = None
        if r.qhfs is not None:
            channel = TicketChannel.APPOINTMENT if r.qhfs == 1 else TicketChannel.ON_SITE
        return QueueEvent(
            event=event,
            ticket=r.qhh,
            at=self._time(r.sj),
            service=r.ywlx,
            channel=channel,
            case_no=r.bjbh,
            applicant_key=_key(r.sfzh, None, self._salt),
            window=r.ckh,
            staff=r.gh,
            to_service=r.zyywlx,
            to_window=r.zyckh,
            outcome=NUMERIC_OUTCOMES[r.bjjg] if r.bjjg is not None else None,
            reason=r.yy,
        )


# -------------------------------------------------------------------------------- webhook

WEBHOOK_TYPES: dict[str, TicketEventType] = {
    "ticket_created": E.ISSUED,
    "ticket_checked_in": E.CHECKED_IN,
    "ticket_called": E.CALLED,
    "ticket_recalled": E.RECALLED,
    "ticket_no_show": E.NO_SHOW,
    "ticket_transferred": E.TRANSFERRED,
    "ticket_serving": E.SERVICE_STARTED,
    "ticket_served": E.SERVICE_ENDED,
    "ticket_cancelled": E.ABANDONED,
}
"""Webhook ``type`` → event."""


class _WebhookData(_Strict):
    ticket_number: Code
    queue: Code | None = None
    booking: StrictBool | None = None
    case_number: Code | None = None
    id_number: IdNumber | None = None
    counter: Code | None = None
    agent: Code | None = None
    target_queue: Code | None = None
    target_counter: Code | None = None
    result: ServiceOutcome | None = None
    reason: Annotated[str, Field(max_length=200)] | None = None


class _WebhookEnvelope(_Strict):
    id: Annotated[str, Field(max_length=100)] | None = None
    type: Literal[tuple(WEBHOOK_TYPES)]  # type: ignore[valid-type]
    occurred_at: Annotated[StrictInt, Field(gt=0, lt=10**14)]
    data: _WebhookData


class WebhookAdapter:
    """The webhook vendor format (docs/protocol.md, "Queue machine feeds").

    Args:
        salt: ``queue.applicant_salt``.
    """

    def __init__(self, salt: SecretStr) -> None:
        self._salt = salt

    def parse(self, payload: bytes) -> QueueEvent:
        """The event in one webhook delivery.

        Raises:
            QueueAdapterError: Why the delivery cannot be used.
        """
        w = _validated(_WebhookEnvelope, payload)
        event = WEBHOOK_TYPES[w.type]
        d = w.data
        try:
            _check_needs(event, d.queue, d.target_queue, d.target_counter)
        except ValueError as exc:
            fields = "queue / target_queue / target_counter"
            raise QueueAdapterError(f"data: {exc} ({fields})") from None
        channel = None
        if d.booking is not None:
            channel = TicketChannel.APPOINTMENT if d.booking else TicketChannel.ON_SITE
        return QueueEvent(
            event=event,
            ticket=d.ticket_number,
            at=datetime.fromtimestamp(w.occurred_at / 1000, tz=UTC),
            service=d.queue,
            channel=channel,
            case_no=d.case_number,
            applicant_key=_key(d.id_number, None, self._salt),
            window=d.counter,
            staff=d.agent,
            to_service=d.target_queue,
            to_window=d.target_counter,
            outcome=d.result,
            reason=d.reason,
        )


def make_adapter(config: QueueFeedConfig, tz: tzinfo) -> TicketAdapter:
    """The adapter ``queue.adapter`` names.

    Args:
        config: The hall's queue feed settings.
        tz: The hall's timezone (for vendors that send local times).
    """
    if config.adapter is QueueAdapter.NUMERIC_STATE:
        return NumericStateAdapter(config.applicant_salt, tz)
    if config.adapter is QueueAdapter.WEBHOOK:
        return WebhookAdapter(config.applicant_salt)
    return GenericJsonAdapter(config.applicant_salt)
