"""The evaluator feed (评价器): vendor rating messages in, ``rating`` facts out.

Rules (``docs/cases.md`` section 2, formats in ``docs/evaluators.md``):

- The configured adapter (``evaluators.adapter``) turns the vendor's codes into named
  levels; a message it cannot use is dead-lettered in the :class:`FeedStore` with the
  reason, and the feed goes on.
- A rating is sent once. Its id is the vendor's, or, when the vendor sends none, one
  derived from its content (window or device, time, level, case, ticket, evaluation),
  so the same rating sent twice has the same id. Ids seen are kept in the feed store's
  ``evaluator_ratings_seen`` table and survive restarts.
- A rating names its ticket by number; its ``ticket_id`` is the rating's hall-local date
  and that number (``20261102-A017``).

The id is recorded as seen in the transaction that stages the fact
(:meth:`FeedStore.stage`): if the edge stops before writing the fact to its outbox, the
runner writes the staged fact on its next start, and the rating is neither lost nor
sent as two different facts.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime, timedelta

from edge.feeds.base import FeedMessage, FeedStore
from edge.feeds.evaluator_adapters import EvaluatorInputError, VendorRating, parse_rating
from hallwatch.config.models import HallConfig
from hallwatch.contract import Fact, RatingBody, RatingFact

logger = logging.getLogger(__name__)

SEEN_RETENTION = timedelta(days=400)
"""How long a rating id is remembered (by rating time); older ones are pruned."""

_PRUNE_EVERY = timedelta(hours=1)


class EvaluatorFeed:
    """The ``evaluators`` feed: one :class:`RatingFact` per new rating.

    Args:
        config: The hall config; ``config.evaluators`` must be set.
        store: The edge's feed store (this feed creates its own table in it).

    Attributes:
        counts: Messages by outcome since start: ``sent``, ``duplicate``, ``dead_letter``.

    Raises:
        ValueError: The hall config has no ``evaluators`` section.
    """

    name = "evaluators"

    def __init__(self, config: HallConfig, store: FeedStore) -> None:
        if config.evaluators is None:
            raise ValueError("the hall config has no evaluators section")
        self._config = config
        self._feed = config.evaluators
        self._store = store
        self._tz = config.tzinfo
        self.topic_filter: str = self._feed.topic
        self.counts: dict[str, int] = {"sent": 0, "duplicate": 0, "dead_letter": 0}
        self._next_prune: datetime | None = None
        with store.transaction() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS evaluator_ratings_seen ("
                " rating_id TEXT PRIMARY KEY, rated_at TEXT NOT NULL, received TEXT NOT NULL)"
            )
            conn.execute(
                "CREATE INDEX IF NOT EXISTS evaluator_ratings_seen_at"
                " ON evaluator_ratings_seen (rated_at)"
            )

    def handle(self, message: FeedMessage) -> list[Fact]:
        """The rating fact of one evaluator message (none for a duplicate or bad input).

        Args:
            message: The MQTT message as received.

        Returns:
            ``[RatingFact]`` for a new rating, ``[]`` for a duplicate or a dead letter.
        """
        try:
            rating = parse_rating(self._feed.adapter, message.payload, self._tz)
            fact = self._fact(rating)
        except EvaluatorInputError as exc:
            self._dead_letter(message, str(exc))
            return []
        except ValueError as exc:  # the contract refused a value the adapter let through
            self._dead_letter(message, f"invalid rating: {exc}")
            return []
        body = fact.body
        with self._store.transaction() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO evaluator_ratings_seen (rating_id, rated_at, received)"
                " VALUES (?, ?, ?)",
                (
                    body.rating_id,
                    body.at.astimezone(UTC).isoformat(),
                    message.received.astimezone(UTC).isoformat(),
                ),
            )
            new = cur.rowcount == 1
            if new:
                self._store.stage(conn, self.name, [fact])
        if not new:
            self.counts["duplicate"] += 1
            logger.info("evaluators feed: duplicate rating %s dropped", body.rating_id)
            return []
        self.counts["sent"] += 1
        return [fact]

    def tick(self, now: datetime) -> list[Fact]:
        """Nothing is due by time alone; forgets rating ids older than the retention."""
        if self._next_prune is None or now >= self._next_prune:
            self._next_prune = now + _PRUNE_EVERY
            cutoff = (now - SEEN_RETENTION).astimezone(UTC).isoformat()
            with self._store.transaction() as conn:
                conn.execute("DELETE FROM evaluator_ratings_seen WHERE rated_at < ?", (cutoff,))
        return []

    def _fact(self, rating: VendorRating) -> RatingFact:
        local_date = rating.at.astimezone(self._tz).strftime("%Y%m%d")
        body = RatingBody(
            rating_id=rating.rating_id or derived_rating_id(rating),
            at=rating.at,
            level=rating.level,
            dimensions=dict(rating.dimensions),
            attitude=rating.attitude,
            channel=rating.channel,
            evaluation=rating.evaluation,
            case_no=rating.case_no,
            ticket_id=f"{local_date}-{rating.ticket}" if rating.ticket else None,
            window=rating.window,
            staff=rating.staff,
            device=rating.device,
        )
        return RatingFact(
            hall=self._config.hall.id, source=self._config.edge.source, ts=rating.at, body=body
        )

    def _dead_letter(self, message: FeedMessage, reason: str) -> None:
        self.counts["dead_letter"] += 1
        self._store.dead_letter(self.name, message, reason)


def derived_rating_id(rating: VendorRating) -> str:
    """The id of a rating the vendor sent without one: a hash of what identifies it.

    Window (or device), time, level, case, ticket and evaluation number: the same rating
    sent twice gets the same id, two ratings differ in at least one of these.

    Example:
        >>> from datetime import UTC, datetime
        >>> from hallwatch.contract import RatingLevel
        >>> r = VendorRating(at=datetime(2026, 11, 2, 2, 15, tzinfo=UTC),
        ...                  level=RatingLevel.DISSATISFIED, window="3")
        >>> derived_rating_id(r) == derived_rating_id(r)
        True
        >>> derived_rating_id(r).startswith("ev-"), len(derived_rating_id(r))
        (True, 35)
    """
    parts = [
        rating.window or "",
        rating.device or "",
        rating.at.astimezone(UTC).isoformat(),
        rating.level.value,
        rating.case_no or "",
        rating.ticket or "",
        str(rating.evaluation),
    ]
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return f"ev-{digest[:32]}"
