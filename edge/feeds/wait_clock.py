"""The wait clock (窗口等待时间) of a ticket's leg: pure arithmetic (docs/cases.md §1).

A ticket's wait in its current leg is ``counted(clock_start, clock_stop or now)``, where
``counted`` is service time or elapsed time (``queue.wait_counts``). The clock starts at
issue, at check-in (``queue.wait_start: checked_in``, appointments only) or at a
transfer, and stops at the leg's first call (``first_call``) or at its latest call
(``last_call``, where a ``no_show`` sets it running again from the same start). While
the clock runs the ticket has a ``breach_at``: the moment the counted wait reaches the
limit, when a ``wait`` is due. A wait of exactly the limit counts as reaching it.

The :class:`WaitClock` holds no ticket state and touches no store: the
:class:`~edge.feeds.tickets.TicketTracker` keeps the tickets, their timers and the
SQLite tables, and asks the clock when a leg's clock starts and stops, how long a leg
has waited, when it reaches its limit and when the issue day's service ends.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import TypeVar

from hallwatch.config.feeds import QueueFeedConfig, WaitCounts, WaitEnd, WaitStart
from hallwatch.config.models import HallConfig
from hallwatch.contract import TicketChannel, TicketEventType
from hallwatch.service_time import day_periods, when_in_service_reaches

E = TicketEventType

Stamp = TypeVar("Stamp")
"""A point in time as the caller stores it (the tracker passes its sortable UTC text)."""

_PERIODS_CACHED = 1000
"""Days of service periods kept before the cache starts over."""


class WaitClock:
    """The wait clock of one hall's queue machine (start, stop, counting, limit).

    Args:
        hall: The hall config (timezone and ``service_hours``).
        cfg: The hall's queue feed config (``wait_start``, ``wait_end``,
            ``wait_counts``).

    Attributes:
        last_call: True when the clock stops at the answered call (``queue.wait_end:
            last_call``): a ``no_show`` sets it running again.
    """

    def __init__(self, hall: HallConfig, cfg: QueueFeedConfig) -> None:
        self.hall = hall
        self.cfg = cfg
        self.last_call = cfg.wait_end is WaitEnd.LAST_CALL
        self._tz = hall.tzinfo
        self._day_periods: dict[date, list[tuple[datetime, datetime]]] = {}

    # ------------------------------------------------------------------ start and stop

    def starts_at_issue(self, channel: TicketChannel) -> bool:
        """Whether leg 1's clock starts when the ticket is issued.

        Args:
            channel: The ticket's channel (on-site or appointment).

        Returns:
            False for an appointment when the clock starts at check-in
            (``queue.wait_start: checked_in``), else True.
        """
        deferred = self.cfg.wait_start is WaitStart.CHECKED_IN
        return not (deferred and channel is TicketChannel.APPOINTMENT)

    def after(
        self, event: TicketEventType, start: Stamp | None, stop: Stamp | None, at: Stamp
    ) -> tuple[Stamp | None, Stamp | None]:
        """The leg's clock start and stop after an event (``issued`` aside).

        Args:
            event: The event as applied (a repeat ``called`` already turned into
                ``recalled``).
            start: The clock's start before the event (None: not started).
            stop: The clock's stop before the event (None: running or not started).
            at: The event's time.

        Returns:
            ``(start, stop)`` after it: ``checked_in`` starts a clock not yet started; a
            call stops a running clock (``first_call``) or moves the stop to this call
            (``last_call``, recalls too); a ``no_show`` sets it running again
            (``last_call``); a transfer starts the next leg's clock; service start or end
            and abandoning stop a running clock. Other events change nothing.
        """
        if event is E.CHECKED_IN:
            if start is None:
                start = at
        elif event is E.CALLED or (event is E.RECALLED and self.last_call):
            if start is not None and (stop is None or self.last_call):
                stop = at
        elif event is E.NO_SHOW and self.last_call:
            stop = None  # waits again, from the leg's start
        elif event is E.TRANSFERRED:
            start, stop = at, None
        elif (
            event in (E.SERVICE_STARTED, E.SERVICE_ENDED, E.ABANDONED)
            and start is not None
            and stop is None
        ):
            stop = at
        return start, stop

    # ------------------------------------------------------------------ counting

    def periods(self, day: date) -> list[tuple[datetime, datetime]]:
        """UTC service periods of a hall-local date (cached: gauges ask for every ticket).

        Args:
            day: The hall-local date.

        Returns:
            Its ``[from, to)`` service periods in UTC, in order (a lunch break the hall
            closes for splits the day in two); empty on a day without service.
        """
        periods = self._day_periods.get(day)
        if periods is None:
            hours = self.hall.service_hours.hours_on(day)
            periods = [
                (
                    datetime.combine(day, a, tzinfo=self._tz).astimezone(UTC),
                    datetime.combine(day, b, tzinfo=self._tz).astimezone(UTC),
                )
                for a, b in (day_periods(hours) if hours is not None else [])
            ]
            if len(self._day_periods) > _PERIODS_CACHED:
                self._day_periods.clear()
            self._day_periods[day] = periods
        return periods

    def counted(self, start: datetime, end: datetime) -> float:
        """Seconds of ``[start, end)`` on the wait clock (as ``in_service_seconds``).

        Args:
            start: Interval start (aware).
            end: Interval end (aware); ``end <= start`` counts 0.

        Returns:
            Service seconds (``service_time``) or all seconds (``elapsed``).
        """
        if self.cfg.wait_counts is WaitCounts.ELAPSED:
            return max(0.0, (end - start).total_seconds())
        total = 0.0
        day = start.astimezone(self._tz).date()
        last = end.astimezone(self._tz).date()
        while day <= last:
            for a, b in self.periods(day):
                lo, hi = max(a, start), min(b, end)
                if lo < hi:
                    total += (hi - lo).total_seconds()
            day += timedelta(days=1)
        return total

    def waited(self, start: datetime | None, stop: datetime | None, at: datetime) -> float:
        """A leg's wait at ``at``: counted from its clock start to its stop, or to ``at``.

        Args:
            start: The clock's start (None: not started, the wait is 0).
            stop: The clock's stop (None: still running).
            at: Now.

        Returns:
            The counted wait in seconds.
        """
        if start is None:
            return 0.0
        return self.counted(start, stop if stop is not None else at)

    def reported(
        self, start: datetime | None, stop: datetime | None, at: datetime, limit_s: float
    ) -> float:
        """The wait a ``wait`` fact reports at ``at``.

        Args:
            start: The clock's start (None: not started).
            stop: The clock's stop (None: still running).
            at: When the fact is due.
            limit_s: The leg's wait limit.

        Returns:
            :meth:`waited`, but at least ``limit_s`` while the clock runs (its limit was
            reached).
        """
        waited = self.waited(start, stop, at)
        return max(limit_s, waited) if stop is None else waited

    # ------------------------------------------------------------------ limits and day's end

    def reach(self, start: datetime, seconds: float) -> datetime | None:
        """When a clock started at ``start`` has counted ``seconds`` (reaches a limit).

        Args:
            start: The clock's start (aware).
            seconds: The wait to reach, in seconds.

        Returns:
            That moment, or None when the hall does not serve that long within the
            service-time horizon (``service_time`` only).
        """
        if self.cfg.wait_counts is WaitCounts.ELAPSED:
            return start + timedelta(seconds=seconds)
        return when_in_service_reaches(self.hall, start, seconds)

    def close_at(self, day: date, at: datetime) -> datetime:
        """When the service of a ticket's issue day ends (day's end, in UTC).

        Args:
            day: The ticket's hall-local issue date.
            at: When it was issued.

        Returns:
            The day's closing time; midnight after it on a day without service or for a
            ticket issued at or after closing.
        """
        hours = self.hall.service_hours.hours_on(day)
        midnight = datetime.combine(day + timedelta(days=1), time(0), tzinfo=self._tz)
        if hours is None:
            return midnight.astimezone(UTC)
        close = datetime.combine(day, hours.close, tzinfo=self._tz).astimezone(UTC)
        return close if at < close else midnight.astimezone(UTC)
