"""The ticket tracker's timers: what falls due by time alone (docs/cases.md §1).

Three things come due without an event: a leg's ``wait`` (its running clock reaches the
limit at the ticket's ``breach_at``), a ticket's abandon at its issue day's end
(``closed`` at ``close_at`` for a waiting or no-show ticket, ``not_ended``
:data:`UNENDED_GRACE` later for a called or served one) and the queue gauge (every
``queue.gauge_interval_s``). :class:`TicketTimers` finds them in time order and handles
them in the caller's transaction; the :class:`~edge.feeds.tickets.TicketTracker` owns
it, keeps the event state machine and the tables, and asks it to move the feed's time
(:meth:`TicketTimers.advance`), to set a leg's ``breach_at``
(:meth:`TicketTimers.schedule`) and to report a leg's wait (:meth:`TicketTimers.breach`).

This module also holds the small types both share: a ``tickets`` row (:class:`Ticket`),
a fact to send (:class:`Emitted`) and the stored time text (:func:`stamp`). The feed's
time and the next gauge slot are kept in ``queue_meta`` (``feed_time``, ``next_gauge``).
Like the tracker, the timers never read a clock.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Literal

from edge.feeds.wait_clock import WaitClock
from hallwatch.config.feeds import QueueFeedConfig
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

Body = TicketBody | WaitBody | TripsBody | QueueBody

CLOSABLE = ("waiting", "no_show")
"""States abandoned (reason ``closed``) at the issue day's end."""
UNENDED = ("called", "serving")
"""States a window may still finish after closing time (延时服务); abandoned (reason
``not_ended``) only :data:`UNENDED_GRACE` after the close."""
UNENDED_GRACE = timedelta(hours=12)


@dataclass(frozen=True, slots=True)
class Emitted:
    """Something to send: a fact body and the fact's time."""

    ts: datetime
    body: Body


def stamp(dt: datetime) -> str:
    """Fixed-width UTC text: sorts as the times do."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def parse_stamp(text: str | None) -> datetime | None:
    """The time of a :func:`stamp` text (None stays None)."""
    return datetime.fromisoformat(text) if text is not None else None


@dataclass(slots=True)
class Ticket:
    """One row of ``tickets``: a ticket and its current leg (times are :func:`stamp` text).

    Attributes:
        ticket_id: ``YYYYMMDD-<number>`` (hall-local issue date, printed number).
        number: The printed number later events name the ticket by.
        issue_date: Hall-local issue date (ISO).
        service: The current leg's service (a transfer changes it).
        channel: ``on_site`` or ``appointment``.
        case_no: The case number, once an event carried one.
        applicant_key: The applicant key, once an event carried one.
        state: ``waiting``, ``called``, ``no_show``, ``serving``, ``ended`` or ``abandoned``.
        leg: The current leg, from 1 (at most ``edge.feeds.tickets.MAX_LEG``).
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


TICKET_SELECT = "SELECT " + ", ".join(f.name for f in fields(Ticket)) + " FROM tickets"
"""``SELECT <every Ticket column> FROM tickets``: append a ``WHERE`` clause."""


def ticket_body(t: Ticket, event: TicketEventType, at: datetime, **extra: object) -> TicketBody:
    """The ``ticket`` fact of an event of ``t`` at ``at``.

    Args:
        t: The ticket as the fact should describe it.
        event: The event reported.
        at: The event's time.
        **extra: Further fields; a None value leaves the ticket's own (or no) value.

    Returns:
        The validated body.
    """
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


@dataclass(frozen=True, slots=True)
class _Timer:
    """The next thing due by time alone: a ticket's breach or abandon, or a gauge."""

    at: datetime
    kind: Literal["breach", "abandon", "gauge"]
    """``abandon``: at the issue day's end, ``closed`` or ``not_ended``."""
    ticket: Ticket | None = None


def _meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM queue_meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def _set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("INSERT OR REPLACE INTO queue_meta (key, value) VALUES (?, ?)", (key, value))


class TicketTimers:
    """The time-driven part of the ticket tracker: breaches, day's-end abandons, gauges.

    Holds no state of its own: everything lives in the caller's connection (tables
    ``tickets``, ``queue_services_seen`` and ``queue_meta``, created by the tracker), and
    every method runs inside the caller's transaction.

    Args:
        cfg: The hall's queue feed config (wait limits, gauge interval).
        wait_clock: The legs' wait clock (shared with the tracker).
        tz: The hall's timezone (a gauge counts the services seen on its local day).
    """

    def __init__(self, cfg: QueueFeedConfig, wait_clock: WaitClock, tz: tzinfo) -> None:
        self.cfg = cfg
        self.wait_clock = wait_clock
        self._tz = tz

    # ------------------------------------------------------------------ clock

    @staticmethod
    def feed_time(conn: sqlite3.Connection) -> datetime | None:
        """The feed's current time (persisted), or None before the first event or tick."""
        return parse_stamp(_meta(conn, "feed_time"))

    def wait(self, t: Ticket, at: datetime) -> float:
        """The wait of a ticket's current leg at ``at`` (0 before its clock starts)."""
        return self.wait_clock.waited(parse_stamp(t.clock_start), parse_stamp(t.clock_stop), at)

    def schedule(self, t: Ticket) -> None:
        """Set ``breach_at`` while the clock runs and the leg is not yet reported."""
        start = parse_stamp(t.clock_start)
        running = start is not None and t.clock_stop is None and t.state in CLOSABLE
        if running and not t.breached and start is not None:
            due = self.wait_clock.reach(start, self.cfg.wait_limit_s(t.service))
            t.breach_at = stamp(due) if due is not None else None
        else:
            t.breach_at = None

    # ------------------------------------------------------------------ time

    def advance(self, conn: sqlite3.Connection, to: datetime) -> list[Emitted]:
        """Move the feed's time to ``to``: next timer, handle it, repeat.

        A timer whose handling fails (a bug, or a ticket the contract refuses) is logged
        with its ticket id and cleared, and the others go on: no single ticket can stop
        the feed (its failure is rolled back to a savepoint, never the whole advance).

        Args:
            conn: The caller's connection, inside its transaction.
            to: The new feed time; no later than the current one: nothing happens.

        Returns:
            Waits passing their limit, tickets abandoned at the day's close and queue
            gauges, in time order.
        """
        out: list[Emitted] = []
        now = parse_stamp(_meta(conn, "feed_time"))
        if now is not None and to <= now:
            return out
        interval = timedelta(seconds=self.cfg.gauge_interval_s)
        next_gauge = parse_stamp(_meta(conn, "next_gauge")) or to + interval
        while (timer := self._next_due(conn, to, next_gauge)) is not None:
            if timer.ticket is None:
                next_gauge = timer.at + interval
                try:
                    out.append(Emitted(timer.at, self._gauge(conn, timer.at)))
                except Exception:
                    logger.exception("queue gauge at %s failed; skipped", timer.at)
                continue
            out.extend(self._fire(conn, timer, timer.ticket))
        _set_meta(conn, "feed_time", stamp(to))
        _set_meta(conn, "next_gauge", stamp(next_gauge))
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
        limit = stamp(to)
        closable = ", ".join(f"'{s}'" for s in CLOSABLE)
        unended = ", ".join(f"'{s}'" for s in UNENDED)
        timers: list[tuple[datetime, int, _Timer]] = []
        row = conn.execute(
            f"{TICKET_SELECT} WHERE breach_at IS NOT NULL AND breach_at <= ?"
            " ORDER BY breach_at, ticket_id LIMIT 1",
            (limit,),
        ).fetchone()
        if row is not None:
            t = Ticket(*row)
            at = parse_stamp(t.breach_at)
            assert at is not None
            timers.append((at, 0, _Timer(at, "breach", t)))
        day_end = ((closable, limit), (unended, stamp(to - UNENDED_GRACE)))
        for rank, (states, by) in enumerate(day_end):
            row = conn.execute(
                f"{TICKET_SELECT} WHERE state IN ({states}) AND close_at <= ?"
                " ORDER BY close_at, ticket_id LIMIT 1",
                (by,),
            ).fetchone()
            if row is not None:
                t = Ticket(*row)
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

    def _fire(self, conn: sqlite3.Connection, timer: _Timer, t: Ticket) -> list[Emitted]:
        """Handle one ticket's timer; on failure log it, clear the timer and go on."""
        conn.execute("SAVEPOINT ticket_timer")
        try:
            if timer.kind == "breach":
                done = [self.breach(conn, t, timer.at)]
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

    def breach(self, conn: sqlite3.Connection, t: Ticket, at: datetime) -> Emitted:
        """Report the leg's wait over its limit at ``at``, and mark the leg reported.

        Args:
            conn: The caller's connection, inside its transaction.
            t: The ticket (saved with ``breached`` set and ``breach_at`` cleared).
            at: When the limit was passed (or, with ``last_call``, noticed).

        Returns:
            The ``wait`` fact.
        """
        limit_s = self.cfg.wait_limit_s(t.service)
        clock_start = parse_stamp(t.clock_start)
        waited = self.wait_clock.reported(clock_start, parse_stamp(t.clock_stop), at, limit_s)
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
    def _abandon_at(t: Ticket) -> datetime:
        at = parse_stamp(t.close_at)
        assert at is not None
        return at if t.state in CLOSABLE else at + UNENDED_GRACE

    def _abandon_due(self, conn: sqlite3.Connection, t: Ticket) -> Emitted:
        """Abandon a ticket at its issue day's end: ``closed`` when it was waiting or
        no-show, ``not_ended`` when it was called or served and still open
        :data:`UNENDED_GRACE` after the close."""
        at = self._abandon_at(t)
        reason = "closed" if t.state in CLOSABLE else "not_ended"
        body = ticket_body(t, TicketEventType.ABANDONED, at, reason=reason)
        t.state = "abandoned"
        t.breach_at = None
        t.last_at = max(t.last_at, stamp(at))
        t.save(conn)
        return Emitted(at, body)

    def _gauge(self, conn: sqlite3.Connection, at: datetime) -> QueueBody:
        """The queue gauge at ``at``: per service seen that local day, how many wait and
        the longest wait (services without waiting tickets count 0)."""
        day = at.astimezone(self._tz).date().isoformat()
        services = [
            r[0]
            for r in conn.execute(
                "SELECT service FROM queue_services_seen WHERE day = ? ORDER BY service", (day,)
            )
        ]
        waiting: dict[str, list[float]] = {s: [] for s in services}
        rows = conn.execute(
            f"{TICKET_SELECT} WHERE state IN ('waiting', 'no_show') AND clock_start IS NOT NULL"
        ).fetchall()
        for row in rows:
            t = Ticket(*row)
            waiting.setdefault(t.service, []).append(self.wait(t, at))
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
