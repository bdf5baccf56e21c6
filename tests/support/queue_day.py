"""A busy day of one hall's queue machine and evaluators, generated from a seed.

:func:`generate_day` simulates a hall of 40 windows and 8 services (each with its
department) through Monday 2026-11-02 (Asia/Shanghai; 09:00–17:00, lunch 12:00–13:30
with the hall closed, ``lunch_closed: true``), plus a light Thursday 10-29 and Friday
10-30 that hold the first visits of the cases that come back. The morning peak backs
the queues up (many waits over 30 minutes); the day has on-site and appointment tickets,
check-ins, no-shows (some recalled, some dropped, some never back), transfers to another
queue (after service starts, and by the guide while waiting), applicants who give up,
tickets still waiting at closing time, evaluator ratings with 差评, 服务态度差 and a few
second evaluations. Returning cases cover the trip rules: case number on both visits, a
third trip, an applicant-only case, an applicant's visit merged into a case number, two
tickets of one case on one day; and cases that must *not* count (same day only, an
abandoned first ticket, another service).

The output is the message log in the generic JSON formats (``(feed, json)`` with feed
``queue`` or ``evaluators``, in publishing order) and the raw ID numbers in it.
:func:`with_noise` mixes malformed and duplicated messages into a log. The anomalies a
log must open come from :func:`tests.support.queue_oracle.expected_anomalies`, which
knows nothing of this generator.

Example:
    >>> day = generate_day(seed=7, busy_tickets=300)
    >>> day.busy_tickets >= 300 and day.messages[0][0] == "queue"
    True
"""

from __future__ import annotations

import heapq
import itertools
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hallwatch.config import HallConfig
from tests.support.queue_oracle import (
    ExpectedAnomaly,
    OraclePolicy,
    expected_anomalies,
    limit_margins,
)

__all__ = [
    "BUSY_DAY",
    "ExpectedAnomaly",
    "OraclePolicy",
    "QueueDay",
    "expected_anomalies",
    "fake_id_number",
    "generate_day",
    "hall_config",
    "policy",
    "with_noise",
]

TZ = ZoneInfo("Asia/Shanghai")
BUSY_DAY = date(2026, 11, 2)
EARLIER_DAYS = (date(2026, 10, 29), date(2026, 10, 30))
SALT = "queue-day-test-salt-7f3a9c"
OPEN, LUNCH_START, LUNCH_END, CLOSE = time(9), time(12), time(13, 30), time(17)
WAIT_LIMIT_S = 1800.0
"""The rule book's default wait limit, which every generated service keeps."""
LAST_CALL = timedelta(minutes=3)
"""Windows stop calling this long before closing, so a call is answered before it (the
edge abandons a ticket still called or no-show at closing time)."""
_LATE_TRANSFER = timedelta(minutes=15)
REGIONS = ("110105", "310104", "440305", "330106", "510107", "320102", "420106", "610113")


@dataclass(frozen=True)
class Service:
    """One queue of the machine.

    Attributes:
        code: Service code (ticket prefix).
        name: Display name.
        department: Department id.
        windows: Windows that serve it.
        mean_min: Mean service minutes.
        weight: Share of the tickets.
        transfer_to: The queue its transfers go to.
    """

    code: str
    name: str
    department: str
    windows: tuple[str, ...]
    mean_min: float
    weight: float
    transfer_to: str | None


def _w(first: int, last: int) -> tuple[str, ...]:
    return tuple(str(n) for n in range(first, last + 1))


SERVICES = (
    Service("A", "社保业务", "hrss", _w(1, 7), 2.8, 0.20, "B"),
    Service("B", "医保业务", "nhsa", _w(8, 12), 2.8, 0.13, "A"),
    Service("C", "税务业务", "tax", _w(13, 19), 3.8, 0.16, "D"),
    Service("D", "不动产登记", "land", _w(20, 25), 5.0, 0.11, "C"),
    Service("E", "市场主体登记", "amr", _w(26, 30), 4.5, 0.10, "C"),
    Service("F", "住房公积金", "hpf", _w(31, 34), 2.8, 0.12, "A"),
    Service("G", "户籍出入境", "police", _w(35, 37), 3.0, 0.10, None),
    Service("H", "综合咨询", "general", _w(38, 40), 1.6, 0.08, "A"),
)
DEPARTMENTS = {
    "hrss": "人社局",
    "nhsa": "医保局",
    "tax": "税务局",
    "land": "自然资源局",
    "amr": "市场监管局",
    "hpf": "公积金中心",
    "police": "公安局",
    "general": "政务服务中心",
}
_BY_CODE = {s.code: s for s in SERVICES}
_WINDOW_SERVICE = {w: s.code for s in SERVICES for w in s.windows}
# (start, end, weight) of on-site arrivals on the busy day, hall-local
_ARRIVALS = (
    (time(8, 40), time(9, 0), 4.0),
    (time(9, 0), time(10, 30), 29.0),
    (time(10, 30), time(12, 0), 21.0),
    (time(13, 0), time(13, 30), 2.0),
    (time(13, 30), time(15, 0), 21.0),
    (time(15, 0), time(16, 30), 18.0),
    (time(16, 30), time(16, 55), 3.0),
)
_OUTCOMES = (
    ("completed", 70),
    ("accepted", 14),
    ("incomplete", 7),
    ("consulted", 6),
    ("rejected", 2),
    ("other", 1),
)
_LEVELS = (
    ("very_satisfied", 70),
    ("satisfied", 17),
    ("basically_satisfied", 7),
    ("dissatisfied", 4),
    ("very_dissatisfied", 2),
)


def policy() -> OraclePolicy:
    """The oracle's view of the generated hall (rule-book defaults)."""
    return OraclePolicy(salt=SALT, lunch=(LUNCH_START, LUNCH_END), lunch_closed=True)


def fake_id_number(rng: random.Random) -> str:
    """A well-formed (checksummed) but fake 18-character resident ID number."""
    born = date(1950, 1, 1) + timedelta(days=rng.randrange(365 * 55))
    body = f"{rng.choice(REGIONS)}{born:%Y%m%d}{rng.randrange(1, 1000):03d}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(d) * w for d, w in zip(body, weights, strict=True))
    return body + "10X98765432"[total % 11]


@dataclass
class _Plan:
    """One ticket: what is scripted for it, then what happened (its events)."""

    day: date
    service: str
    issued: datetime
    channel: str = "on_site"
    id_number: str | None = None
    id_as_sent: str | None = None
    case_no: str | None = None
    outcome: str | None = None
    window_only: str | None = None
    callable_: bool = True
    give_up: datetime | None = None
    guide_to: tuple[str, datetime] | None = None
    no_show: str | None = None  # "back", "drop" or "gone"
    back_after: timedelta = timedelta(0)
    transfer: bool = False
    direct_start: bool = False
    scripted: bool = False
    # filled by the simulation
    seq: int = 0
    number: str = ""
    ready: datetime | None = None
    leg_start: datetime | None = None
    priority: int = 1
    state: str = "waiting"
    events: list[tuple[datetime, dict[str, Any]]] = field(default_factory=list)
    window: str | None = None

    def add(self, at: datetime, event: str, **fields: Any) -> datetime:
        """Append an event at least a second after the previous one; returns its time."""
        if self.events and at <= self.events[-1][0]:
            at = self.events[-1][0] + timedelta(seconds=1)
        body: dict[str, Any] = {"event": event, "ticket": self.number, "service": self.service}
        body.update({k: v for k, v in fields.items() if v is not None})
        self.events.append((at, body))
        return at


@dataclass
class QueueDay:
    """A generated log.

    Attributes:
        messages: ``(feed, json)`` in publishing order (feed ``queue`` or ``evaluators``).
        id_numbers: Every raw ID number in the log, as sent and normalised.
        busy_tickets: Tickets issued on the busy day.
        tickets: Tickets issued on all days.
        counts: Event and situation counts (for the test's report).
    """

    messages: list[tuple[str, str]]
    id_numbers: list[str]
    busy_tickets: int
    tickets: int
    counts: dict[str, int]


class _Sim:
    """One day's windows calling tickets, in time order."""

    def __init__(self, day: date, plans: list[_Plan], rng: random.Random) -> None:
        self.day = day
        self.rng = rng
        self.plans = plans
        self.policy = policy()
        self.close = datetime.combine(day, CLOSE, TZ)
        self.pool: dict[str, list[_Plan]] = {s.code: [] for s in SERVICES}
        self.returns: dict[str, list[tuple[datetime, _Plan]]] = {w: [] for w in _WINDOW_SERVICE}
        self.give_ups: list[tuple[datetime, int, _Plan]] = []
        self.guides: list[tuple[datetime, int, _Plan]] = []
        counters: Counter[str] = Counter()
        for seq, plan in enumerate(sorted(plans, key=lambda p: p.issued)):
            counters[plan.service] += 1
            plan.seq = seq
            plan.number = f"{plan.service}{counters[plan.service]:03d}"
            self._issue(plan)

    def _issue(self, plan: _Plan) -> None:
        plan.leg_start = plan.issued
        plan.add(
            plan.issued,
            "issued",
            channel=plan.channel,
            id_number=plan.id_as_sent if plan.channel == "on_site" else None,
            case_no=plan.case_no if not plan.callable_ else None,
        )
        plan.ready = plan.issued
        if plan.channel == "appointment":
            plan.priority = 0
            checked = plan.issued + timedelta(seconds=self.rng.randint(20, 150))
            plan.ready = plan.add(checked, "checked_in", id_number=plan.id_as_sent)
        if not plan.callable_:
            plan.ready = None
        self.pool[plan.service].append(plan)
        if plan.give_up is not None:
            heapq.heappush(self.give_ups, (plan.give_up, plan.seq, plan))
        if plan.guide_to is not None:
            heapq.heappush(self.guides, (plan.guide_to[1], plan.seq, plan))

    def run(self) -> None:
        """Serve the day: every window calls while the hall serves."""
        heap: list[tuple[datetime, str]] = []
        start = datetime.combine(self.day, OPEN, TZ)
        for window in _WINDOW_SERVICE:
            heapq.heappush(heap, (start + timedelta(seconds=self.rng.randint(0, 90)), window))
        while heap:
            t, window = heapq.heappop(heap)
            t = self._in_service(t)
            if t is None:
                continue
            self._housekeeping(t)
            free = self._step(window, t)
            heapq.heappush(heap, (free, window))
        self._housekeeping(self.close - timedelta(seconds=1))

    def _in_service(self, t: datetime) -> datetime | None:
        lunch_start = datetime.combine(self.day, LUNCH_START, TZ)
        lunch_end = datetime.combine(self.day, LUNCH_END, TZ)
        if lunch_start <= t < lunch_end:
            t = lunch_end + timedelta(seconds=self.rng.randint(0, 120))
        return t if t < self.close - LAST_CALL else None

    def _housekeeping(self, t: datetime) -> None:
        """Guide transfers and give-ups due by ``t`` (only of tickets still waiting)."""
        while self.guides and self.guides[0][0] <= t:
            at, _, plan = heapq.heappop(self.guides)
            if plan.state != "waiting" or plan.guide_to is None:
                continue
            to = plan.guide_to[0]
            at = plan.add(at, "transferred", to_service=to)
            self.pool[plan.service].remove(plan)
            plan.service, plan.ready, plan.leg_start = to, at, at
            self.pool[to].append(plan)
        while self.give_ups and self.give_ups[0][0] <= t:
            at, _, plan = heapq.heappop(self.give_ups)
            if plan.state == "waiting":
                plan.add(at, "abandoned", reason="left")
                plan.state = "done"
                self.pool[plan.service].remove(plan)

    def _untie(self, plan: _Plan, t: datetime) -> datetime:
        """Never stop a clock on the very second its limit passes (ties are ambiguous)."""
        assert plan.leg_start is not None
        reached = self.policy.limit_reached(plan.leg_start.astimezone(UTC), WAIT_LIMIT_S)
        return (
            t + timedelta(seconds=2)
            if reached is not None and abs(reached - t) < timedelta(seconds=2)
            else t
        )

    def _step(self, window: str, t: datetime) -> datetime:
        """The window at ``t``: serve someone, or say when to look again."""
        staff = f"S{int(window):02d}"
        back = [item for item in self.returns[window] if item[0] <= t]
        if back:
            item = min(back, key=lambda i: i[0])
            self.returns[window].remove(item)
            plan = item[1]
            t = plan.add(t, "recalled", window=window, staff=staff)
            return self._serve(plan, window, staff, t + timedelta(seconds=self.rng.randint(20, 60)))
        service = _WINDOW_SERVICE[window]
        ready = [
            p for p in self.pool[service] if p.ready is not None and p.window_only in (None, window)
        ]
        now = [p for p in ready if p.ready is not None and p.ready <= t]
        if not now:
            upcoming = [p.ready for p in ready if p.ready is not None]
            upcoming += [b for b, _ in self.returns[window]]
            nxt = min(upcoming, default=t + timedelta(minutes=5))
            return min(max(nxt, t + timedelta(seconds=5)), t + timedelta(seconds=60))
        plan = min(now, key=lambda p: (p.priority, p.ready, p.seq))
        self.pool[service].remove(plan)
        t = self._untie(plan, t)
        plan.state, plan.window = "called", window
        if plan.direct_start:
            return self._serve(plan, window, staff, t)
        t = plan.add(t, "called", window=window, staff=staff)
        if plan.no_show is not None:
            gone = plan.add(t + timedelta(seconds=self.rng.randint(60, 120)), "no_show")
            plan.state = "no_show"
            if plan.no_show == "back":
                self.returns[window].append((gone + plan.back_after, plan))
            elif plan.no_show == "drop" and gone + timedelta(minutes=11) < self.close:
                plan.add(gone + timedelta(minutes=10), "abandoned", reason="no_show")
                plan.state = "done"
            return gone + timedelta(seconds=5)
        return self._serve(plan, window, staff, t + timedelta(seconds=self.rng.randint(10, 40)))

    def _serve(self, plan: _Plan, window: str, staff: str, at: datetime) -> datetime:
        spec = _BY_CODE[plan.service]
        case_no = plan.case_no
        if case_no is None and not plan.scripted and self.rng.random() < 0.6:
            case_no = f"{plan.service}{self.day:%Y%m%d}{plan.seq:05d}"
            plan.case_no = case_no
        early = self.rng.random() < 0.5
        at = plan.add(
            at, "service_started", window=window, staff=staff, case_no=case_no if early else None
        )
        minutes = spec.mean_min * self.rng.lognormvariate(0, 0.45)
        if plan.transfer and spec.transfer_to is not None and at < self.close - _LATE_TRANSFER:
            moved = plan.add(
                at + timedelta(seconds=self.rng.randint(60, 240)),
                "transferred",
                window=window,
                staff=staff,
                to_service=spec.transfer_to,
            )
            plan.service, plan.ready, plan.leg_start = spec.transfer_to, moved, moved
            plan.transfer, plan.state, plan.priority = False, "waiting", 1
            self.pool[plan.service].append(plan)
            return moved + timedelta(seconds=self.rng.randint(5, 20))
        outcome = plan.outcome or _pick(self.rng, _OUTCOMES)
        end = plan.add(
            at + timedelta(seconds=max(30, int(minutes * 60))),
            "service_ended",
            window=window,
            staff=staff,
            outcome=outcome,
            case_no=case_no,
        )
        plan.state = "done"
        return end + timedelta(seconds=self.rng.randint(3, 15))


def _pick(rng: random.Random, table: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([k for k, _ in table], weights=[w for _, w in table])[0]


def _service(rng: random.Random) -> str:
    return rng.choices([s.code for s in SERVICES], weights=[s.weight for s in SERVICES])[0]


def _random_plans(
    day: date, count: int, rng: random.Random, ids: set[str], arrivals: tuple[Any, ...]
) -> list[_Plan]:
    plans: list[_Plan] = []
    total = sum(w for _, _, w in arrivals)
    for start, end, weight in arrivals:
        lo = datetime.combine(day, start, TZ)
        span = int((datetime.combine(day, end, TZ) - lo).total_seconds())
        for _ in range(round(count * weight / total)):
            issued = lo + timedelta(seconds=rng.randrange(span))
            plan = _Plan(day, _service(rng), issued)
            if rng.random() < 0.72:
                plan.id_number = _new_id(rng, ids)
                plan.id_as_sent = plan.id_number
            roll = rng.random()
            if roll < 0.13 and time(9) <= start:
                plan.channel = "appointment"
                if plan.id_number is None:
                    plan.id_number = plan.id_as_sent = _new_id(rng, ids)
                plan.direct_start = rng.random() < 0.04
            elif roll < 0.21:
                plan.give_up = issued + timedelta(minutes=rng.uniform(25, 110))
            elif roll < 0.22 and _BY_CODE[plan.service].transfer_to:
                to = _BY_CODE[plan.service].transfer_to
                assert to is not None
                plan.guide_to = (to, issued + timedelta(seconds=rng.randint(90, 420)))
            roll = rng.random()
            if roll < 0.05 and not plan.direct_start:
                plan.no_show = rng.choices(("back", "drop", "gone"), weights=(6, 1, 3))[0]
                plan.back_after = timedelta(minutes=rng.uniform(4, 40))
            elif roll < 0.085:
                plan.transfer = True
            plans.append(plan)
    return plans


def _new_id(rng: random.Random, ids: set[str]) -> str:
    while True:
        value = fake_id_number(rng)
        if value not in ids:
            ids.add(value)
            return value


def _scripted(rng: random.Random, ids: set[str]) -> dict[str, list[_Plan]]:
    """The returning (and must-not-count) cases, by day."""
    thu, fri, mon = (EARLIER_DAYS[0], EARLIER_DAYS[1], BUSY_DAY)

    def at(day: date, hh: int, mm: int) -> datetime:
        return datetime.combine(day, time(hh, mm, rng.randrange(60)), TZ)

    def plan(day: date, svc: str, when: datetime, **kw: Any) -> _Plan:
        return _Plan(day, svc, when, scripted=True, **kw)

    i1, i2, i3, i4, i5, i8 = (_new_id(rng, ids) for _ in range(6))
    spaced = f"{i4[:6]} {i4[6:14]} {i4[14:]}".lower()
    out: dict[str, list[_Plan]] = {"thu": [], "fri": [], "mon": []}
    # R1: 2 trips, case number on both visits
    out["fri"].append(
        plan(
            fri,
            "D",
            at(fri, 10, 5),
            id_number=i1,
            id_as_sent=i1,
            case_no="D202610309001",
            outcome="incomplete",
        )
    )
    out["mon"].append(
        plan(
            mon,
            "D",
            at(mon, 14, 10),
            id_number=i1,
            id_as_sent=i1,
            case_no="D202610309001",
            outcome="completed",
        )
    )
    # R2: 3 trips (Thu, Fri, Mon); Monday's appointment is booked to Friday's window
    for day, hh in ((thu, 9), (fri, 14)):
        out["thu" if day == thu else "fri"].append(
            plan(
                day,
                "E",
                at(day, hh, 20),
                id_number=i2,
                id_as_sent=i2,
                case_no="E202610299002",
                outcome="incomplete",
            )
        )
    out["mon"].append(
        plan(
            mon,
            "E",
            at(mon, 15, 40),
            channel="appointment",
            id_number=i2,
            id_as_sent=i2,
            case_no="E202610299002",
            outcome="accepted",
        )
    )
    # R3: Thursday as an applicant only, Monday with a case number: merged, 2 trips
    out["thu"].append(
        plan(thu, "C", at(thu, 10, 30), id_number=i3, id_as_sent=i3, outcome="consulted")
    )
    out["mon"].append(
        plan(
            mon,
            "C",
            at(mon, 13, 45),
            id_number=i3,
            id_as_sent=i3,
            case_no="C202611029003",
            outcome="accepted",
        )
    )
    # R4: applicant only, both visits; Monday's machine sends the number spaced, lower-case
    out["fri"].append(
        plan(fri, "A", at(fri, 11, 0), id_number=i4, id_as_sent=i4, outcome="incomplete")
    )
    out["mon"].append(
        plan(mon, "A", at(mon, 16, 5), id_number=i4, id_as_sent=spaced, outcome="completed")
    )
    # R5: Friday, then two tickets on Monday: still 2 trips, reported at the first
    out["fri"].append(
        plan(
            fri,
            "B",
            at(fri, 15, 10),
            id_number=i5,
            id_as_sent=i5,
            case_no="B202610309005",
            outcome="incomplete",
        )
    )
    for hh, outcome in ((10, "incomplete"), (15, "completed")):
        out["mon"].append(
            plan(
                mon,
                "B",
                at(mon, hh, 2),
                id_number=i5,
                id_as_sent=i5,
                case_no="B202610309005",
                outcome=outcome,
            )
        )
    # N1: two tickets of one case on Monday only: one trip
    for hh in (9, 14):
        out["mon"].append(
            plan(
                mon,
                "F",
                at(mon, hh, 12),
                case_no="F202611029006",
                outcome="incomplete" if hh == 9 else "completed",
            )
        )
    # N2: Friday's ticket of the case was abandoned (no visit), Monday's is the first trip
    out["fri"].append(
        plan(
            fri,
            "G",
            at(fri, 9, 40),
            channel="appointment",
            case_no="G202610309007",
            callable_=False,
            give_up=at(fri, 9, 44),
        )
    )
    out["mon"].append(plan(mon, "G", at(mon, 11, 20), case_no="G202610309007", outcome="completed"))
    # N3: one applicant, two services on two days: two cases of one trip each
    out["fri"].append(
        plan(fri, "A", at(fri, 9, 30), id_number=i8, id_as_sent=i8, outcome="completed")
    )
    out["mon"].append(
        plan(mon, "F", at(mon, 9, 50), id_number=i8, id_as_sent=i8, outcome="completed")
    )
    return out


def _pin_returning(fri_plans: list[_Plan], mon_plans: list[_Plan]) -> None:
    """R2's Monday appointment goes to the window that served it on Friday."""
    fri_window = next(p.window for p in fri_plans if p.case_no == "E202610299002")
    for plan in mon_plans:
        if plan.case_no == "E202610299002":
            plan.window_only = fri_window


def _ratings(
    plans: list[_Plan], rng: random.Random, seq: itertools.count[int]
) -> list[tuple[datetime, dict[str, Any]]]:
    out: list[tuple[datetime, dict[str, Any]]] = []
    for plan in plans:
        ended = [(t, e) for t, e in plan.events if e["event"] == "service_ended"]
        if not ended or rng.random() > 0.35:
            continue
        t, e = ended[0]
        level = _pick(rng, _LEVELS)
        body: dict[str, Any] = {
            "rating_id": f"EV-{t:%Y%m%d}-{next(seq):05d}",
            "at": None,
            "level": level,
            "channel": "evaluator",
            "evaluation": 1,
            "case_no": e.get("case_no"),
            "ticket": plan.number,
            "window": e["window"],
            "staff": e["staff"],
            "device": f"ev-w{e['window']}",
        }
        roll = rng.random()
        if roll < 0.015:
            body["attitude"] = "bad"
        elif roll < 0.03:
            body["dimensions"] = {"attitude": rng.choice(("dissatisfied", "very_dissatisfied"))}
        elif roll < 0.35:
            body["attitude"] = "good"
            body["dimensions"] = {"attitude": level, "efficiency": "satisfied"}
        out.append((t + timedelta(seconds=rng.randint(5, 90)), body))
    return out


def _second_evaluations(
    ratings: list[tuple[datetime, dict[str, Any]]],
) -> list[tuple[datetime, dict[str, Any]]]:
    """二次评价 on the busy day: decisions on 差评, a bad one on a good first rating, and
    one matched by ticket (no case number)."""
    busy = [(t, r) for t, r in ratings if t.date() == BUSY_DAY and t.time() < time(15)]
    bad_case = [
        (t, r)
        for t, r in busy
        if r["level"] in ("dissatisfied", "very_dissatisfied")
        and r.get("case_no")
        and not r.get("attitude")
    ]
    bad_no_case = [(t, r) for t, r in busy if r["level"] == "dissatisfied" and not r.get("case_no")]
    good_case = [
        (t, r)
        for t, r in busy
        if r["level"] == "very_satisfied"
        and r.get("case_no")
        and "dimensions" not in r
        and "attitude" not in r
    ]
    picks = [
        (bad_case[0:1], "satisfied", None),  # overturns (kept as evidence)
        (bad_case[1:2], "very_dissatisfied", None),  # upholds (evidence)
        (bad_no_case[0:1], "basically_satisfied", None),  # matched by ticket id
        (good_case[0:1], "dissatisfied", None),  # no rating anomaly yet: a new 差评
        (good_case[1:2], "satisfied", "bad"),  # no rating anomaly yet: a new 态度差
    ]
    out: list[tuple[datetime, dict[str, Any]]] = []
    for n, (found, level, attitude) in enumerate(picks, start=1):
        if not found:
            continue  # a small day may have none of that kind
        ((t, first),) = found
        second = {k: v for k, v in first.items() if k not in ("device", "dimensions", "attitude")}
        second.update(
            rating_id=f"{first['rating_id']}-R{n}",
            level=level,
            channel="sms",
            evaluation=2,
            attitude=attitude,
        )
        out.append((t + timedelta(hours=2, minutes=n), second))
    return out


def generate_day(seed: int = 20261102, busy_tickets: int = 3200) -> QueueDay:
    """Generate the log of a busy Monday and the two days before it.

    Args:
        seed: Everything follows from it.
        busy_tickets: About how many random tickets the Monday has (scripted ones are
            added).

    Returns:
        The log, its raw ID numbers and counts.

    Raises:
        AssertionError: The log would be ambiguous (a wait limit passing within a second
            of what stops it); pick another seed.
    """
    rng = random.Random(seed)
    ids: set[str] = set()
    scripted = _scripted(rng, ids)
    light = ((time(8, 50), time(12, 0), 1.0), (time(13, 30), time(16, 45), 1.0))
    days = [
        (EARLIER_DAYS[0], _random_plans(EARLIER_DAYS[0], 60, rng, ids, light) + scripted["thu"]),
        (EARLIER_DAYS[1], _random_plans(EARLIER_DAYS[1], 60, rng, ids, light) + scripted["fri"]),
        (BUSY_DAY, _random_plans(BUSY_DAY, busy_tickets, rng, ids, _ARRIVALS) + scripted["mon"]),
    ]
    timeline: list[tuple[datetime, int, str, dict[str, Any]]] = []
    order = itertools.count()
    rating_seq = itertools.count(1)
    all_ratings: list[tuple[datetime, dict[str, Any]]] = []
    for n, (day, plans) in enumerate(days):
        if day == BUSY_DAY:
            _pin_returning(days[n - 1][1], plans)
        _Sim(day, plans, rng).run()
        for plan in sorted(plans, key=lambda p: p.seq):
            for t, body in plan.events:
                timeline.append((t, next(order), "queue", body))
        all_ratings += _ratings(plans, rng, rating_seq)
    all_ratings += _second_evaluations(all_ratings)
    for t, body in all_ratings:
        timeline.append((t, next(order), "evaluators", body))
    timeline.sort(key=lambda item: (item[0], item[1]))
    messages = [(feed, _dump(t, body)) for t, _, feed, body in timeline]
    margins = limit_margins(messages, policy())
    assert min(margins, default=60.0) >= 1.0, "a wait limit passes on the second its clock stops"
    sent = {p.id_as_sent for _, plans in days for p in plans if p.id_as_sent}
    counts = Counter(body["event"] for _, _, feed, body in timeline if feed == "queue")
    counts["ratings"] = len(all_ratings)
    return QueueDay(
        messages=messages,
        id_numbers=sorted(ids | sent),
        busy_tickets=len(days[2][1]),
        tickets=sum(len(plans) for _, plans in days),
        counts=dict(counts),
    )


def _dump(t: datetime, body: dict[str, Any]) -> str:
    out = {k: v for k, v in body.items() if v is not None}
    out["at"] = t.astimezone(TZ).isoformat()
    return json.dumps(out, ensure_ascii=False)


def with_noise(
    messages: list[tuple[str, str]], id_number: str, seed: int = 1
) -> tuple[list[tuple[str, str]], int, int]:
    """The log with malformed and duplicated messages mixed in.

    Malformed messages never carry a time later than the valid message before them, so
    an events clock that (wrongly) read them still could not move.

    Args:
        messages: A clean log.
        id_number: A raw ID number to hide in a malformed message (it must be masked).
        seed: Where the noise goes.

    Returns:
        The noisy log, the number of malformed messages, the number of duplicates.
    """
    rng = random.Random(seed)
    out = list(messages)
    n = len(out)
    queue_at = [i for i, (feed, _) in enumerate(out) if feed == "queue"]
    dup_at = sorted(rng.sample(range(n), 30), reverse=True)
    for i in dup_at:
        out.insert(i + 1, out[i])
    first = json.loads(out[queue_at[0]][1])

    def last_at(before: int) -> str:
        for feed, text in reversed(out[:before]):
            if feed == "queue":
                return str(json.loads(text)["at"])
        return str(first["at"])

    bad_queue = [
        "{not json",
        '["issued", "A001"]',
        json.dumps({**first, "event": "teleported"}),
        json.dumps({**first, "ticket": "Z901", "id_number": id_number, "colour": "red"}),
        json.dumps({k: v for k, v in first.items() if k != "at"}),
        json.dumps({**first, "ticket": "Z902", "at": "2026-11-02T09:00:00"}),
        json.dumps({**first, "ticket": "Z903", "channel": "carrier_pigeon"}),
    ]
    bad_ratings = [
        "\x00\x01 binary",
        json.dumps({"rating_id": "EV-BAD-1", "at": "2026-11-02T10:00:00+08:00", "level": "great"}),
        json.dumps(
            {
                "rating_id": "EV-BAD-2",
                "at": "2026-11-02T10:00:00+08:00",
                "level": "satisfied",
                "evaluation": 3,
            }
        ),
        json.dumps(
            {
                "rating_id": "EV-BAD-3",
                "at": "2026-11-02T10:00:00+08:00",
                "level": "satisfied",
                "stars": 5,
            }
        ),
    ]
    malformed = 0
    for text in bad_queue:
        i = rng.randrange(len(out) // 10, len(out))
        out.insert(i, ("queue", text))
        malformed += 1
    # an event for a ticket never issued, and one older than its ticket's last event
    for build in (_never_issued, _older_than_last):
        i = rng.randrange(len(out) // 2, len(out))
        out.insert(i, ("queue", build(out, i, last_at(i))))
        malformed += 1
    for text in bad_ratings:
        out.insert(rng.randrange(len(out)), ("evaluators", text))
        malformed += 1
    return out, malformed, len(dup_at)


def _never_issued(out: list[tuple[str, str]], i: int, at: str) -> str:
    return json.dumps(
        {"event": "called", "ticket": "Q999", "service": "A", "window": "1", "at": at}
    )


def _older_than_last(out: list[tuple[str, str]], i: int, at: str) -> str:
    """A ``no_show`` of a ticket in service, dated before its last event."""
    for feed, text in reversed(out[:i]):
        msg = json.loads(text) if feed == "queue" and text.startswith("{") else {}
        if msg.get("event") == "service_started":
            when = datetime.fromisoformat(msg["at"]) - timedelta(minutes=20)
            return json.dumps(
                {
                    "event": "no_show",
                    "ticket": msg["ticket"],
                    "service": msg["service"],
                    "at": when.isoformat(),
                }
            )
    raise AssertionError("no ticket in service before this point")


def hall_config(
    hall_id: str,
    *,
    queue_topic: str,
    evaluator_topic: str,
    mqtt_port: int,
    folder: Path,
) -> HallConfig:
    """The generated hall's config: 40 windows, 8 services, queue and evaluator feeds.

    Args:
        hall_id: Hall id.
        queue_topic: The queue machine's topic.
        evaluator_topic: The evaluators' topic.
        mqtt_port: Broker port (loopback).
        folder: Where the edge's outbox and feed store go.
    """
    square = [[10, 10], [200, 10], [200, 200], [10, 200]]
    return HallConfig.model_validate(
        {
            "hall": {"id": hall_id, "name": "压力测试大厅", "timezone": "Asia/Shanghai"},
            "service_hours": {
                "default": {
                    "open": "09:00",
                    "close": "17:00",
                    "lunch_start": "12:00",
                    "lunch_end": "13:30",
                    "lunch_closed": True,
                }
            },
            "cameras": [{"id": "c1", "url": "rtsp://127.0.0.1:1/c1", "width": 640, "height": 480}],
            "posts": [
                {
                    "id": "w1",
                    "name": "1号窗口",
                    "kind": "front_desk",
                    "window": "1",
                    "camera": "c1",
                    "polygon": square,
                }
            ],
            "mqtt": {"host": "127.0.0.1", "port": mqtt_port},
            "edge": {
                "outbox_path": str(folder / "edge-outbox.sqlite"),
                "feed_state_path": str(folder / "edge-feeds.sqlite"),
            },
            "departments": [{"id": k, "name": v} for k, v in DEPARTMENTS.items()],
            "windows": [
                {"id": w, "name": f"{w}号窗口", "department": _BY_CODE[s].department}
                for w, s in _WINDOW_SERVICE.items()
            ],
            "queue": {
                "adapter": "generic_json",
                "topic": queue_topic,
                "applicant_salt": SALT,
                "clock": "events",
                "services": [
                    {"id": s.code, "name": s.name, "department": s.department} for s in SERVICES
                ],
            },
            "evaluators": {"adapter": "generic_json", "topic": evaluator_topic},
        }
    )
