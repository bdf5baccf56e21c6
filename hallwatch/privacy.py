"""Personal data that must never be kept: resident ID numbers (身份证号).

Shared by the edge (raw device messages before they are dead-lettered or logged) and the
aggregator (officers' free text, dead letters): :func:`mask_id_numbers` blanks ID numbers
in a raw payload, :func:`mask_id_numbers_text` in a string.

Example:
    >>> mask_id_numbers(b'{"sfzh": "110105194912310021"}')
    b'{"sfzh": "******************"}'
    >>> mask_id_numbers_text("投诉人 110105-19491231-0021 反映")
    '投诉人 ******************** 反映'
"""

from __future__ import annotations

import json
import re
from typing import Any

ID_NUMBER_FIELDS = frozenset(
    {
        "id_number", "idnumber", "sfzh", "sfzhm", "id_card", "idcard", "id_no", "idno",
        "zjh", "zjhm", "certno", "cardno", "certificateno", "certificate_no", "identity",
        "identityno", "identity_no",
    }
)  # fmt: skip
"""Field names (lower-cased) that hold an ID number."""

_SEP = r"[ \t-]?"
_ID_TEXT = re.compile(
    r"(?<![0-9])(?:[0-9]{6}" + _SEP + r"[0-9]{8}" + _SEP + r"[0-9]{3}[0-9Xx]"
    r"|[0-9]{6}" + _SEP + r"[0-9]{6}" + _SEP + r"[0-9]{3})(?![0-9])"
)
"""18-digit resident ID numbers (last character may be X) and old 15-digit ones, also
written in groups (6-8-4 or 6-6-3) separated by a space or hyphen."""
_ID_BYTES = re.compile(_ID_TEXT.pattern.encode())

MASK = "*"


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


def mask_id_numbers_text(text: str) -> str:
    """``text`` with everything that looks like a resident ID number blanked (``*``)."""
    return _ID_TEXT.sub(lambda m: MASK * len(m.group(0)), text)
