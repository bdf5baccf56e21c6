"""Trips (跑动次数): visits per case, and when a case needed too many (docs/cases.md §1).

A *case* is ``case:<case_no>`` when the queue machine sends a case number, else
``applicant:<key>:<service>``; once a ticket carries both, the applicant's visits for
that service are merged into the case and the link is remembered. A *visit* is a
hall-local date with a ``service_ended``; visits more than ``queue.trip_link_days``
before the newest are forgotten. When the visit count grows past the service's promise
(``queue.promised_trips``), a :class:`~hallwatch.contract.TripsBody` is due; each count
is reported once: ``case_trips.reported`` keeps the highest count reported, and only a
higher count is sent. Forgetting old visits does not lower it (the remaining visits may
count up to an already reported number again, which is not sent twice); only a case
whose earlier visits were all forgotten starts over (``reported`` back to 0).

State lives in the caller's SQLite connection (tables ``case_visits``, ``case_trips``,
``case_aliases``), written inside the caller's transaction. The counter never reads a
clock.
"""

from __future__ import annotations

import sqlite3
from datetime import date, datetime, timedelta, tzinfo

from hallwatch.config.feeds import QueueFeedConfig
from hallwatch.contract import TripsBody

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS case_visits (case_ref TEXT NOT NULL, visit_date TEXT NOT NULL,"
    " PRIMARY KEY (case_ref, visit_date))",
    "CREATE TABLE IF NOT EXISTS case_trips (case_ref TEXT PRIMARY KEY, reported INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS case_aliases (applicant_ref TEXT PRIMARY KEY,"
    " case_ref TEXT NOT NULL)",
)


class TripCounter:
    """Counts visits per case and decides when a ``trips`` fact is due.

    Args:
        cfg: The hall's queue feed config (``promised_trips``, ``trip_link_days``).
        tz: The hall's timezone (a visit is a hall-local date).
    """

    def __init__(self, cfg: QueueFeedConfig, tz: tzinfo) -> None:
        self.cfg = cfg
        self._tz = tz

    @staticmethod
    def create_tables(conn: sqlite3.Connection) -> None:
        """Create the counter's tables if missing (existing state is kept)."""
        for statement in _SCHEMA:
            conn.execute(statement)

    def record(
        self,
        conn: sqlite3.Connection,
        *,
        at: datetime,
        ticket_id: str,
        service: str,
        case_no: str | None,
        applicant_key: str | None,
        window: str | None,
        staff: str | None,
    ) -> TripsBody | None:
        """Count a ticket's ``service_ended`` as a visit of its case.

        Args:
            conn: The store connection, inside the caller's transaction.
            at: When the service ended.
            ticket_id: The ticket's ID.
            service: The ticket's (current) service.
            case_no: The ticket's case number, if any.
            applicant_key: The ticket's hashed applicant key, if any.
            window: The window that served the ticket.
            staff: The staff member who served the ticket.

        Returns:
            The ``trips`` body to send, or None: no case to count, the count is within
            the promise, or this count was already reported.
        """
        case_ref = self._case_ref(conn, service, case_no, applicant_key)
        if case_ref is None:
            return None
        visits, reported = self._visit(conn, case_ref, at.astimezone(self._tz).date())
        promised = self.cfg.promised_trips_for(service)
        body = None
        if len(visits) > promised and len(visits) > reported:
            reported = len(visits)
            body = TripsBody(
                case_ref=case_ref[:120],
                case_no=case_no,
                applicant_key=applicant_key,
                service=service,
                trips=len(visits),
                promised=promised,
                visits=visits[-100:],
                ticket_id=ticket_id,
                window=window,
                staff=staff,
            )
        conn.execute(
            "INSERT OR REPLACE INTO case_trips (case_ref, reported) VALUES (?, ?)",
            (case_ref, reported),
        )
        return body

    @staticmethod
    def _case_ref(
        conn: sqlite3.Connection, service: str, case_no: str | None, applicant_key: str | None
    ) -> str | None:
        """The ticket's case (merging the applicant's visits into a case number), or None."""
        app_ref = f"applicant:{applicant_key}:{service}" if applicant_key else None
        if case_no is not None:
            case_ref = f"case:{case_no}"
            if app_ref is not None:
                TripCounter._merge(conn, app_ref, case_ref)
            return case_ref
        if app_ref is not None:
            row = conn.execute(
                "SELECT case_ref FROM case_aliases WHERE applicant_ref = ?", (app_ref,)
            ).fetchone()
            return str(row[0]) if row else app_ref
        return None

    def _visit(self, conn: sqlite3.Connection, case_ref: str, day: date) -> tuple[list[date], int]:
        """Add a visit day, forget visits beyond ``trip_link_days``.

        Returns:
            The case's linked visit days in order, and the highest count already reported
            (0 when every earlier visit was forgotten: the case starts over).
        """
        conn.execute(
            "INSERT OR IGNORE INTO case_visits (case_ref, visit_date) VALUES (?, ?)",
            (case_ref, day.isoformat()),
        )
        newest = conn.execute(
            "SELECT MAX(visit_date) FROM case_visits WHERE case_ref = ?", (case_ref,)
        ).fetchone()[0]
        horizon = date.fromisoformat(newest) - timedelta(days=self.cfg.trip_link_days)
        forgotten = conn.execute(
            "DELETE FROM case_visits WHERE case_ref = ? AND visit_date < ?",
            (case_ref, horizon.isoformat()),
        ).rowcount
        visits = [
            date.fromisoformat(r[0])
            for r in conn.execute(
                "SELECT visit_date FROM case_visits WHERE case_ref = ? ORDER BY visit_date",
                (case_ref,),
            )
        ]
        row = conn.execute(
            "SELECT reported FROM case_trips WHERE case_ref = ?", (case_ref,)
        ).fetchone()
        reported = int(row[0]) if row else 0
        if forgotten and visits == [day]:
            reported = 0  # nothing before this visit is linked any more: a fresh start
        return visits, reported

    @staticmethod
    def _merge(conn: sqlite3.Connection, app_ref: str, case_ref: str) -> None:
        """Move an applicant's visits for a service into the case; remember the link."""
        conn.execute(
            "INSERT OR IGNORE INTO case_visits (case_ref, visit_date)"
            " SELECT ?, visit_date FROM case_visits WHERE case_ref = ?",
            (case_ref, app_ref),
        )
        conn.execute("DELETE FROM case_visits WHERE case_ref = ?", (app_ref,))
        conn.execute(
            "INSERT OR REPLACE INTO case_trips (case_ref, reported) SELECT ?, MAX(reported)"
            " FROM case_trips WHERE case_ref IN (?, ?) HAVING COUNT(*) > 0",
            (case_ref, case_ref, app_ref),
        )
        conn.execute("DELETE FROM case_trips WHERE case_ref = ?", (app_ref,))
        conn.execute(
            "INSERT OR REPLACE INTO case_aliases (applicant_ref, case_ref) VALUES (?, ?)",
            (app_ref, case_ref),
        )
