"""What every device feed (queue machine, evaluators) shares: the interface and its store.

A feed turns a vendor's MQTT messages into facts. The MQTT client's callback only
enqueues (:class:`FeedMessage`); one feed thread calls :meth:`Feed.handle` for each
message in arrival order and :meth:`Feed.tick` about once a second, and writes the facts
they return to the outbox. A feed never raises for bad input: it dead-letters the
message in the :class:`FeedStore` with the reason and goes on; the store blanks ID
numbers in every dead letter (payload, topic, reason) and its log line.

Feed state (tickets, visits, ratings seen, dead letters) lives in one SQLite file per
edge (``edge.feed_state_path``), so it survives restarts; each feed owns its tables.

**Nothing is lost.** The outbox is another SQLite file, so a feed cannot change its state
and append to the outbox atomically. Instead, the transaction that changes a feed's state
(a leg marked ``breached``, a trip count marked reported, a rating id marked seen) also
stages the facts it causes, encoded, in order, in the store's ``pending_facts`` table
(:meth:`FeedStore.stage`); whoever commits stages, so what :meth:`Feed.handle` and
:meth:`Feed.tick` return is already staged. The runner deletes a staged fact
(:meth:`FeedStore.unstage`) only once ``write`` returned for it; on start, before it
subscribes, and after a failed write, before writing anything else, it writes every staged
fact again, oldest first (:meth:`FeedStore.pending`). A crash or a failed write between
the commit and the outbox therefore delays a fact but never loses it. A fact keeps its id,
so one written twice (a crash after the outbox append, before the delete) is the same
fact twice: the outbox ignores an id it holds and the aggregator drops duplicate ids.
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

from hallwatch.contract import Fact, encode, fact_topic
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
class PendingFact:
    """A fact staged by a feed and not yet written to the outbox."""

    seq: int
    """Staging order (facts are written again in this order)."""
    fact_id: str
    feed: str
    topic: str
    payload: bytes
    """The fact as :func:`~hallwatch.contract.encode` wrote it."""


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
        """Facts caused by one message (none for a duplicate or a dead letter).

        Each returned fact was staged (:meth:`FeedStore.stage`) in the transaction that
        committed the state change it reports.
        """
        ...

    def tick(self, now: datetime) -> list[Fact]:
        """Facts due by time alone (waits passing their limit, gauges, day's end).

        Staged like those of :meth:`handle`.
        """
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
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS pending_facts ("
                " seq INTEGER PRIMARY KEY AUTOINCREMENT, fact_id TEXT NOT NULL UNIQUE,"
                " feed TEXT NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL)"
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

    @staticmethod
    def stage(conn: sqlite3.Connection, feed: str, facts: list[Fact]) -> list[Fact]:
        """Stage facts, in order, inside the caller's transaction; returns ``facts``.

        Call it in the transaction that commits the state the facts report, just before
        returning them: if the edge dies before they reach the outbox, the runner writes
        them on its next start (same ids).

        Args:
            conn: The connection of a :meth:`transaction` in progress.
            feed: The feed's name.
            facts: The facts to stage (staging a fact id twice keeps the first).

        Raises:
            RuntimeError: ``conn`` is not inside a transaction.
        """
        if facts and not conn.in_transaction:
            raise RuntimeError("facts are staged inside the transaction that causes them")
        conn.executemany(
            "INSERT OR IGNORE INTO pending_facts (fact_id, feed, topic, payload)"
            " VALUES (?, ?, ?, ?)",
            [(f.id, feed, fact_topic(f.hall, f.kind), encode(f)) for f in facts],
        )
        return facts

    def pending(self) -> list[PendingFact]:
        """Facts staged and not yet written (every feed), oldest first."""
        with self.reading() as conn:
            rows = conn.execute(
                "SELECT seq, fact_id, feed, topic, payload FROM pending_facts ORDER BY seq"
            ).fetchall()
        return [PendingFact(r[0], r[1], r[2], r[3], bytes(r[4])) for r in rows]

    def unstage(self, fact_id: str) -> bool:
        """Forget a staged fact once it is in the outbox; False if it was not staged."""
        with self.transaction() as conn:
            cur = conn.execute("DELETE FROM pending_facts WHERE fact_id = ?", (fact_id,))
        return cur.rowcount > 0

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
