"""An independent oracle of the 异常办件 a queue-machine and evaluator log must open.

It reads only the log (the generic JSON messages the queue machine and the evaluators
publish) and applies ``docs/cases.md`` sections 1–3 with the default wait settings
(``wait_start: issued``, ``wait_end: first_call``, ``wait_counts: service_time``) and
``clock: events``. It imports nothing from ``edge`` or ``aggregator`` and does its own
service-time arithmetic, so a shared bug cannot hide.

What it computes, per the rule book:

- ``wait_over_limit`` per ticket leg (``ticket_id``, ``leg``): the leg's wait clock starts
  at issue (leg 1) or at the transfer that started it, counts only service time, and
  stops at the leg's first ``called`` (or ``service_started`` if no call came), at a
  transfer, at ``abandoned``, or at the issue day's closing time (the edge abandons the
  ticket then). The anomaly opens at the moment the counted wait reaches the limit, if
  that moment comes before the clock stops and the events clock gets there at all (some
  later queue event is at or after it). Its window is the window of the call that
  stopped the leg's clock (``None`` if none did).
- ``trips_over_promise`` per case: visits are hall-local dates with a ``service_ended``
  of a ticket of the case; it opens at the ``service_ended`` that first makes the count
  exceed the promise, with that ticket's window; ``trips`` is the final count.
- ``bad_rating`` / ``bad_attitude`` per rating id; a second evaluation (``evaluation: 2``)
  for a case that already has a rating anomaly (same ``case_no``, else same ticket id)
  opens nothing.

Example:
    >>> policy = OraclePolicy(salt="0123456789abcdef")
    >>> log = [
    ...     ("queue", '{"event": "issued", "ticket": "A001", "service": "A",'
    ...               ' "at": "2026-11-02T09:00:10+08:00"}'),
    ...     ("queue", '{"event": "called", "ticket": "A001", "service": "A", "window": "3",'
    ...               ' "at": "2026-11-02T09:40:00+08:00"}'),
    ... ]
    >>> [(a.kind, a.ticket_id, a.leg, a.window) for a in expected_anomalies(log, policy)]
    [('wait_over_limit', '20261102-A001', 1, '3')]
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

BAD_LEVELS = frozenset({"dissatisfied", "very_dissatisfied"})
WAIT_ENDING = frozenset({"called", "service_started"})
TICKET_ENDING = frozenset({"service_ended", "abandoned"})
_SECOND = timedelta(seconds=1)
_STATE_AFTER = {
    "checked_in": "waiting",
    "called": "called",
    "recalled": "called",
    "no_show": "no_show",
    "service_started": "in_service",
    "transferred": "waiting",
}
_ABANDONED_AT_CLOSE = frozenset({"waiting", "called", "no_show"})


@dataclass(frozen=True)
class OraclePolicy:
    """The hall settings the oracle needs (defaults: the rule book's defaults).

    Attributes:
        salt: ``queue.applicant_salt``.
        timezone: Hall timezone.
        open_weekdays: Weekday numbers (Monday 0) the hall opens.
        closed_dates: Extra days off.
        open_at: Opening time.
        close_at: Closing time.
        lunch: Lunch break ``(start, end)`` or None.
        lunch_closed: Whether the hall closes for lunch (wait clocks pause).
        wait_limit_s: Default wait limit.
        service_limits_s: Per-service wait limits.
        promised_trips: Default promised trips.
        service_promises: Per-service promised trips.
        trip_link_days: Visits older than this before the newest are forgotten.
    """

    salt: str
    timezone: str = "Asia/Shanghai"
    open_weekdays: frozenset[int] = frozenset(range(5))
    closed_dates: frozenset[date] = frozenset()
    open_at: time = time(9)
    close_at: time = time(17)
    lunch: tuple[time, time] | None = (time(12), time(13, 30))
    lunch_closed: bool = True
    wait_limit_s: float = 1800.0
    service_limits_s: dict[str, float] = field(default_factory=dict)
    promised_trips: int = 1
    service_promises: dict[str, int] = field(default_factory=dict)
    trip_link_days: int = 90

    @property
    def tz(self) -> ZoneInfo:
        """The hall's timezone."""
        return ZoneInfo(self.timezone)

    def periods(self, day: date) -> list[tuple[datetime, datetime]]:
        """Aware service periods of one local day (empty on a closed day)."""
        if day.weekday() not in self.open_weekdays or day in self.closed_dates:
            return []
        spans = [(self.open_at, self.close_at)]
        if self.lunch is not None and self.lunch_closed:
            spans = [(self.open_at, self.lunch[0]), (self.lunch[1], self.close_at)]
        tz = self.tz
        return [(datetime.combine(day, a, tz), datetime.combine(day, b, tz)) for a, b in spans]

    def closing(self, day: date) -> datetime:
        """When service ends on a local day (midnight after it on a closed day)."""
        periods = self.periods(day)
        if periods:
            return periods[-1][1]
        return datetime.combine(day + timedelta(days=1), time(0), self.tz)

    def limit_reached(self, start: datetime, limit_s: float) -> datetime | None:
        """When a clock started at ``start`` has counted ``limit_s`` of service time, if
        that happens on the start's local day."""
        remaining = limit_s
        for a, b in self.periods(start.astimezone(self.tz).date()):
            lo = max(a, start)
            if lo >= b:
                continue
            span = (b - lo).total_seconds()
            if remaining <= span:
                return lo + timedelta(seconds=remaining)
            remaining -= span
        return None

    def applicant_key(self, id_number: str) -> str:
        """The rule book's applicant key of a raw ID number."""
        normal = id_number.upper().replace(" ", "")
        digest = hmac.new(self.salt.encode(), normal.encode(), hashlib.sha256).hexdigest()
        return digest[:32]


@dataclass(frozen=True, order=True)
class ExpectedAnomaly:
    """One anomaly the system must open.

    Attributes:
        kind: ``wait_over_limit``, ``trips_over_promise``, ``bad_rating``, ``bad_attitude``.
        key: ``<ticket_id>#<leg>`` for a wait, the ``case_ref`` for trips, the rating id.
        window: The window it is (eventually) attributed to, or None.
        opened: When it opens (UTC).
        case_no: The case number (trips and ratings), if known.
        trips: Trips (visits) of the case, for ``trips_over_promise``.
    """

    kind: str
    key: str
    window: str | None
    opened: datetime
    case_no: str | None = None
    trips: int | None = None

    @property
    def ticket_id(self) -> str | None:
        """The ticket id of a wait anomaly."""
        return self.key.split("#")[0] if self.kind == "wait_over_limit" else None

    @property
    def leg(self) -> int | None:
        """The leg of a wait anomaly."""
        return int(self.key.split("#")[1]) if self.kind == "wait_over_limit" else None


@dataclass
class _Leg:
    service: str
    start: datetime
    stop: datetime | None = None
    window: str | None = None


@dataclass
class _Ticket:
    ticket_id: str
    issued_on: date
    service: str
    legs: list[_Leg]
    state: str = "waiting"
    case_no: str | None = None
    applicant: str | None = None


def _parse(at: str) -> datetime:
    value = datetime.fromisoformat(at)
    if value.tzinfo is None:
        raise ValueError(f"naive time {at!r}")
    return value.astimezone(UTC)


def expected_anomalies(
    log: Iterable[tuple[str, str]], policy: OraclePolicy
) -> set[ExpectedAnomaly]:
    """The anomalies a correct edge and aggregator open for a clean, well-formed log.

    Args:
        log: ``(feed, json)`` in publishing order; feed ``queue`` or ``evaluators``.
        policy: The hall's settings.

    Returns:
        One :class:`ExpectedAnomaly` per anomaly.

    Raises:
        ValueError: The log is not clean: an event for a ticket never issued, or for one
            the edge has abandoned at closing time (waiting, called or no-show then).
    """
    queue: list[dict[str, object]] = []
    ratings: list[dict[str, object]] = []
    for feed, text in log:
        (queue if feed == "queue" else ratings).append(json.loads(text))
    tickets = _replay_tickets(queue, policy)
    clock = max((_parse(str(m["at"])) for m in queue), default=None)
    out = _waits(tickets, policy, clock)
    out |= _trips(queue, policy)
    out |= _ratings(ratings, policy)
    return out


def _replay_tickets(queue: list[dict[str, object]], policy: OraclePolicy) -> list[_Ticket]:
    """Every ticket with its legs, from the queue messages in order."""
    tz = policy.tz
    live: dict[str, list[_Ticket]] = {}
    every: list[_Ticket] = []
    for msg in queue:
        at = _parse(str(msg["at"]))
        local = at.astimezone(tz).date()
        number = str(msg["ticket"])
        event = str(msg["event"])
        if event == "issued":
            issued_on = date.fromisoformat(str(msg.get("issued_on") or local.isoformat()))
            service = str(msg["service"])
            ticket = _Ticket(
                f"{issued_on:%Y%m%d}-{number}", issued_on, service, [_Leg(service, at)]
            )
            live.setdefault(number, []).append(ticket)
            every.append(ticket)
            continue
        candidates = [t for t in live.get(number, []) if t.issued_on <= local]
        if not candidates:
            raise ValueError(f"event for a ticket never issued: {msg}")
        ticket = candidates[-1]
        if ticket.state in _ABANDONED_AT_CLOSE and at >= policy.closing(ticket.issued_on):
            raise ValueError(f"event for a ticket the edge abandoned at closing time: {msg}")
        ticket.state = _STATE_AFTER.get(event, ticket.state)
        leg = ticket.legs[-1]
        if event in WAIT_ENDING and leg.stop is None:
            leg.stop, leg.window = at, str(msg["window"])
        elif event == "transferred":
            if leg.stop is None:
                leg.stop = at
            ticket.service = str(msg["to_service"])
            ticket.legs.append(_Leg(ticket.service, at))
        elif event in TICKET_ENDING:
            if leg.stop is None:
                leg.stop = at
            live[number].remove(ticket)
    return every


def _waits(
    tickets: list[_Ticket], policy: OraclePolicy, clock: datetime | None
) -> set[ExpectedAnomaly]:
    out: set[ExpectedAnomaly] = set()
    if clock is None:
        return out
    for ticket in tickets:
        closing = policy.closing(ticket.issued_on)
        for n, leg in enumerate(ticket.legs, start=1):
            limit = policy.service_limits_s.get(leg.service, policy.wait_limit_s)
            reached = policy.limit_reached(leg.start, limit)
            stop = min(leg.stop or closing, closing)
            if reached is None or reached >= stop or reached > clock:
                continue
            key = f"{ticket.ticket_id}#{n}"
            out.add(ExpectedAnomaly("wait_over_limit", key, leg.window, reached))
    return out


def limit_margins(log: Iterable[tuple[str, str]], policy: OraclePolicy) -> list[float]:
    """Seconds between each leg's limit moment and what could stop or miss it (its clock
    stop, the day's close, the last event): a log whose smallest margin is under a second
    depends on how an implementation orders ties, so a generator should avoid it."""
    queue = [json.loads(text) for feed, text in log if feed == "queue"]
    clock = max(_parse(str(m["at"])) for m in queue)
    margins: list[float] = []
    for ticket in _replay_tickets(queue, policy):
        closing = policy.closing(ticket.issued_on)
        for leg in ticket.legs:
            limit = policy.service_limits_s.get(leg.service, policy.wait_limit_s)
            reached = policy.limit_reached(leg.start, limit)
            if reached is None or (leg.stop is not None and leg.stop < reached - _SECOND):
                continue  # stopped well before its limit: nothing to order
            for other in (leg.stop, closing, clock):
                if other is not None:
                    margins.append(abs((reached - other).total_seconds()))
    return margins


def _trips(queue: list[dict[str, object]], policy: OraclePolicy) -> set[ExpectedAnomaly]:
    tz = policy.tz
    live: dict[str, list[dict[str, object]]] = {}
    visits: dict[str, set[date]] = {}
    reported: dict[str, int] = {}
    opened: dict[str, ExpectedAnomaly] = {}
    for msg in queue:
        at = _parse(str(msg["at"]))
        local = at.astimezone(tz).date()
        number = str(msg["ticket"])
        if msg["event"] == "issued":
            ticket: dict[str, object] = {"service": msg["service"], "on": local}
            live.setdefault(number, []).append(ticket)
        else:
            ticket = [t for t in live[number] if t["on"] <= local][-1]  # type: ignore[operator]
        if msg.get("case_no"):
            ticket["case_no"] = msg["case_no"]
        if msg.get("id_number"):
            ticket["applicant"] = policy.applicant_key(str(msg["id_number"]))
        if msg.get("to_service"):
            ticket["service"] = msg["to_service"]
        if msg["event"] in TICKET_ENDING:
            live[number].remove(ticket)
        if msg["event"] != "service_ended":
            continue
        service = str(ticket["service"])
        applicant_ref = (
            f"applicant:{ticket['applicant']}:{service}" if "applicant" in ticket else None
        )
        if "case_no" in ticket:
            ref = f"case:{ticket['case_no']}"
            if applicant_ref is not None:  # the applicant's visits merge into the case
                visits.setdefault(ref, set()).update(visits.pop(applicant_ref, set()))
        elif applicant_ref is not None:
            ref = applicant_ref
        else:
            continue
        days = visits.setdefault(ref, set())
        days.add(local)
        newest = max(days)
        days -= {d for d in days if (newest - d).days > policy.trip_link_days}
        promised = policy.service_promises.get(service, policy.promised_trips)
        count = len(days)
        if count <= promised or count <= reported.get(ref, 0):
            continue
        reported[ref] = count
        case_no = str(ticket["case_no"]) if "case_no" in ticket else None
        first = opened.get(ref)
        window = str(msg["window"]) if msg.get("window") else None
        if first is None:
            opened[ref] = ExpectedAnomaly("trips_over_promise", ref, window, at, case_no, count)
        else:
            opened[ref] = ExpectedAnomaly(
                "trips_over_promise", ref, first.window, first.opened, first.case_no, count
            )
    return set(opened.values())


def _ratings(ratings: list[dict[str, object]], policy: OraclePolicy) -> set[ExpectedAnomaly]:
    tz = policy.tz
    out: set[ExpectedAnomaly] = set()
    seen: set[str] = set()
    by_case: set[str] = set()
    by_ticket: set[str] = set()
    for msg in ratings:
        rating_id = str(msg["rating_id"])
        if rating_id in seen:
            continue
        seen.add(rating_id)
        at = _parse(str(msg["at"]))
        case_no = str(msg["case_no"]) if msg.get("case_no") else None
        ticket_id = f"{at.astimezone(tz):%Y%m%d}-{msg['ticket']}" if msg.get("ticket") else None
        if msg.get("evaluation") == 2:
            known = case_no in by_case if case_no else ticket_id in by_ticket
            if known:
                continue
        dims = msg.get("dimensions") or {}
        assert isinstance(dims, dict)
        level = str(msg["level"])
        if level in BAD_LEVELS:
            kind = "bad_rating"
        elif msg.get("attitude") == "bad" or dims.get("attitude") in BAD_LEVELS:
            kind = "bad_attitude"
        else:
            continue
        window = str(msg["window"]) if msg.get("window") else None
        out.add(ExpectedAnomaly(kind, rating_id, window, at, case_no))
        if case_no:
            by_case.add(case_no)
        if ticket_id:
            by_ticket.add(ticket_id)
    return out
