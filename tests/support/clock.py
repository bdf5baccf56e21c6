"""A settable clock for the code under test that takes a ``clock`` callable."""

from __future__ import annotations

from datetime import datetime


class SettableClock:
    """Answers ``now`` until a test moves it.

    >>> from datetime import UTC
    >>> clock = SettableClock(datetime(2026, 11, 2, tzinfo=UTC))
    >>> clock.now = datetime(2026, 11, 3, tzinfo=UTC)
    >>> clock().day
    3
    """

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now
