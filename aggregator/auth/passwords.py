"""Password hashing (Argon2id, argon2-cffi) and the strength rule for new passwords.

Example:
    >>> stored = hash_password("correct horse battery")
    >>> verify_password(stored, "correct horse battery"), verify_password(stored, "guess")
    (True, False)
    >>> weak_password_reason("hallwatch123")
    'a well-known default password'
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 12
"""Shortest password accepted for a new user."""

WELL_KNOWN = frozenset(
    {
        "admin", "admin123", "administrator", "changeme", "changethis", "default", "demo",
        "hallwatch", "hallwatch123", "letmein", "password", "password123", "qwerty123456",
        "secret", "12345678", "123456789012", "000000000000", "111111111111", "admin@123",
        "p@ssw0rd", "passw0rd", "welcome123",
    }
)  # fmt: skip
"""Passwords (and secrets) refused whatever their length: defaults and the usual first
guesses, compared case-insensitively."""

_hasher = PasswordHasher()  # argon2-cffi's defaults: Argon2id, RFC 9106 low-memory profile
_DUMMY = _hasher.hash("no user has this password: it keeps a miss as slow as a hit")


def hash_password(password: str) -> str:
    """The Argon2id hash of ``password`` (salted; PHC string format)."""
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored``.

    A missing hash (a machine user, or an unknown user) costs as much as a mismatch, so
    the answer's timing does not say whether the user exists.
    """
    try:
        return _hasher.verify(stored or _DUMMY, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(stored)


def weak_password_reason(password: str) -> str | None:
    """Why ``password`` may not be used (None: it may)."""
    if password.strip().lower() in WELL_KNOWN:
        return "a well-known default password"
    if len(password) < MIN_LENGTH:
        return f"shorter than {MIN_LENGTH} characters"
    if len(set(password)) < 5:
        return "too few different characters"
    return None
