"""Evaluator (评价器) message formats: each vendor's rating, normalised to named levels.

Three formats (``evaluators.adapter`` in the hall config; ``docs/evaluators.md`` shows an
example of each and its code table):

- ``generic_json``: HallWatch's own JSON, the level by name (or its Chinese label).
- ``gbt39046``: GB/T 39046-2020 style, ``satisfaction`` 1 = 非常满意 … 5 = 非常不满意,
  local time without offset.
- ``provincial``: a provincial platform style, ``pj`` 5 = 非常满意 … 1 = 非常不满意
  (the opposite numbering), ``assessTime`` in epoch milliseconds.

The numbering directions differ, so a code is turned into a :class:`RatingLevel` name
here, at the edge, and the number is never kept. Every problem raises
:class:`EvaluatorInputError` with a reason fit for the dead-letter table.

Example:
    >>> from zoneinfo import ZoneInfo
    >>> r = parse_rating(EvaluatorAdapter.PROVINCIAL,
    ...     b'{"pj": 1, "assessTime": 1793585700000, "winNo": "3"}', ZoneInfo("Asia/Shanghai"))
    >>> r.level.label, r.at.isoformat(), r.window
    ('非常不满意', '2026-11-02T10:15:00+08:00', '3')
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from hallwatch.config.feeds import EvaluatorAdapter
from hallwatch.contract import (
    CODE_PATTERN,
    ID_PATTERN,
    RATING_LABELS,
    Attitude,
    RatingChannel,
    RatingDimension,
    RatingLevel,
)

__all__ = [
    "GBT39046_CHANNELS",
    "GBT39046_LEVELS",
    "PROVINCIAL_LEVELS",
    "EvaluatorInputError",
    "VendorRating",
    "parse_rating",
]


class EvaluatorInputError(ValueError):
    """An evaluator message that cannot be used; the message is the reason."""


@dataclass(frozen=True)
class VendorRating:
    """One rating as a vendor sent it, with its codes already turned into names.

    Attributes:
        rating_id: The vendor's id of the rating, if it sends one.
        at: When the applicant rated (timezone-aware).
        level: Overall level, by name.
        dimensions: Levels of the dimensions rated separately.
        attitude: 服务态度 好/差, if asked.
        channel: 评价渠道.
        evaluation: 1 first, 2 second evaluation (二次评价).
        case_no: 办件编号.
        ticket: Ticket number as printed (the edge forms the ticket id).
        window: Window number.
        staff: Staff id.
        device: Evaluator device id.
    """

    at: datetime
    level: RatingLevel
    rating_id: str | None = None
    dimensions: Mapping[RatingDimension, RatingLevel] = field(default_factory=dict)
    attitude: Attitude | None = None
    channel: RatingChannel = RatingChannel.EVALUATOR
    evaluation: Literal[1, 2] = 1
    case_no: str | None = None
    ticket: str | None = None
    window: str | None = None
    staff: str | None = None
    device: str | None = None


# --- code tables ------------------------------------------------------------------------

GBT39046_LEVELS: dict[int, RatingLevel] = {
    1: RatingLevel.VERY_SATISFIED,
    2: RatingLevel.SATISFIED,
    3: RatingLevel.BASICALLY_SATISFIED,
    4: RatingLevel.DISSATISFIED,
    5: RatingLevel.VERY_DISSATISFIED,
}
"""GB/T 39046 style ``satisfaction`` codes: 1 = 非常满意 … 5 = 非常不满意."""

PROVINCIAL_LEVELS: dict[int, RatingLevel] = {
    5: RatingLevel.VERY_SATISFIED,
    4: RatingLevel.SATISFIED,
    3: RatingLevel.BASICALLY_SATISFIED,
    2: RatingLevel.DISSATISFIED,
    1: RatingLevel.VERY_DISSATISFIED,
}
"""Provincial ``pj`` codes, the OPPOSITE way round: 5 = 非常满意 … 1 = 非常不满意."""

GBT39046_CHANNELS: dict[int, RatingChannel] = {
    1: RatingChannel.WEB,
    2: RatingChannel.APP,
    3: RatingChannel.EVALUATOR,
    4: RatingChannel.KIOSK,
    5: RatingChannel.SMS,
    6: RatingChannel.PHONE,
    9: RatingChannel.OTHER,
}
"""GB/T 39046 style ``channel`` (评价渠道) codes: 1 网上 (PC), 2 移动端, 3 窗口评价器,
4 自助终端, 5 短信, 6 热线, 9 其他."""

_LEVEL_BY_LABEL: dict[str, RatingLevel] = {label: lvl for lvl, label in RATING_LABELS.items()}
_ATTITUDE_WORDS: dict[str, Attitude] = {
    "good": Attitude.GOOD,
    "好": Attitude.GOOD,
    "bad": Attitude.BAD,
    "差": Attitude.BAD,
}
_PROVINCIAL_ATTITUDE: dict[int, Attitude] = {1: Attitude.GOOD, 2: Attitude.BAD}
_EVALUATIONS: dict[int, str] = {1: "first", 2: "second (二次评价)"}

_MS_MIN = 946_684_800_000  # 2000-01-01: anything smaller is seconds, not milliseconds
_MS_MAX = 4_102_444_800_000  # 2100-01-01


def _named_level(value: Any) -> Any:
    """A level name or its Chinese label; a number is refused (its direction is unknown)."""
    if isinstance(value, int | float):  # bool is an int too
        names = ", ".join(lvl.value for lvl in RatingLevel)
        raise ValueError(f"a level is a name ({names}) or its Chinese label, not a number")
    if isinstance(value, str):
        return _LEVEL_BY_LABEL.get(value.strip(), value.strip())
    return value


def _code(value: Any, table: Mapping[int, Any], what: str) -> Any:
    """Look a vendor code (int, or a string of digits) up in ``table``."""
    if isinstance(value, str) and value.strip().isdigit():
        number: Any = int(value.strip())
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        number = None
    if number is None or number not in table:
        known = ", ".join(f"{code} = {_describe(item)}" for code, item in table.items())
        # The value is not quoted: a field in the wrong place may hold personal data.
        raise ValueError(f"expected one of the {what} codes ({known})")
    return table[number]


def _describe(item: Any) -> str:
    return item.label if isinstance(item, RatingLevel) else str(item)


def _code_str(value: Any) -> Any:
    """Window, staff, ticket, case numbers: vendors send some as JSON numbers."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


# --- generic_json -----------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class _GenericRating(_Strict):
    """HallWatch's reference format (``generic_json``)."""

    rating_id: str | None = Field(default=None, pattern=CODE_PATTERN)
    at: AwareDatetime
    level: RatingLevel
    dimensions: dict[RatingDimension, RatingLevel] = Field(default_factory=dict)
    attitude: Attitude | None = None
    channel: RatingChannel = RatingChannel.EVALUATOR
    evaluation: Literal[1, 2] = 1
    case_no: str | None = Field(default=None, pattern=CODE_PATTERN)
    ticket: str | None = Field(default=None, pattern=CODE_PATTERN)
    window: str | None = Field(default=None, pattern=CODE_PATTERN)
    staff: str | None = Field(default=None, pattern=CODE_PATTERN)
    device: str | None = Field(default=None, pattern=ID_PATTERN)

    @field_validator("at", mode="before")
    @classmethod
    def _time(cls, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError(
                "an RFC 3339 time with its offset is needed: 2026-11-02T10:15:00+08:00"
            )
        return value

    @field_validator("level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        return _named_level(value)

    @field_validator("dimensions", mode="before")
    @classmethod
    def _dimensions(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: _named_level(v) for k, v in value.items()}
        return value

    @field_validator("attitude", mode="before")
    @classmethod
    def _attitude(cls, value: Any) -> Any:
        if isinstance(value, str):
            return _ATTITUDE_WORDS.get(value.strip(), value)
        return value

    @field_validator("case_no", "ticket", "window", "staff", mode="before")
    @classmethod
    def _codes(cls, value: Any) -> Any:
        return _code_str(value)

    def rating(self, tz: tzinfo) -> VendorRating:
        return VendorRating(
            rating_id=self.rating_id,
            at=self.at,
            level=self.level,
            dimensions=dict(self.dimensions),
            attitude=self.attitude,
            channel=self.channel,
            evaluation=self.evaluation,
            case_no=self.case_no,
            ticket=self.ticket,
            window=self.window,
            staff=self.staff,
            device=self.device,
        )


# --- gbt39046 ---------------------------------------------------------------------------


def _alias(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class _GbtRating(_Strict):
    """GB/T 39046-2020 style record: English names, or the pinyin initials of the
    standard's Chinese data items (评价编号 pjbh, 办件编号 bjbh, …)."""

    evaluation_id: str | None = Field(
        default=None, pattern=CODE_PATTERN, validation_alias=_alias("evaluationId", "pjbh")
    )
    case_no: str | None = Field(
        default=None, pattern=CODE_PATTERN, validation_alias=_alias("caseNo", "bjbh")
    )
    channel: RatingChannel = Field(
        default=RatingChannel.EVALUATOR, validation_alias=_alias("channel", "pjqd")
    )
    evaluate_time: datetime = Field(validation_alias=_alias("evaluateTime", "pjsj"))
    evaluate_count: Literal[1, 2] = Field(
        default=1, validation_alias=_alias("evaluateCount", "pjcs")
    )
    satisfaction: RatingLevel = Field(validation_alias=_alias("satisfaction", "myd"))
    dimensions: dict[RatingDimension, RatingLevel] = Field(
        default_factory=dict, validation_alias=_alias("dimensions", "fxpj")
    )
    attitude: Attitude | None = Field(default=None, validation_alias=_alias("attitude", "fwtd"))
    ticket: str | None = Field(
        default=None, pattern=CODE_PATTERN, validation_alias=_alias("ticketNo", "phbh")
    )
    window: str | None = Field(
        default=None, pattern=CODE_PATTERN, validation_alias=_alias("windowNo", "ckbh")
    )
    staff: str | None = Field(
        default=None, pattern=CODE_PATTERN, validation_alias=_alias("staffNo", "gzrybh")
    )
    device: str | None = Field(
        default=None, pattern=ID_PATTERN, validation_alias=_alias("deviceId", "sbbh")
    )

    @field_validator("satisfaction", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        return _code(value, GBT39046_LEVELS, "satisfaction")

    @field_validator("dimensions", mode="before")
    @classmethod
    def _dimensions(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: _code(v, GBT39046_LEVELS, f"dimension {k}") for k, v in value.items()}
        return value

    @field_validator("channel", mode="before")
    @classmethod
    def _channel(cls, value: Any) -> Any:
        return _code(value, GBT39046_CHANNELS, "channel")

    @field_validator("attitude", mode="before")
    @classmethod
    def _attitude(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str) and value.strip() in ("好", "差"):
            return _ATTITUDE_WORDS[value.strip()]
        raise ValueError("attitude (服务态度): expected 好 or 差")

    @field_validator("evaluate_count", mode="before")
    @classmethod
    def _count(cls, value: Any) -> Any:
        _code(value, _EVALUATIONS, "evaluateCount")
        return int(value)

    @field_validator("evaluate_time", mode="before")
    @classmethod
    def _time(cls, value: Any) -> Any:
        hint = "evaluateTime is 'YYYY-MM-DD HH:MM:SS', hall-local time"
        if not isinstance(value, str):
            raise ValueError(hint)
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(hint) from None

    @field_validator("ticket", "window", "staff", "case_no", mode="before")
    @classmethod
    def _codes(cls, value: Any) -> Any:
        return _code_str(value)

    def rating(self, tz: tzinfo) -> VendorRating:
        at = self.evaluate_time
        if at.tzinfo is None:
            at = at.replace(tzinfo=tz)
        return VendorRating(
            rating_id=self.evaluation_id,
            at=at,
            level=self.satisfaction,
            dimensions=dict(self.dimensions),
            attitude=self.attitude,
            channel=self.channel,
            evaluation=self.evaluate_count,
            case_no=self.case_no,
            ticket=self.ticket,
            window=self.window,
            staff=self.staff,
            device=self.device,
        )


# --- provincial -------------------------------------------------------------------------


class _ProvincialRating(_Strict):
    """A provincial platform style: ``pj`` 5 = 非常满意 … 1 = 非常不满意."""

    assess_id: str | None = Field(default=None, pattern=CODE_PATTERN, alias="assessId")
    project_no: str | None = Field(default=None, pattern=CODE_PATTERN, alias="projectNo")
    pj: RatingLevel
    eval_detail: dict[RatingDimension, RatingLevel] = Field(
        default_factory=dict, alias="evalDetail"
    )
    assess_number: Literal[1, 2] = Field(default=1, alias="assessNumber")
    assess_time: int = Field(alias="assessTime")
    attitude: Attitude | None = None
    ticket_no: str | None = Field(default=None, pattern=CODE_PATTERN, alias="ticketNo")
    win_no: str | None = Field(default=None, pattern=CODE_PATTERN, alias="winNo")
    staff_id: str | None = Field(default=None, pattern=CODE_PATTERN, alias="staffId")
    device_no: str | None = Field(default=None, pattern=ID_PATTERN, alias="deviceNo")

    @field_validator("pj", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        return _code(value, PROVINCIAL_LEVELS, "pj")

    @field_validator("eval_detail", mode="before")
    @classmethod
    def _dimensions(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: _code(v, PROVINCIAL_LEVELS, f"evalDetail {k}") for k, v in value.items()}
        return value

    @field_validator("attitude", mode="before")
    @classmethod
    def _attitude(cls, value: Any) -> Any:
        return None if value is None else _code(value, _PROVINCIAL_ATTITUDE, "attitude")

    @field_validator("assess_number", mode="before")
    @classmethod
    def _count(cls, value: Any) -> Any:
        _code(value, _EVALUATIONS, "assessNumber")
        return int(value)

    @field_validator("assess_time", mode="before")
    @classmethod
    def _epoch_ms(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("assessTime is an integer, epoch milliseconds")
        if not _MS_MIN <= value < _MS_MAX:
            raise ValueError("assessTime: expected epoch milliseconds between 2000 and 2100")
        return value

    @field_validator("project_no", "ticket_no", "win_no", "staff_id", mode="before")
    @classmethod
    def _codes(cls, value: Any) -> Any:
        return _code_str(value)

    def rating(self, tz: tzinfo) -> VendorRating:
        at = datetime.fromtimestamp(self.assess_time / 1000, UTC).astimezone(tz)
        return VendorRating(
            rating_id=self.assess_id,
            at=at,
            level=self.pj,
            dimensions=dict(self.eval_detail),
            attitude=self.attitude,
            evaluation=self.assess_number,
            case_no=self.project_no,
            ticket=self.ticket_no,
            window=self.win_no,
            staff=self.staff_id,
            device=self.device_no,
        )


# --- entry point ------------------------------------------------------------------------

_Format = type[_GenericRating] | type[_GbtRating] | type[_ProvincialRating]

_FORMATS: dict[EvaluatorAdapter, _Format] = {
    EvaluatorAdapter.GENERIC_JSON: _GenericRating,
    EvaluatorAdapter.GBT39046: _GbtRating,
    EvaluatorAdapter.PROVINCIAL: _ProvincialRating,
}


def _reason(exc: ValidationError) -> str:
    """One line per problem: ``field: message`` (inputs left out: they may be personal)."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err["loc"]) or "message"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


def parse_rating(adapter: EvaluatorAdapter, payload: bytes | str, tz: tzinfo) -> VendorRating:
    """Parse one evaluator message in the ``adapter``'s format.

    Args:
        adapter: The vendor format (``evaluators.adapter``).
        payload: The MQTT payload (UTF-8 JSON, one object).
        tz: The hall's timezone, for formats that send local times.

    Returns:
        The rating, level and dimensions by name.

    Raises:
        EvaluatorInputError: Not JSON, not an object, an unknown field, a missing or
            invalid value, an unknown code; the message says which and why.

    Example:
        >>> from zoneinfo import ZoneInfo
        >>> r = parse_rating(EvaluatorAdapter.GBT39046,
        ...     '{"bjbh": "C1", "pjsj": "2026-11-02 10:15:00", "myd": 4}',
        ...     ZoneInfo("Asia/Shanghai"))
        >>> r.level.value, r.case_no, r.at.isoformat()
        ('dissatisfied', 'C1', '2026-11-02T10:15:00+08:00')
    """
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise EvaluatorInputError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise EvaluatorInputError(f"not a JSON object but a {type(data).__name__}")
    model = _FORMATS[EvaluatorAdapter(adapter)]
    try:
        record = model.model_validate(data)
    except ValidationError as exc:
        raise EvaluatorInputError(f"{adapter} rating: {_reason(exc)}") from exc
    return record.rating(tz)
