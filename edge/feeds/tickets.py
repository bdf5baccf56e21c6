"""The ticket tracker: ticket state and storage (docs/cases.md §1).

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
moment the running clock reaches the limit, when a ``wait`` is due). What falls due by
time alone (waits over the limit, day's-end abandons, queue gauges) is handled by its
:class:`~edge.feeds.ticket_timers.TicketTimers`, in the same transaction.

What the tracker reports leaves it as facts already staged (:meth:`FeedStore.stage`) in
the transaction that changed the tickets: a leg marked ``breached`` or a trip count
marked reported is never committed without its fact.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import date, datetime

from edge.feeds.base import FeedStore
from edge.feeds.queue_adapters import QueueEvent
from edge.feeds.ticket_timers import (
    CLOSABLE,
    TICKET_SELECT,
    Emitted,
    Ticket,
    TicketTimers,
    stamp,
    ticket_body,
)
from edge.feeds.trips import TripCounter
from edge.feeds.wait_clock import WaitClock
from hallwatch.config.feeds import QueueFeedConfig
from hallwatch.config.models import HallConfig
from hallwatch.contract import (
    Fact,
    QueueBody,
    QueueFact,
    TicketBody,
    TicketChannel,
    TicketEventType,
    TicketFact,
    TripsBody,
    TripsFact,
    WaitBody,
    WaitFact,
)

__all__ = ["ALLOWED", "MAX_LEG", "NEXT_STATE", "OPEN", "Emitted", "TicketError", "TicketTracker"]

logger = logging.getLogger(__name__)

E = TicketEventType
OPEN = ("waiting", "called", "no_show", "serving")
"""Ticket states before its end (``ended``, ``abandoned``)."""
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


class TicketTracker:
    """Tickets of one hall's queue machine, and what they cause.

    Args:
        hall: The hall config; ``hall.queue`` must be set.
        store: The edge's feed store (the tracker creates its tables in it).
        feed: The feed name its facts are staged under.

    Attributes:
        duplicates: Duplicate events dropped since start.
        wait_clock: The legs' wait clock (start, stop, counting, limit, day's end).
        trips: The trip counter, fed at each ``service_ended`` (same store, same
            transaction).
        timers: The timers (waits over the limit, day's-end abandons, gauges), run
            before each event and at each :meth:`advance` (same store, same transaction).

    Raises:
        ValueError: The hall config has no ``queue`` section.
    """

    def __init__(self, hall: HallConfig, store: FeedStore, *, feed: str = "queue") -> None:
        if hall.queue is None:
            raise ValueError("the hall config has no queue section")
        self.hall = hall
        self.cfg: QueueFeedConfig = hall.queue
        self._store = store
        self._feed = feed
        self._tz = hall.tzinfo
        self.duplicates = 0
        self.wait_clock = WaitClock(hall, self.cfg)
        self.trips = TripCounter(self.cfg, self._tz)
        self.timers = TicketTimers(self.cfg, self.wait_clock, self._tz)
        with store.transaction() as conn:
            for statement in _SCHEMA:
                conn.execute(statement)
            self.trips.create_tables(conn)

    # ------------------------------------------------------------------ public

    def feed_time(self) -> datetime | None:
        """The feed's current time (persisted), or None before the first event or tick."""
        with self._store.reading() as conn:
            return self.timers.feed_time(conn)

    def process(self, event: QueueEvent) -> list[Fact] | None:
        """Move time to the event (reporting what falls due first), then apply it.

        Args:
            event: One normalised queue-machine event.

        Returns:
            The facts to send, in order, each dated at its moment and staged in the
            store; None for a duplicate (dropped and counted).

        Raises:
            TicketError: The event cannot be applied (nothing is changed).
        """
        if self._is_duplicate(event):
            self.duplicates += 1
            logger.info("duplicate %s of ticket %s dropped", event.event.value, event.ticket)
            return None
        with self._store.transaction() as conn:
            out = self.timers.advance(conn, event.at)
            out.extend(self._apply(conn, event))
            return self._store.stage(conn, self._feed, self._facts(out))

    def advance(self, to: datetime) -> list[Fact]:
        """Move the feed's time to ``to`` (never backwards) and report what fell due.

        Returns:
            Waits passing their limit, tickets abandoned at the day's close and queue
            gauges, in time order, as facts staged in the store.
        """
        with self._store.transaction() as conn:
            out = self.timers.advance(conn, to)
            return self._store.stage(conn, self._feed, self._facts(out))

    def wait_s(self, ticket_id: str, at: datetime) -> float | None:
        """The current leg's wait of a ticket at ``at`` (None: no such ticket)."""
        with self._store.reading() as conn:
            t = self._load(conn, "WHERE ticket_id = ?", (ticket_id,))
        return None if t is None else self.timers.wait(t, at)

    def _facts(self, emitted: list[Emitted]) -> list[Fact]:
        """The facts of what the tracker reports (the hall's envelope, dated at ``ts``)."""
        facts: list[Fact] = []
        hall, source = self.hall.hall.id, self.hall.edge.source
        for item in emitted:
            body = item.body
            if isinstance(body, TicketBody):
                facts.append(TicketFact(hall=hall, source=source, ts=item.ts, body=body))
            elif isinstance(body, WaitBody):
                facts.append(WaitFact(hall=hall, source=source, ts=item.ts, body=body))
            elif isinstance(body, TripsBody):
                facts.append(TripsFact(hall=hall, source=source, ts=item.ts, body=body))
            elif isinstance(body, QueueBody):
                facts.append(QueueFact(hall=hall, source=source, ts=item.ts, body=body))
        return facts

    # ------------------------------------------------------------------ storage

    @staticmethod
    def _load(conn: sqlite3.Connection, where: str, args: tuple[str, ...]) -> Ticket | None:
        row = conn.execute(f"{TICKET_SELECT} {where}", args).fetchone()
        return None if row is None else Ticket(*row)

    def _is_duplicate(self, event: QueueEvent) -> bool:
        with self._store.reading() as conn:
            row = conn.execute(
                "SELECT 1 FROM ticket_events e JOIN tickets t ON t.ticket_id = e.ticket_id"
                " WHERE t.number = ? AND e.event = ? AND e.at = ? LIMIT 1",
                (event.ticket, event.event.value, stamp(event.at)),
            ).fetchone()
        return row is not None

    def _find(self, conn: sqlite3.Connection, event: QueueEvent) -> Ticket:
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

    # ------------------------------------------------------------------ events

    def _issue(self, conn: sqlite3.Connection, ev: QueueEvent) -> list[Emitted]:
        day = ev.at.astimezone(self._tz).date()
        ticket_id = f"{day:%Y%m%d}-{ev.ticket}"
        if self._load(conn, "WHERE ticket_id = ?", (ticket_id,)) is not None:
            raise TicketError(f"issued: ticket {ticket_id} was already issued")
        if ev.service is None:
            raise TicketError("issued: no service")
        channel = ev.channel or TicketChannel.ON_SITE
        t = Ticket(
            ticket_id=ticket_id,
            number=ev.ticket,
            issue_date=day.isoformat(),
            service=ev.service,
            channel=channel.value,
            case_no=ev.case_no,
            applicant_key=ev.applicant_key,
            state="waiting",
            leg=1,
            clock_start=stamp(ev.at) if self.wait_clock.starts_at_issue(channel) else None,
            clock_stop=None,
            breached=0,
            breach_at=None,
            checked_in=0,
            last_at=stamp(ev.at),
            window=ev.window,
            staff=ev.staff,
            close_at=stamp(self.wait_clock.close_at(day, ev.at)),
        )
        self.timers.schedule(t)
        t.save(conn)
        self._seen(conn, day, ev.service)
        conn.execute(
            "INSERT INTO ticket_events (ticket_id, event, at) VALUES (?, ?, ?)",
            (ticket_id, ev.event.value, stamp(ev.at)),
        )
        return [Emitted(ev.at, ticket_body(t, E.ISSUED, ev.at))]

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
        at_text = stamp(ev.at)
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
            wait_s = round(self.timers.wait(t, ev.at), 3)
        body = ticket_body(
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
            and self.timers.wait(t, ev.at) >= self.cfg.wait_limit_s(t.service)
        ):
            out.append(self.timers.breach(conn, t, ev.at))
        self.timers.schedule(t)
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
