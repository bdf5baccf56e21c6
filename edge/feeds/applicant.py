"""Applicant keys: a salted HMAC of an ID number, so no ID number is ever kept.

An adapter that receives an ID number (身份证号) replaces it at once with
:func:`applicant_key`; a message that must be dead-lettered or logged first goes through
:func:`mask_id_numbers`, which blanks ID numbers in the raw payload.

Example:
    >>> applicant_key(" 11010519491231002x ", "a-salt-of-16-chars")
    'e73d509b37fbad751bb4fc5b47ec17c4'
    >>> mask_id_numbers(b'{"sfzh": "110105194912310021"}')
    b'{"sfzh": "******************"}'
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any

from pydantic import SecretStr

ID_NUMBER_FIELDS = frozenset(
    {"id_number", "idnumber", "sfzh", "id_card", "idcard", "id_no", "idno", "zjhm", "certno"}
)
"""Field names (lower-cased, as the adapters know them) that hold an ID number."""

_ID_BYTES = re.compile(rb"(?<![0-9])(?:[0-9]{17}[0-9Xx]|[0-9]{15})(?![0-9A-Za-z])")
"""18-digit resident ID numbers (last character may be X) and old 15-digit ones."""

MASK = "*"


def normalise_id_number(id_number: str) -> str:
    """The ID number as it is hashed: every space removed, letters upper-cased."""
    return "".join(id_number.split()).upper()


def applicant_key(id_number: str, salt: SecretStr | str) -> str:
    """The applicant key of an ID number: 32 hex digits of HMAC-SHA256(salt, number).

    Args:
        id_number: The raw ID number (spaces and letter case do not matter).
        salt: The hall's ``queue.applicant_salt``.

    Raises:
        ValueError: The ID number is empty once spaces are removed.
    """
    number = normalise_id_number(id_number)
    if not number:
        raise ValueError("empty ID number")
    secret = salt.get_secret_value() if isinstance(salt, SecretStr) else salt
    digest = hmac.new(secret.encode(), number.encode(), hashlib.sha256).hexdigest()
    return digest[:32]


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return MASK * len(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return MASK * len(str(value))
    return value


def _mask_tree(node: Any) -> tuple[Any, bool]:
    changed = False
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if isinstance(key, str) and key.lower() in ID_NUMBER_FIELDS and value is not None:
                out[key] = _mask_value(value)
                changed = True
            else:
                out[key], sub = _mask_tree(value)
                changed = changed or sub
        return out, changed
    if isinstance(node, list):
        items = [_mask_tree(v) for v in node]
        return [v for v, _ in items], any(c for _, c in items)
    return node, False


def mask_id_numbers(payload: bytes) -> bytes:
    """A raw payload with every ID number blanked (``*``), safe to store or log.

    Values of ID-number fields (``id_number``, ``sfzh``, … at any depth of a JSON
    payload) are masked, and so is anything elsewhere that looks like a resident ID
    number (18 digits, the last possibly X, or 15 digits), JSON or not.
    """
    masked = payload
    try:
        tree = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        tree = None
    if tree is not None:
        new_tree, changed = _mask_tree(tree)
        if changed:
            masked = json.dumps(new_tree, ensure_ascii=False).encode()
    return _ID_BYTES.sub(lambda m: MASK.encode() * len(m.group(0)), masked)
