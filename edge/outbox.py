"""The durable local outbox: every fact is written here before it is published.

SQLite in WAL mode. A fact is appended (and committed) before anything tries to publish
it; it is deleted only once the broker has acknowledged it (QoS 1 PUBACK). After a broker
outage or an edge crash the pending facts replay in the order they were appended. The
aggregator drops duplicates by fact id, so a fact published twice (acknowledgement lost
in a crash) is stored once.

Example:
    >>> import tempfile, pathlib
    >>> box = Outbox(pathlib.Path(tempfile.mkdtemp()) / "outbox.sqlite")
    >>> box.append("id-1", "hallwatch/v1/h1/facts/presence", b"{}")
    1
    >>> [m.fact_id for m in box.pending()]
    ['id-1']
    >>> box.acknowledge([1]); box.depth()
    0
    >>> box.close()
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    fact_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    retain INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL DEFAULT (julianday('now'))
)
"""


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One pending message, in append order (``seq``)."""

    seq: int
    fact_id: str
    topic: str
    payload: bytes
    retain: bool


class Outbox:
    """A thread-safe, crash-safe FIFO of messages waiting for the broker's acknowledgement.

    Args:
        path: SQLite file; its folder is created.
        synchronous: SQLite ``synchronous`` level. ``NORMAL`` (default) survives a crash of
            the edge process (SIGKILL); ``FULL`` also survives a power cut, at a cost.
    """

    def __init__(self, path: Path, *, synchronous: str = "NORMAL") -> None:
        if synchronous not in {"NORMAL", "FULL"}:
            raise ValueError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.execute(_SCHEMA)
        self._new_message = threading.Condition(self._lock)
        depth = self.depth()
        if depth:
            logger.info(
                "outbox %s holds %d unacknowledged messages; they replay first", path, depth
            )

    def append(self, fact_id: str, topic: str, payload: bytes, *, retain: bool = False) -> int:
        """Store one message durably and return its sequence number.

        Appending a ``fact_id`` already present is a no-op that returns the existing seq.
        """
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO outbox (fact_id, topic, payload, retain) VALUES (?,?,?,?)",
                (fact_id, topic, payload, int(retain)),
            )
            if cur.rowcount == 0:
                row = self._db.execute(
                    "SELECT seq FROM outbox WHERE fact_id = ?", (fact_id,)
                ).fetchone()
                return int(row[0])
            self._new_message.notify_all()
            return int(cur.lastrowid or 0)

    def pending(self, *, after_seq: int = 0, limit: int = 100) -> list[OutboxMessage]:
        """Messages not yet acknowledged with ``seq > after_seq``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, fact_id, topic, payload, retain FROM outbox WHERE seq > ? "
                "ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        return [OutboxMessage(r[0], r[1], r[2], bytes(r[3]), bool(r[4])) for r in rows]

    def wait_for_message(self, *, after_seq: int, timeout: float) -> bool:
        """Block until a message with ``seq > after_seq`` exists, or ``timeout`` passes."""
        with self._new_message:
            return self._new_message.wait_for(
                lambda: (
                    self._db.execute(
                        "SELECT 1 FROM outbox WHERE seq > ? LIMIT 1", (after_seq,)
                    ).fetchone()
                    is not None
                ),
                timeout=timeout,
            )

    def acknowledge(self, seqs: Iterable[int]) -> None:
        """Forget messages the broker has acknowledged."""
        batch = [(s,) for s in seqs]
        if not batch:
            return
        with self._lock:
            self._db.executemany("DELETE FROM outbox WHERE seq = ?", batch)

    def depth(self) -> int:
        """How many messages wait for an acknowledgement."""
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
