"""The queue-machine feed (排队叫号机): vendor messages in, ticket / wait / trips / queue facts out.

Rules: docs/cases.md §1; formats: docs/protocol.md, "Queue machine feeds".

- The configured adapter (``queue.adapter``) parses each message into a
  :class:`~edge.feeds.queue_adapters.QueueEvent`, hashing any ID number at once.
- A message the adapter or the tracker cannot use is dead-lettered in the
  :class:`FeedStore` with the reason, its ID numbers masked; the feed goes on.
- The :class:`~edge.feeds.tickets.TicketTracker` keeps the tickets and returns what to
  send; each becomes a fact dated at its moment (the event, the breach, the close).
- Time: with ``queue.clock: events`` only event times move the feed; with ``wall``,
  :meth:`QueueFeed.tick` moves it too (never backwards), and an event dated more than
  :data:`MAX_AHEAD` after the edge's clock is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from edge.feeds.applicant import mask_id_numbers
from edge.feeds.base import FeedMessage, FeedStore
from edge.feeds.queue_adapters import QueueAdapterError, make_adapter
from edge.feeds.tickets import Emitted, TicketError, TicketTracker
from hallwatch.config.feeds import FeedClock
from hallwatch.config.models import HallConfig
from hallwatch.contract import (
    Fact,
    QueueBody,
    QueueFact,
    TicketBody,
    TicketFact,
    TripsBody,
    TripsFact,
    WaitBody,
    WaitFact,
    utcnow,
)

logger = logging.getLogger(__name__)

MAX_AHEAD = timedelta(minutes=5)
"""With the wall clock, events dated further ahead of the edge's clock are refused."""


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
        self.tracker = TicketTracker(config, store)
        self.counts: dict[str, int] = {"applied": 0, "duplicate": 0, "dead_letter": 0}

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
        if self._queue.clock is FeedClock.WALL and event.at > self._now() + MAX_AHEAD:
            self._dead_letter(message, f"event time {event.at.isoformat()} is in the future")
            return []
        try:
            emitted = self.tracker.process(event)
        except TicketError as exc:
            self._dead_letter(message, f"rejected: {exc}")
            return []
        if emitted is None:
            self.counts["duplicate"] += 1
            return []
        self.counts["applied"] += 1
        return self._facts(emitted)

    def tick(self, now: datetime) -> list[Fact]:
        """Facts due by time alone (waits, day's-end abandons, gauges).

        With ``clock: events`` time moves only with events, so this returns nothing.

        Args:
            now: The edge's clock (aware).
        """
        if self._queue.clock is FeedClock.EVENTS:
            return []
        return self._facts(self.tracker.advance(now))

    def _dead_letter(self, message: FeedMessage, reason: str) -> None:
        self.counts["dead_letter"] += 1
        masked = FeedMessage(message.topic, mask_id_numbers(message.payload), message.received)
        self._store.dead_letter(self.name, masked, reason)

    def _facts(self, emitted: list[Emitted]) -> list[Fact]:
        facts: list[Fact] = []
        hall, source = self._hall, self._source
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
