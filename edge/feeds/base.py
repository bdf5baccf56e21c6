"""What every device feed (queue machine, evaluators) shares: the interface and its store.

A feed turns a vendor's MQTT messages into facts. The MQTT client's callback only
enqueues (:class:`FeedMessage`); one feed thread calls :meth:`Feed.handle` for each
message in arrival order and :meth:`Feed.tick` about once a second, and writes the facts
they return to the outbox. A feed never raises for bad input: it dead-letters the
message in the :class:`FeedStore` with the reason and goes on; the store blanks ID
numbers in every dead letter (payload, topic, reason) and its log line.

Feed state (tickets, visits, ratings seen, dead letters) lives in one SQLite file per
edge (``edge.feed_state_path``), so it survives restarts; each feed owns its tables.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from hallwatch.contract import Fact
from hallwatch.privacy import mask_id_numbers, mask_id_numbers_text

logger = logging.getLogger(__name__)

DEAD_LETTER_MAX_PAYLOAD = 64 * 1024


@dataclass(frozen=True)
class FeedMessage:
    """One MQTT message from a device, as received.

    Attributes:
        topic: The topic it came on.
        payload: Raw payload bytes.
        received: When the edge received it (UTC).
        live: False for a message delivered while the runner was catching up after a
            (re)connect (a backlog the broker held): its ``received`` says nothing about
            when it was sent.
    """

    topic: str
    payload: bytes
    received: datetime
    live: bool = True


@dataclass(frozen=True)
class DeadLetter:
    """A device message a feed could not use, and why."""

    id: int
    feed: str
    topic: str
    payload: bytes
    reason: str
    received: datetime


class Feed(Protocol):
    """A device feed: vendor messages in, facts out."""

    name: str
    """Short name, ``queue`` or ``evaluators`` (dead letters and stats are keyed by it)."""
    topic_filter: str
    """The MQTT topic filter it subscribes to."""

    def handle(self, message: FeedMessage) -> list[Fact]:
        """Facts caused by one message (none for a duplicate or a dead letter)."""
        ...

    def tick(self, now: datetime) -> list[Fact]:
        """Facts due by time alone (waits passing their limit, gauges, day's end)."""
        ...


class FeedStore:
    """The feeds' SQLite file: one connection, WAL, serialised by a lock.

    Args:
        path: The SQLite file (created with its folder if missing); ``:memory:`` for tests.
    """

    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS dead_letters ("
                " id INTEGER PRIMARY KEY AUTOINCREMENT, feed TEXT NOT NULL,"
                " topic TEXT NOT NULL, payload BLOB NOT NULL, reason TEXT NOT NULL,"
                " received TEXT NOT NULL)"
            )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on error)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection, for reads, under the lock."""
        with self._lock:
            yield self._conn

    def dead_letter(self, feed: str, message: FeedMessage, reason: str) -> None:
        """Keep a message a feed cannot use, with the reason (payload truncated to 64 KiB).

        Every dead letter passes here, so this is where ID numbers are blanked, whatever
        the feed: in the payload (:func:`~hallwatch.privacy.mask_id_numbers`), the topic
        and the reason (:func:`~hallwatch.privacy.mask_id_numbers_text`). The log line
        quotes the masked reason. Callers pass the raw message.

        Args:
            feed: The feed's name.
            message: The message as received (unmasked).
            reason: Why it cannot be used (may quote input; masked here).
        """
        topic = mask_id_numbers_text(message.topic)
        payload = mask_id_numbers(message.payload)[:DEAD_LETTER_MAX_PAYLOAD]
        safe_reason = mask_id_numbers_text(reason)
        logger.warning(
            "%s feed: dead-lettering message on %s (%d bytes): %s",
            feed,
            topic,
            len(message.payload),
            safe_reason[:300],
        )
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO dead_letters (feed, topic, payload, reason, received)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    feed,
                    topic,
                    payload,
                    safe_reason[:2000],
                    message.received.astimezone(UTC).isoformat(),
                ),
            )

    def dead_letters(self, feed: str | None = None) -> list[DeadLetter]:
        """Dead letters, oldest first (all feeds, or one)."""
        sql = "SELECT id, feed, topic, payload, reason, received FROM dead_letters"
        args: tuple[str, ...] = ()
        if feed is not None:
            sql += " WHERE feed = ?"
            args = (feed,)
        with self.reading() as conn:
            rows = conn.execute(sql + " ORDER BY id", args).fetchall()
        return [
            DeadLetter(r[0], r[1], r[2], bytes(r[3]), r[4], datetime.fromisoformat(r[5]))
            for r in rows
        ]

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._conn.close()
