"""The ticket tracker: ticket state, storage and timers (docs/cases.md §1).

State lives in the :class:`FeedStore` (tables ``tickets``, ``ticket_events``,
``queue_services_seen``, ``queue_meta``; the trips tables belong to the
:class:`~edge.feeds.trips.TripCounter`), so it survives restarts. At each
``service_ended`` the tracker hands the ticket to its ``TripCounter``, which counts the
case's visits (跑动次数) and says when a ``trips`` fact is due. The tracker is
deterministic: time comes only from event times and :meth:`TicketTracker.advance`; it
never reads a clock.

The wait clock's arithmetic (when a leg's clock starts and stops, what it counts, when it
reaches its limit, when the issue day ends) is the :class:`~edge.feeds.wait_clock.WaitClock`;
the tracker keeps each leg's ``clock_start``, ``clock_stop`` and ``breach_at`` (the
moment the running clock reaches the limit, when a ``wait`` is due).
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from edge.feeds.base import FeedStore
from edge.feeds.queue_adapters import QueueEvent
from edge.feeds.trips import TripCounter
from edge.feeds.wait_clock import WaitClock
from hallwatch.config.feeds import QueueFeedConfig
from hallwatch.config.models import HallConfig
from hallwatch.contract import (
    QueueBody,
    ServiceQueue,
    TicketBody,
    TicketChannel,
    TicketEventType,
    TripsBody,
    WaitBody,
)

logger = logging.getLogger(__name__)

E = TicketEventType
Body = TicketBody | WaitBody | TripsBody | QueueBody

OPEN = ("waiting", "called", "no_show", "serving")
"""Ticket states before its end (``ended``, ``abandoned``)."""
CLOSABLE = ("waiting", "no_show")
"""States abandoned (reason ``closed``) at the issue day's end."""
UNENDED = ("called", "serving")
"""States a window may still finish after closing time (延时服务); abandoned (reason
``not_ended``) only :data:`UNENDED_GRACE` after the close."""
UNENDED_GRACE = timedelta(hours=12)
MAX_LEG = 100
"""The most legs a ticket may have (``WaitBody.leg`` is at most 100): a transfer that
would start leg 101 is refused (dead-lettered)."""

ALLOWED: dict[TicketEventType, tuple[str, ...]] = {
    E.CHECKED_IN: ("waiting",),
    E.CALLED: ("waiting", "called", "no_show"),
    E.RECALLED: ("called", "no_show"),
    E.NO_SHOW: ("called",),
    E.TRANSFERRED: OPEN,
    E.SERVICE_STARTED: ("waiting", "called", "no_show"),
    E.SERVICE_ENDED: ("serving", "called"),
    E.ABANDONED: OPEN,
}
"""From which states each event may come (``issued`` creates the ticket)."""

NEXT_STATE: dict[TicketEventType, str] = {
    E.CHECKED_IN: "waiting",
    E.CALLED: "called",
    E.RECALLED: "called",
    E.NO_SHOW: "no_show",
    E.TRANSFERRED: "waiting",
    E.SERVICE_STARTED: "serving",
    E.SERVICE_ENDED: "ended",
    E.ABANDONED: "abandoned",
}

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS tickets (ticket_id TEXT PRIMARY KEY, number TEXT NOT NULL,"
    " issue_date TEXT NOT NULL, service TEXT NOT NULL, channel TEXT, case_no TEXT,"
    " applicant_key TEXT, state TEXT NOT NULL, leg INTEGER NOT NULL, clock_start TEXT,"
    " clock_stop TEXT, breached INTEGER NOT NULL, breach_at TEXT, checked_in INTEGER NOT NULL,"
    " last_at TEXT NOT NULL, window TEXT, staff TEXT, close_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS tickets_number ON tickets (number, issue_date)",
    "CREATE INDEX IF NOT EXISTS tickets_state ON tickets (state)",
    "CREATE INDEX IF NOT EXISTS tickets_breach ON tickets (breach_at) WHERE breach_at IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS tickets_close ON tickets (close_at)"
    " WHERE state IN ('waiting', 'called', 'no_show')",
    "CREATE TABLE IF NOT EXISTS ticket_events (ticket_id TEXT NOT NULL, event TEXT NOT NULL,"
    " at TEXT NOT NULL, PRIMARY KEY (ticket_id, event, at))",
    "CREATE TABLE IF NOT EXISTS queue_services_seen (day TEXT NOT NULL, service TEXT NOT NULL,"
    " PRIMARY KEY (day, service))",
    "CREATE TABLE IF NOT EXISTS queue_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


class TicketError(ValueError):
    """An event the tracker cannot apply; the message is the reason (for the dead letter)."""


@dataclass(frozen=True, slots=True)
class _Timer:
    """The next thing due by time alone: a ticket's breach or abandon, or a gauge."""

    at: datetime
    kind: Literal["breach", "abandon", "gauge"]
    """``abandon``: at the issue day's end, ``closed`` or ``not_ended``."""
    ticket: _Ticket | None = None


@dataclass(frozen=True, slots=True)
class Emitted:
    """Something to send: a fact body and the fact's time."""

    ts: datetime
    body: Body


def _ts(dt: datetime) -> str:
    """Fixed-width UTC text: sorts as the times do."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None


@dataclass(slots=True)
class _Ticket:
    """One row of ``tickets``: a ticket and its current leg (times are :func:`_ts` text).

    Attributes:
        ticket_id: ``YYYYMMDD-<number>`` (hall-local issue date, printed number).
        number: The printed number later events name the ticket by.
        issue_date: Hall-local issue date (ISO).
        service: The current leg's service (a transfer changes it).
        channel: ``on_site`` or ``appointment``.
        case_no: The case number, once an event carried one.
        applicant_key: The applicant key, once an event carried one.
        state: ``waiting``, ``called``, ``no_show``, ``serving``, ``ended`` or ``abandoned``.
        leg: The current leg, from 1 (at most :data:`MAX_LEG`).
        clock_start: The leg's wait clock start (None: not started yet).
        clock_stop: The leg's wait clock stop (None: running or not started).
        breached: 1 once the leg's ``wait`` fact was sent (or given up on).
        breach_at: When the running clock reaches the limit (None: no breach due).
        checked_in: 1 once checked in.
        last_at: The time of the ticket's latest event.
        window: The latest window named (a transfer sets its target window).
        staff: The latest staff named (a transfer clears it).
        close_at: The issue day's end (later for a ticket waiting again after it).
    """

    ticket_id: str
    number: str
    issue_date: str
    service: str
    channel: str | None
    case_no: str | None
    applicant_key: str | None
    state: str
    leg: int
    clock_start: str | None
    clock_stop: str | None
    breached: int
    breach_at: str | None
    checked_in: int
    last_at: str
    window: str | None
    staff: str | None
    close_at: str

    def save(self, conn: sqlite3.Connection) -> None:
        """Write the row (insert or replace)."""
        names = [f.name for f in fields(self)]
        conn.execute(
            f"INSERT OR REPLACE INTO tickets ({', '.join(names)})"
            f" VALUES ({', '.join('?' for _ in names)})",
            [getattr(self, n) for n in names],
        )


_SELECT = "SELECT " + ", ".join(f.name for f in fields(_Ticket)) + " FROM tickets"


class TicketTracker:
    """Tickets of one hall's queue machine, and what they cause.

    Args:
        hall: The hall config; ``hall.queue`` must be set.
        store: The edge's feed store (the tracker creates its tables in it).

    Attributes:
        duplicates: Duplicate events dropped since start.
        wait_clock: The legs' wait clock (start, stop, counting, limit, day's end).
        trips: The trip counter, fed at each ``service_ended`` (same store, same
            transaction).

    Raises:
        ValueError: The hall config has no ``queue`` section.
    """

    def __init__(self, hall: HallConfig, store: FeedStore) -> None:
        if hall.queue is None:
            raise ValueError("the hall config has no queue section")
        self.hall = hall
        self.cfg: QueueFeedConfig = hall.queue
        self._store = store
        self._tz = hall.tzinfo
        self.duplicates = 0
        self.wait_clock = WaitClock(hall, self.cfg)
        self.trips = TripCounter(self.cfg, self._tz)
        with store.transaction() as conn:
            for statement in _SCHEMA:
                conn.execute(statement)
            self.trips.create_tables(conn)

    # ------------------------------------------------------------------ public

    def feed_time(self) -> datetime | None:
        """The feed's current time (persisted), or None before the first event or tick."""
        with self._store.reading() as conn:
            return _dt(self._meta(conn, "feed_time"))

    def process(self, event: QueueEvent) -> list[Emitted] | None:
        """Move time to the event (reporting what falls due first), then apply it.

        Args:
            event: One normalised queue-machine event.

        Returns:
            What to send, in order; None for a duplicate (dropped and counted).

        Raises:
            TicketError: The event cannot be applied (nothing is changed).
        """
        if self._is_duplicate(event):
            self.duplicates += 1
            logger.info("duplicate %s of ticket %s dropped", event.event.value, event.ticket)
            return None
        with self._store.transaction() as conn:
            out = self._advance(conn, event.at)
            out.extend(self._apply(conn, event))
        return out

    def advance(self, to: datetime) -> list[Emitted]:
        """Move the feed's time to ``to`` (never backwards) and report what fell due.

        Returns:
            Waits passing their limit, tickets abandoned at the day's close and queue
            gauges, in time order.
        """
        with self._store.transaction() as conn:
            return self._advance(conn, to)

    def wait_s(self, ticket_id: str, at: datetime) -> float | None:
        """The current leg's wait of a ticket at ``at`` (None: no such ticket)."""
        with self._store.reading() as conn:
            t = self._load(conn, "WHERE ticket_id = ?", (ticket_id,))
        return None if t is None else self._wait(t, at)

    # ------------------------------------------------------------------ clock

    def _wait(self, t: _Ticket, at: datetime) -> float:
        """The wait of a ticket's current leg at ``at`` (0 before its clock starts)."""
        return self.wait_clock.waited(_dt(t.clock_start), _dt(t.clock_stop), at)

    def _schedule(self, t: _Ticket) -> None:
        """Set ``breach_at`` while the clock runs and the leg is not yet reported."""
        start = _dt(t.clock_start)
        running = start is not None and t.clock_stop is None and t.state in CLOSABLE
        if running and not t.breached and start is not None:
            due = self.wait_clock.reach(start, self.cfg.wait_limit_s(t.service))
            t.breach_at = _ts(due) if due is not None else None
        else:
            t.breach_at = None

    # ------------------------------------------------------------------ storage

    @staticmethod
    def _meta(conn: sqlite3.Connection, key: str) -> str | None:
        row = conn.execute("SELECT value FROM queue_meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    @staticmethod
    def _set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
        conn.execute("INSERT OR REPLACE INTO queue_meta (key, value) VALUES (?, ?)", (key, value))

    @staticmethod
    def _load(conn: sqlite3.Connection, where: str, args: tuple[str, ...]) -> _Ticket | None:
        row = conn.execute(f"{_SELECT} {where}", args).fetchone()
        return None if row is None else _Ticket(*row)

    def _is_duplicate(self, event: QueueEvent) -> bool:
        with self._store.reading() as conn:
            row = conn.execute(
                "SELECT 1 FROM ticket_events e JOIN tickets t ON t.ticket_id = e.ticket_id"
                " WHERE t.number = ? AND e.event = ? AND e.at = ? LIMIT 1",
                (event.ticket, event.event.value, _ts(event.at)),
            ).fetchone()
        return row is not None

    def _find(self, conn: sqlite3.Connection, event: QueueEvent) -> _Ticket:
        local_day = event.at.astimezone(self._tz).date()
        states = ", ".join(f"'{s}'" for s in OPEN)
        if event.issued_on is not None:
            ticket_id = f"{event.issued_on:%Y%m%d}-{event.ticket}"
            found = self._load(conn, f"WHERE ticket_id = ? AND state IN ({states})", (ticket_id,))
        else:
            found = self._load(
                conn,
                f"WHERE number = ? AND issue_date <= ? AND state IN ({states})"
                " ORDER BY issue_date DESC LIMIT 1",
                (event.ticket, local_day.isoformat()),
            )
        if found is None:
            raise TicketError(
                f"{event.event.value}: no open ticket {event.ticket} issued on or before "
                f"{event.issued_on or local_day} (never issued, or already ended)"
            )
        return found

    # ------------------------------------------------------------------ time

    def _advance(self, conn: sqlite3.Connection, to: datetime) -> list[Emitted]:
        """Move the feed's time to ``to``: next timer, handle it, repeat.

        A timer whose handling fails (a bug, or a ticket the contract refuses) is logged
        with its ticket id and cleared, and the others go on: no single ticket can stop
        the feed (its failure is rolled back to a savepoint, never the whole advance).
        """
        out: list[Emitted] = []
        now = _dt(self._meta(conn, "feed_time"))
        if now is not None and to <= now:
            return out
        interval = timedelta(seconds=self.cfg.gauge_interval_s)
        next_gauge = _dt(self._meta(conn, "next_gauge")) or to + interval
        while (timer := self._next_due(conn, to, next_gauge)) is not None:
            if timer.ticket is None:
                next_gauge = timer.at + interval
                try:
                    out.append(Emitted(timer.at, self._gauge(conn, timer.at)))
                except Exception:
                    logger.exception("queue gauge at %s failed; skipped", timer.at)
                continue
            out.extend(self._fire(conn, timer, timer.ticket))
        self._set_meta(conn, "feed_time", _ts(to))
        self._set_meta(conn, "next_gauge", _ts(next_gauge))
        return out

    def _next_due(
        self, conn: sqlite3.Connection, to: datetime, next_gauge: datetime
    ) -> _Timer | None:
        """The earliest timer due by ``to``, or None.

        Candidates: the earliest breach, the earliest day's-end abandon of a waiting
        ticket (``closed``, at ``close_at``) and of a called or served one (``not_ended``,
        :data:`UNENDED_GRACE` later), and the gauge. At the same instant a breach comes
        before an abandon and ``closed`` before ``not_ended``. A gauge is sent only when
        no timer comes first, at the latest slot before the next timer (missed slots are
        skipped).
        """
        limit = _ts(to)
        closable = ", ".join(f"'{s}'" for s in CLOSABLE)
        unended = ", ".join(f"'{s}'" for s in UNENDED)
        timers: list[tuple[datetime, int, _Timer]] = []
        row = conn.execute(
            f"{_SELECT} WHERE breach_at IS NOT NULL AND breach_at <= ?"
            " ORDER BY breach_at, ticket_id LIMIT 1",
            (limit,),
        ).fetchone()
        if row is not None:
            t = _Ticket(*row)
            at = _dt(t.breach_at)
            assert at is not None
            timers.append((at, 0, _Timer(at, "breach", t)))
        day_end = ((closable, limit), (unended, _ts(to - UNENDED_GRACE)))
        for rank, (states, by) in enumerate(day_end):
            row = conn.execute(
                f"{_SELECT} WHERE state IN ({states}) AND close_at <= ?"
                " ORDER BY close_at, ticket_id LIMIT 1",
                (by,),
            ).fetchone()
            if row is not None:
                t = _Ticket(*row)
                at = self._abandon_at(t)
                timers.append((at, 1 + rank, _Timer(at, "abandon", t)))
        first = min(timers, key=lambda x: (x[0], x[1]))[2] if timers else None
        if next_gauge <= to and (first is None or next_gauge < first.at):
            interval = timedelta(seconds=self.cfg.gauge_interval_s)
            k = (to - next_gauge) // interval
            if first is not None:
                k = min(k, -((next_gauge - first.at) // interval) - 1)
            return _Timer(next_gauge + k * interval, "gauge")
        return first

    def _fire(self, conn: sqlite3.Connection, timer: _Timer, t: _Ticket) -> list[Emitted]:
        """Handle one ticket's timer; on failure log it, clear the timer and go on."""
        conn.execute("SAVEPOINT ticket_timer")
        try:
            if timer.kind == "breach":
                done = [self._breach(conn, t, timer.at)]
            else:
                done = [self._abandon_due(conn, t)]
        except Exception:
            conn.execute("ROLLBACK TO ticket_timer")
            logger.exception(
                "ticket %s: its %s due at %s failed; timer cleared, the feed goes on",
                t.ticket_id,
                timer.kind,
                timer.at,
            )
            if timer.kind == "breach":  # this leg's wait is not reported
                conn.execute(
                    "UPDATE tickets SET breach_at = NULL, breached = 1 WHERE ticket_id = ?",
                    (t.ticket_id,),
                )
            else:  # the ticket ends without its abandoned fact
                conn.execute(
                    "UPDATE tickets SET state = 'abandoned', breach_at = NULL WHERE ticket_id = ?",
                    (t.ticket_id,),
                )
            done = []
        conn.execute("RELEASE ticket_timer")
        return done

    def _breach(self, conn: sqlite3.Connection, t: _Ticket, at: datetime) -> Emitted:
        limit_s = self.cfg.wait_limit_s(t.service)
        clock_start = _dt(t.clock_start)
        waited = self.wait_clock.reported(clock_start, _dt(t.clock_stop), at, limit_s)
        body = WaitBody(
            ticket=t.number,
            ticket_id=t.ticket_id,
            leg=t.leg,
            service=t.service,
            channel=TicketChannel(t.channel) if t.channel else None,
            case_no=t.case_no,
            applicant_key=t.applicant_key,
            clock_start=clock_start or at,
            waited_s=round(waited, 3),
            limit_s=limit_s,
        )
        t.breached = 1
        t.breach_at = None
        t.save(conn)
        logger.info("ticket %s leg %d passed the wait limit at %s", t.ticket_id, t.leg, at)
        return Emitted(at, body)

    @staticmethod
    def _abandon_at(t: _Ticket) -> datetime:
        at = _dt(t.close_at)
        assert at is not None
        return at if t.state in CLOSABLE else at + UNENDED_GRACE

    def _abandon_due(self, conn: sqlite3.Connection, t: _Ticket) -> Emitted:
        """Abandon a ticket at its issue day's end: ``closed`` when it was waiting or
        no-show, ``not_ended`` when it was called or served and still open
        :data:`UNENDED_GRACE` after the close."""
        at = self._abandon_at(t)
        reason = "closed" if t.state in CLOSABLE else "not_ended"
        body = self._ticket_body(t, E.ABANDONED, at, reason=reason)
        t.state = "abandoned"
        t.breach_at = None
        t.last_at = max(t.last_at, _ts(at))
        t.save(conn)
        return Emitted(at, body)

    def _gauge(self, conn: sqlite3.Connection, at: datetime) -> QueueBody:
        day = at.astimezone(self._tz).date().isoformat()
        services = [
            r[0]
            for r in conn.execute(
                "SELECT service FROM queue_services_seen WHERE day = ? ORDER BY service", (day,)
            )
        ]
        waiting: dict[str, list[float]] = {s: [] for s in services}
        rows = conn.execute(
            f"{_SELECT} WHERE state IN ('waiting', 'no_show') AND clock_start IS NOT NULL"
        ).fetchall()
        for row in rows:
            t = _Ticket(*row)
            waiting.setdefault(t.service, []).append(self._wait(t, at))
        return QueueBody(
            services=[
                ServiceQueue(
                    service=s,
                    waiting=len(w),
                    longest_wait_s=round(max(w, default=0.0), 3),
                )
                for s, w in sorted(waiting.items())
            ][:500]
        )

    # ------------------------------------------------------------------ events

    def _ticket_body(
        self, t: _Ticket, event: TicketEventType, at: datetime, **extra: object
    ) -> TicketBody:
        data: dict[str, object] = {
            "event": event,
            "ticket": t.number,
            "ticket_id": t.ticket_id,
            "at": at,
            "service": t.service,
            "channel": t.channel,
            "case_no": t.case_no,
            "applicant_key": t.applicant_key,
            "window": t.window,
            "staff": t.staff,
        }
        data.update({k: v for k, v in extra.items() if v is not None})
        return TicketBody.model_validate(data)

    def _issue(self, conn: sqlite3.Connection, ev: QueueEvent) -> list[Emitted]:
        day = ev.at.astimezone(self._tz).date()
        ticket_id = f"{day:%Y%m%d}-{ev.ticket}"
        if self._load(conn, "WHERE ticket_id = ?", (ticket_id,)) is not None:
            raise TicketError(f"issued: ticket {ticket_id} was already issued")
        if ev.service is None:
            raise TicketError("issued: no service")
        channel = ev.channel or TicketChannel.ON_SITE
        t = _Ticket(
            ticket_id=ticket_id,
            number=ev.ticket,
            issue_date=day.isoformat(),
            service=ev.service,
            channel=channel.value,
            case_no=ev.case_no,
            applicant_key=ev.applicant_key,
            state="waiting",
            leg=1,
            clock_start=_ts(ev.at) if self.wait_clock.starts_at_issue(channel) else None,
            clock_stop=None,
            breached=0,
            breach_at=None,
            checked_in=0,
            last_at=_ts(ev.at),
            window=ev.window,
            staff=ev.staff,
            close_at=_ts(self.wait_clock.close_at(day, ev.at)),
        )
        self._schedule(t)
        t.save(conn)
        self._seen(conn, day, ev.service)
        conn.execute(
            "INSERT INTO ticket_events (ticket_id, event, at) VALUES (?, ?, ?)",
            (ticket_id, ev.event.value, _ts(ev.at)),
        )
        return [Emitted(ev.at, self._ticket_body(t, E.ISSUED, ev.at))]

    @staticmethod
    def _seen(conn: sqlite3.Connection, day: date, service: str) -> None:
        conn.execute(
            "INSERT OR IGNORE INTO queue_services_seen (day, service) VALUES (?, ?)",
            (day.isoformat(), service),
        )

    def _apply(self, conn: sqlite3.Connection, ev: QueueEvent) -> list[Emitted]:
        if ev.event is E.ISSUED:
            return self._issue(conn, ev)
        t = self._find(conn, ev)
        at_text = _ts(ev.at)
        if at_text < t.last_at:
            raise TicketError(
                f"{ev.event.value}: out of order: {ev.at.isoformat()} is older than ticket "
                f"{t.ticket_id}'s last event ({t.last_at})"
            )
        kind = ev.event
        if kind is E.CALLED and t.state in ("called", "no_show"):
            kind = E.RECALLED  # a repeat call (重呼)
        if t.state not in ALLOWED[kind]:
            raise TicketError(f"{kind.value}: ticket {t.ticket_id} is {t.state}")
        if kind is E.CHECKED_IN and t.checked_in:
            raise TicketError(f"checked_in: ticket {t.ticket_id} already checked in")
        if kind is E.TRANSFERRED and t.leg >= MAX_LEG:
            raise TicketError(
                f"transferred: ticket {t.ticket_id} already has {MAX_LEG} legs, the most allowed"
            )
        out: list[Emitted] = []
        old_service = t.service
        t.case_no = ev.case_no or t.case_no
        t.applicant_key = ev.applicant_key or t.applicant_key
        t.window = ev.window or t.window
        t.staff = ev.staff or t.staff
        event_window = t.window  # the window this event happened at (a transfer moves it)
        t.clock_start, t.clock_stop = self.wait_clock.after(
            kind, t.clock_start, t.clock_stop, at_text
        )
        if kind is E.CHECKED_IN:
            t.checked_in = 1
        elif kind is E.TRANSFERRED:  # the next leg, its clock started at the transfer
            t.leg += 1
            t.service = ev.to_service or t.service
            t.window, t.staff = ev.to_window, None
            t.breached = 0
            self._seen(conn, ev.at.astimezone(self._tz).date(), t.service)
        wait_s = None
        if kind in (E.CALLED, E.RECALLED, E.SERVICE_STARTED):
            wait_s = round(self._wait(t, ev.at), 3)
        body = self._ticket_body(
            t,
            kind,
            ev.at,
            service=old_service,
            window=event_window,
            to_service=ev.to_service,
            to_window=ev.to_window,
            outcome=ev.outcome,
            reason=ev.reason,
            wait_s=wait_s,
        )
        t.state = NEXT_STATE[kind]
        t.last_at = at_text
        if t.state in CLOSABLE and at_text > t.close_at:
            t.close_at = at_text  # waiting again after closing (a late transfer): ends now
        out.append(Emitted(ev.at, body))
        # last_call: a limit passed while being called is reported at the no-show/recall.
        if (
            self.wait_clock.last_call
            and kind in (E.NO_SHOW, E.RECALLED)
            and not t.breached
            and t.clock_start is not None
            and self._wait(t, ev.at) >= self.cfg.wait_limit_s(t.service)
        ):
            out.append(self._breach(conn, t, ev.at))
        self._schedule(t)
        t.save(conn)
        conn.execute(
            "INSERT INTO ticket_events (ticket_id, event, at) VALUES (?, ?, ?)",
            (t.ticket_id, ev.event.value, at_text),
        )
        if kind is E.SERVICE_ENDED:
            trips = self.trips.record(
                conn,
                at=ev.at,
                ticket_id=t.ticket_id,
                service=t.service,
                case_no=t.case_no,
                applicant_key=t.applicant_key,
                window=t.window,
                staff=t.staff,
            )
            if trips is not None:
                out.append(Emitted(ev.at, trips))
        return out
