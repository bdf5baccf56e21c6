"""The queue-machine feed (排队叫号机): vendor messages in, ticket / wait / trips / queue facts out.

Rules: docs/cases.md §1; formats: docs/protocol.md, "Queue machine feeds".

- The configured adapter (``queue.adapter``) parses each message into a
  :class:`~edge.feeds.queue_adapters.QueueEvent`, hashing any ID number at once.
- A message the adapter or the tracker cannot use is dead-lettered in the
  :class:`FeedStore` with the reason (the store masks ID numbers); the feed goes on.
- The :class:`~edge.feeds.tickets.TicketTracker` keeps the tickets and returns the facts
  to send, each dated at its moment (the event, the breach, the close) and staged in the
  store in the transaction that changed the tickets (see :mod:`edge.feeds.base`).
- Time: with ``queue.clock: events`` only event times move the feed; with ``wall``,
  :meth:`QueueFeed.tick` moves it too (never backwards), and an event dated more than
  :data:`MAX_AHEAD` after the edge's clock is refused.
- Machine clock: breach times come from the machine's event times, ticks from the edge's
  clock, so the machine must be NTP-synced. With ``clock: wall`` the feed estimates the
  machine's offset (the median of ``received - at`` over the last
  :data:`CLOCK_OFFSET_SAMPLES` live messages) and logs a WARNING, at most once per
  :data:`CLOCK_WARN_EVERY`, when it exceeds :data:`CLOCK_OFFSET_LIMIT`.
"""

from __future__ import annotations

import logging
import statistics
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta

from edge.feeds.base import FeedMessage, FeedStore
from edge.feeds.queue_adapters import QueueAdapterError, make_adapter
from edge.feeds.tickets import TicketError, TicketTracker
from hallwatch.config.feeds import FeedClock
from hallwatch.config.models import HallConfig
from hallwatch.contract import Fact, utcnow

logger = logging.getLogger(__name__)

MAX_AHEAD = timedelta(minutes=5)
"""With the wall clock, events dated further ahead of the edge's clock are refused."""
CLOCK_OFFSET_LIMIT = timedelta(seconds=30)
"""A machine clock estimated further than this from the edge's is warned about."""
CLOCK_OFFSET_SAMPLES = 31
"""Live messages the offset estimate (a running median) is taken over."""
CLOCK_OFFSET_MIN_SAMPLES = 5
"""No estimate (and no warning) before this many live messages."""
CLOCK_WARN_EVERY = timedelta(hours=1)
"""At most one clock-offset warning per this time (edge's clock)."""


class QueueFeed:
    """The ``queue`` feed of one hall (implements :class:`edge.feeds.base.Feed`).

    Args:
        config: The hall config; ``config.queue`` must be set.
        store: The edge's feed store (ticket state and dead letters).
        now: The edge's clock (only used, with ``clock: wall``, to refuse events from
            the future).

    Attributes:
        counts: Messages by outcome since start: ``applied``, ``duplicate``,
            ``dead_letter``.
        clock_offset_s: With ``clock: wall``, the estimated offset of the machine's
            clock behind the edge's, in seconds (delivery delay included; negative: ahead),
            or None before :data:`CLOCK_OFFSET_MIN_SAMPLES` live messages.

    Raises:
        ValueError: The hall config has no ``queue`` section.
    """

    name = "queue"

    def __init__(
        self, config: HallConfig, store: FeedStore, *, now: Callable[[], datetime] = utcnow
    ) -> None:
        if config.queue is None:
            raise ValueError("the hall config has no queue section")
        self._config = config
        self._queue = config.queue
        self._store = store
        self._now = now
        self._hall = config.hall.id
        self._source = config.edge.source
        self.topic_filter: str = config.queue.topic
        self._adapter = make_adapter(config.queue, config.tzinfo)
        self.tracker = TicketTracker(config, store, feed=self.name)
        self.counts: dict[str, int] = {"applied": 0, "duplicate": 0, "dead_letter": 0}
        self.clock_offset_s: float | None = None
        self._offsets: deque[float] = deque(maxlen=CLOCK_OFFSET_SAMPLES)
        self._offset_warned: datetime | None = None

    def handle(self, message: FeedMessage) -> list[Fact]:
        """The facts one queue-machine message causes.

        Waits and day's-end abandons that fall due before the event come first, then the
        event's ``ticket`` fact, then a ``wait`` (last_call no-show) or ``trips`` fact.

        Args:
            message: The MQTT message as received.

        Returns:
            Facts in order; none for a duplicate or a dead-lettered message.
        """
        try:
            event = self._adapter.parse(message.payload)
        except QueueAdapterError as exc:
            self._dead_letter(message, f"bad message: {exc}")
            return []
        if self._queue.clock is FeedClock.WALL and message.live:
            self._watch_clock(message.received, event.at)
        if self._queue.clock is FeedClock.WALL and event.at > self._now() + MAX_AHEAD:
            self._dead_letter(message, f"event time {event.at.isoformat()} is in the future")
            return []
        try:
            facts = self.tracker.process(event)
        except TicketError as exc:
            self._dead_letter(message, f"rejected: {exc}")
            return []
        if facts is None:
            self.counts["duplicate"] += 1
            return []
        self.counts["applied"] += 1
        return facts

    def tick(self, now: datetime) -> list[Fact]:
        """Facts due by time alone (waits, day's-end abandons, gauges).

        With ``clock: events`` time moves only with events, so this returns nothing.

        Args:
            now: The edge's clock (aware).
        """
        if self._queue.clock is FeedClock.EVENTS:
            return []
        return self.tracker.advance(now)

    def _watch_clock(self, received: datetime, at: datetime) -> None:
        """Update the machine clock's offset estimate; warn (rate-limited) when it is off."""
        self._offsets.append((received - at).total_seconds())
        if len(self._offsets) < CLOCK_OFFSET_MIN_SAMPLES:
            return
        offset = statistics.median(self._offsets)
        self.clock_offset_s = offset
        if abs(offset) <= CLOCK_OFFSET_LIMIT.total_seconds():
            return
        if self._offset_warned is not None and received - self._offset_warned < CLOCK_WARN_EVERY:
            return
        self._offset_warned = received
        logger.warning(
            "queue machine clock looks %.0f s %s the edge's (median of the last %d messages);"
            " waits are dated by the machine's clock: sync it with NTP",
            abs(offset),
            "behind" if offset > 0 else "ahead of",
            len(self._offsets),
        )

    def _dead_letter(self, message: FeedMessage, reason: str) -> None:
        self.counts["dead_letter"] += 1
        self._store.dead_letter(self.name, message, reason)  # the store masks ID numbers
