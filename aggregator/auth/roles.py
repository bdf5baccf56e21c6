"""Roles and the caller of a request.

Example:
    >>> officer = Caller("li", Role.SUPERVISION_OFFICER, frozenset({"h1"}))
    >>> officer.may_see("h1"), officer.may_see("h2")
    (True, False)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """Roles of HallWatch's users."""

    SUPERVISION_OFFICER = "supervision_officer"
    """电子监察 officer: watches halls (all, a region, or listed ones), enters and decides
    anomalies, acknowledges and resolves alerts."""
    HALL_MANAGER = "hall_manager"
    """Hall manager: their own halls; appeals and rectifies anomalies, acknowledges alerts."""
    AUDITOR = "auditor"
    """Reads and exports, changes nothing."""
    ADMIN = "admin"
    """Everything, including users and tokens."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: a name (recorded as the actor of changes), a role, and the halls
    they may see (``None``: every hall, e.g. a provincial supervision officer).

    Attributes:
        name: Username.
        role: Role.
        halls: Visible hall ids (None: all).
        token_id: The token the request came with (None: not a token, e.g. the CLI).
    """

    name: str
    role: Role
    halls: frozenset[str] | None = None
    token_id: str | None = None

    def may_see(self, hall: str) -> bool:
        """Whether this caller may see (and act on) a hall."""
        return self.halls is None or hall in self.halls
