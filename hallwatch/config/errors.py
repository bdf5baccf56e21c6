"""Validation-error helpers of the hall config models, and their common base model.

Validators that find several problems below the value they check raise
:class:`LocatedValueError`, which carries a location relative to that value for each
problem; :mod:`hallwatch.config.loader` turns those into one issue each, with the right
YAML line. :func:`mask_url` keeps credentials out of error messages, logs and dumps.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict

_SECRET_QUERY_KEYS = frozenset({"password", "passwd", "pwd", "pass", "token", "key"})

Loc = tuple[str | int, ...]


def format_field_path(loc: Loc) -> str:
    """Render a location tuple as a field path.

    >>> format_field_path(("posts", 2, "polygon", 3))
    'posts[2].polygon[3]'
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class LocatedValueError(ValueError):
    """Several validation problems, each at a location below the validated value.

    Attributes:
        problems: ``(relative location, message)`` pairs.
    """

    def __init__(self, problems: list[tuple[Loc, str]]) -> None:
        self.problems = problems
        super().__init__(
            "; ".join(f"{format_field_path(loc) or '.'}: {msg}" for loc, msg in problems)
        )


def _raise_if(problems: list[tuple[Loc, str]]) -> None:
    if problems:
        raise LocatedValueError(problems)


def require_unique_ids(items: list[Any], what: str = "id") -> None:
    """Raise one problem per item whose ``id`` repeats an earlier item's.

    Raises:
        LocatedValueError: ``[i].id: duplicate <what> 'x' (first at index j)`` for each.
    """
    first: dict[str, int] = {}
    problems: list[tuple[Loc, str]] = []
    for i, item in enumerate(items):
        if item.id in first:
            msg = f"duplicate {what} {item.id!r} (first at index {first[item.id]})"
            problems.append(((i, "id"), msg))
        else:
            first[item.id] = i
    _raise_if(problems)


def mask_url(url: str) -> str:
    """Return ``url`` with the password of its user info and secret query values masked.

    >>> mask_url("rtsp://admin:s3cret@10.0.0.5:554/stream1")
    'rtsp://admin:***@10.0.0.5:554/stream1'
    """
    if "://" not in url:
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_QUERY_KEYS for k, _ in pairs):
            masked = [(k, "***" if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in pairs]
            query = urlencode(masked, safe="*${}")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


# Base of every config model: unknown keys are errors, inputs (secrets) stay out of them.
class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
