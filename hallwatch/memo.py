"""A bounded memo: a pure function's answers remembered per key, forgotten all at once
when full.

For lookups asked again and again with few distinct keys (a hall's topics, the dates a
supervision clock spans): the national holiday calendar, a hall's hours of a date, what a
topic names. The bound keeps a stream of distinct keys from growing it without end.

Example:
    >>> squares = BoundedMemo(lambda n: n * n, limit=2)
    >>> squares(3), squares(3), len(squares), 3 in squares
    (9, 9, 1, True)
    >>> squares(4), squares(5), len(squares)  # full at the third key: emptied first
    (16, 25, 1)
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedMemo(Generic[K, V]):
    """``compute(key)``, remembered per key; emptied when ``limit`` keys are held.

    Answers may be None. Safe to share between threads: a key is read in one step, and
    two threads asking for a new key at once both compute it (the function is pure).

    Args:
        compute: The function remembered (pure: same key, same answer).
        limit: Keys held at most.
    """

    def __init__(self, compute: Callable[[K], V], limit: int) -> None:
        self._compute = compute
        self._limit = limit
        self._known: dict[K, V] = {}

    def __call__(self, key: K) -> V:
        """The answer for ``key`` (computed now if it is not held)."""
        try:
            return self._known[key]
        except KeyError:
            pass
        if len(self._known) >= self._limit:
            self._known.clear()
        value = self._known[key] = self._compute(key)
        return value

    def __len__(self) -> int:
        return len(self._known)

    def __contains__(self, key: object) -> bool:
        return key in self._known
