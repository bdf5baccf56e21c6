"""Shared types of query parameters, bounded so no input reaches the stores unchecked.

``ApiTime``: a datetime between 2000 and 2100 (naive means UTC). Years outside that range
cannot be converted between time zones or stored by every database, and no hall has data
there; they are refused with a 422 naming the parameter.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
MAX_OFFSET = 10_000_000
"""Largest ``offset`` of a paged list."""


def _supported_time(value: datetime) -> datetime:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if not EARLIEST <= aware < LATEST:
        raise ValueError("must be between 2000-01-01 and 2100-01-01")
    return value


ApiTime = Annotated[datetime, AfterValidator(_supported_time)]
"""A datetime query parameter within the years HallWatch stores."""
