"""The demo hall's queue machine (排队叫号机) and evaluators (评价器), simulated.

A morning of the demo hall's four windows (``1`` and ``2`` serve 社保 ``A``, ``3`` 医保
``B``, ``4`` 税务 ``C``): about ninety tickets from 08:40, a 09:00–10:00 rush that backs
the queues up so that some tickets wait over 30 minutes, a case that comes back for its
second trip (its first visit was the day before), and a few 差评 and one 服务态度差.
It is published on the demo's broker in the generic JSON formats (``docs/protocol.md``),
compressed: the whole morning goes out within about 15 seconds of the edge starting.

**Which day, and which clock.** The morning is dated *yesterday* (hall-local; its first
visit the day before), and the demo hall's queue feed runs on ``clock: events``: only the
machine's event times move the wait clock, so what opens does not depend on how fast the
morning is replayed or on the hour the demo is run. A live (``wall``) clock would see
every ticket of a past morning as waiting until now; a morning dated today could still be
in the future, or cross the day's end after midnight. The demo hall is open every day
(00:00–23:59), so yesterday is always its last service day, and its wait clock counts
plain elapsed time in the morning (``wait_counts`` can stay at its default).

Everything is fixed by :data:`SEED`: :func:`predicted_anomalies` lists exactly what a
correct edge and aggregator open (kinds, windows, case numbers, opening times).

Example:
    >>> from datetime import date
    >>> morning = demo_morning(date(2026, 11, 3))
    >>> sorted({p.kind for p in morning.predicted})
    ['bad_attitude', 'bad_rating', 'trips_over_promise', 'wait_over_limit']
"""

from __future__ import annotations

import json
import logging
import random
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

logger = logging.getLogger(__name__)

SEED = 20261102
TZ = ZoneInfo("Asia/Shanghai")
WAIT_LIMIT = timedelta(minutes=30)
#: Service code → (name, department id, windows).
SERVICES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "A": ("社保业务", "hrss", ("1", "2")),
    "B": ("医保业务", "nhsa", ("3",)),
    "C": ("税务业务", "tax", ("4",)),
}
#: Department id → name.
DEPARTMENTS = {"hrss": "人社局", "nhsa": "医保局", "tax": "税务局"}
#: Mean minutes of service, per service.
_MEAN_MIN = {"A": 6.0, "B": 3.2, "C": 6.5}
#: (from, to, tickets) of the morning's arrivals.
_ARRIVALS = (
    (time(8, 40), time(9, 0), 10),
    (time(9, 0), time(10, 0), 50),
    (time(10, 0), time(11, 30), 28),
)
#: Ticket (by order of issue) → (level, attitude) of a rating that must come.
_SCRIPTED_RATINGS = {
    12: ("dissatisfied", None),
    31: ("very_dissatisfied", None),
    44: ("satisfied", "bad"),
    58: ("dissatisfied", None),
}
RETURNING_CASE = "SB-DEMO-0417"
_RETURNING_ID = "11010519880412002X"  # fake, well-formed; hashed at the edge


@dataclass(frozen=True)
class PredictedAnomaly:
    """One 异常办件 the demo morning must open.

    Attributes:
        kind: ``wait_over_limit``, ``trips_over_promise``, ``bad_rating`` or ``bad_attitude``.
        window: The window it is attributed to.
        case_no: The case number (trips and ratings), if any.
        opened: When it opens (hall-local, aware).
    """

    kind: str
    window: str | None
    case_no: str | None
    opened: datetime


@dataclass
class DemoMorning:
    """The morning's messages and what they must open.

    Attributes:
        messages: ``(feed, json)`` in publishing order; feed ``queue`` or ``evaluators``.
        predicted: What opens, in order of ``opened``.
        tickets: Tickets issued on the morning.
    """

    messages: list[tuple[str, str]] = field(default_factory=list)
    predicted: list[PredictedAnomaly] = field(default_factory=list)
    tickets: int = 0


@dataclass
class _Ticket:
    number: str
    service: str
    issued: datetime
    appointment: bool = False
    id_number: str | None = None
    case_no: str | None = None


def _local(day: date, hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm, ss), TZ)


def _fake_id(rng: random.Random) -> str:
    born = date(1960, 1, 1) + timedelta(days=rng.randrange(365 * 45))
    body = f"330106{born:%Y%m%d}{rng.randrange(1, 1000):03d}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]


def _arrivals(day: date, rng: random.Random) -> list[_Ticket]:
    times: list[tuple[datetime, str]] = []
    for start, end, count in _ARRIVALS:
        lo = datetime.combine(day, start, TZ)
        span = int((datetime.combine(day, end, TZ) - lo).total_seconds())
        for _ in range(count):
            service = rng.choices("ABC", weights=(5, 2, 2))[0]
            times.append((lo + timedelta(seconds=rng.randrange(span)), service))
    times.append((_local(day, 10, 41, 17), "A"))  # the returning case, by appointment
    times.sort()
    numbers = dict.fromkeys(SERVICES, 0)
    tickets: list[_Ticket] = []
    for issued, service in times:
        numbers[service] += 1
        ticket = _Ticket(f"{service}{numbers[service]:03d}", service, issued)
        if issued == _local(day, 10, 41, 17):
            ticket.appointment, ticket.id_number = True, _RETURNING_ID
            ticket.case_no = RETURNING_CASE
        elif rng.random() < 0.6:
            ticket.id_number = _fake_id(rng)
        tickets.append(ticket)
    return tickets


class _Builder:
    """Collects timed messages and predictions."""

    def __init__(self) -> None:
        self.items: list[tuple[datetime, int, str, dict[str, Any]]] = []
        self.predicted: list[PredictedAnomaly] = []

    def queue(self, at: datetime, event: str, ticket: _Ticket, **fields: Any) -> None:
        body = {"event": event, "ticket": ticket.number, "service": ticket.service}
        body.update({k: v for k, v in fields.items() if v is not None})
        self._add(at, "queue", body)

    def rating(self, at: datetime, body: dict[str, Any]) -> None:
        self._add(at, "evaluators", {k: v for k, v in body.items() if v is not None})

    def _add(self, at: datetime, feed: str, body: dict[str, Any]) -> None:
        body["at"] = at.isoformat()
        self.items.append((at, len(self.items), feed, body))

    def messages(self) -> list[tuple[str, str]]:
        ordered = sorted(self.items, key=lambda item: (item[0], item[1]))
        return [(feed, json.dumps(body, ensure_ascii=False)) for _, _, feed, body in ordered]


def _first_visit(builder: _Builder, day: date) -> None:
    ticket = _Ticket("A006", "A", _local(day, 10, 2, 40), id_number=_RETURNING_ID)
    builder.queue(ticket.issued, "issued", ticket, channel="on_site", id_number=_RETURNING_ID)
    builder.queue(_local(day, 10, 9, 5), "called", ticket, window="1", staff="S01")
    builder.queue(_local(day, 10, 9, 40), "service_started", ticket, window="1", staff="S01")
    builder.queue(
        _local(day, 10, 21, 3),
        "service_ended",
        ticket,
        window="1",
        staff="S01",
        outcome="incomplete",
        case_no=RETURNING_CASE,
    )


def _serve_morning(builder: _Builder, day: date, rng: random.Random) -> int:
    """Windows call in turn from 09:00: appointments first, then first come first served."""
    tickets = _arrivals(day, rng)
    for ticket in tickets:
        channel = "appointment" if ticket.appointment else "on_site"
        builder.queue(ticket.issued, "issued", ticket, channel=channel, id_number=ticket.id_number)
        if ticket.appointment:
            builder.queue(ticket.issued + timedelta(seconds=50), "checked_in", ticket)
    free = {w: _local(day, 9, 0, 10 * i) for i, w in enumerate(("1", "2", "3", "4"))}
    waiting = list(tickets)
    served = 0
    while waiting:
        window = min(free, key=lambda w: (free[w], w))
        t = free[window]
        service = next(s for s, (_, _, ws) in SERVICES.items() if window in ws)
        mine = [x for x in waiting if x.service == service]
        if not mine:
            free[window] = datetime.max.replace(tzinfo=TZ)
            continue
        ready = [x for x in mine if x.issued + timedelta(seconds=60) <= t]
        if not ready:
            free[window] = min(x.issued for x in mine) + timedelta(seconds=60)
            continue
        ticket = min(ready, key=lambda x: (not x.appointment, x.issued))
        waiting.remove(ticket)
        if t - ticket.issued == WAIT_LIMIT:
            t += timedelta(seconds=1)  # never call on the very second the limit passes
        free[window] = _serve(builder, ticket, window, t, rng, served)
        served += 1
    return len(tickets)


def _serve(
    builder: _Builder, ticket: _Ticket, window: str, t: datetime, rng: random.Random, n: int
) -> datetime:
    staff = f"S0{window}"
    builder.queue(t, "called", ticket, window=window, staff=staff)
    if t - ticket.issued > WAIT_LIMIT:
        builder.predicted.append(
            PredictedAnomaly("wait_over_limit", window, None, ticket.issued + WAIT_LIMIT)
        )
    start = t + timedelta(seconds=rng.randint(20, 50))
    builder.queue(start, "service_started", ticket, window=window, staff=staff)
    end = start + timedelta(seconds=int(60 * _MEAN_MIN[ticket.service] * rng.uniform(0.6, 1.4)))
    case_no = ticket.case_no or f"{ticket.service}-DEMO-{n + 1:04d}"
    outcome = "completed" if ticket.case_no else rng.choice(("completed", "accepted"))
    builder.queue(
        end, "service_ended", ticket, window=window, staff=staff, outcome=outcome, case_no=case_no
    )
    if ticket.case_no == RETURNING_CASE:
        builder.predicted.append(PredictedAnomaly("trips_over_promise", window, case_no, end))
    scripted = _SCRIPTED_RATINGS.get(n)
    if scripted is not None or rng.random() < 0.3:
        level, attitude = scripted or (rng.choice(("very_satisfied", "satisfied")), "good")
        at = end + timedelta(seconds=rng.randint(8, 40))
        builder.rating(
            at,
            {
                "rating_id": f"EV-{at:%Y%m%d}-{n + 1:03d}",
                "level": level,
                "attitude": attitude,
                "channel": "evaluator",
                "case_no": case_no,
                "ticket": ticket.number,
                "window": window,
                "staff": staff,
                "device": f"ev-w{window}",
            },
        )
        bad = level in ("dissatisfied", "very_dissatisfied")
        if bad or attitude == "bad":
            kind = "bad_rating" if bad else "bad_attitude"
            builder.predicted.append(PredictedAnomaly(kind, window, case_no, at))
    return end + timedelta(seconds=rng.randint(5, 20))


def demo_morning(today: date) -> DemoMorning:
    """The demo's morning: yesterday's tickets (and the returning case's first visit).

    Args:
        today: Today's hall-local date; the morning is the day before.

    Returns:
        The messages and the anomalies they must open.
    """
    rng = random.Random(SEED)
    builder = _Builder()
    day = today - timedelta(days=1)
    _first_visit(builder, day - timedelta(days=1))
    tickets = _serve_morning(builder, day, rng)
    predicted = sorted(builder.predicted, key=lambda p: p.opened)
    return DemoMorning(messages=builder.messages(), predicted=predicted, tickets=tickets)


class MorningPublisher:
    """Publishes a :class:`DemoMorning` to the broker, spread over ``span_s`` seconds.

    Args:
        morning: What to publish.
        host: Broker host.
        port: Broker port.
        queue_topic: The queue machine's topic.
        evaluator_topic: The evaluators' topic.
        span_s: About how long publishing takes.
    """

    def __init__(
        self,
        morning: DemoMorning,
        *,
        host: str,
        port: int,
        queue_topic: str,
        evaluator_topic: str,
        span_s: float = 15.0,
    ) -> None:
        self.morning = morning
        self._topics = {"queue": queue_topic, "evaluators": evaluator_topic}
        self._span_s = span_s
        self._stop = threading.Event()
        self.done = threading.Event()
        self.published = 0
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="hallwatch-demo-devices", protocol=mqtt.MQTTv311
        )
        self._host, self._port = host, port
        self._thread = threading.Thread(target=self._run, name="demo-devices", daemon=True)

    def start(self) -> None:
        """Connect and start publishing in the background."""
        self._client.connect(self._host, self._port)
        self._client.loop_start()
        self._thread.start()

    def stop(self) -> None:
        """Stop publishing (what is left is not sent) and disconnect."""
        self._stop.set()
        self._thread.join(timeout=10)
        self._client.disconnect()
        self._client.loop_stop()

    def _run(self) -> None:
        pause = self._span_s / max(1, len(self.morning.messages))
        try:
            for feed, text in self.morning.messages:
                if self._stop.is_set():
                    return
                info = self._client.publish(self._topics[feed], text.encode(), qos=1)
                info.wait_for_publish(timeout=5)  # in order, one at a time
                self.published += 1
                self._stop.wait(pause)
            logger.info("demo queue machine and evaluators: %d messages published", self.published)
        except (RuntimeError, ValueError) as exc:
            logger.warning("demo devices stopped publishing: %s", exc)
        finally:
            self.done.set()
