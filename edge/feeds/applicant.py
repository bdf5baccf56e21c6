"""Applicant keys: a salted HMAC of an ID number, so no ID number is ever kept.

An adapter that receives an ID number (身份证号) replaces it at once with
:func:`applicant_key`. Every dead letter goes through :func:`mask_id_numbers` (in
:meth:`edge.feeds.base.FeedStore.dead_letter`), which blanks ID numbers in the raw payload.

Example:
    >>> applicant_key(" 11010519491231002x ", "a-salt-of-16-chars")
    'e73d509b37fbad751bb4fc5b47ec17c4'
    >>> mask_id_numbers(b'{"sfzh": "110105194912310021"}')
    b'{"sfzh": "******************"}'
"""

from __future__ import annotations

import hashlib
import hmac

from pydantic import SecretStr

from hallwatch.privacy import ID_NUMBER_FIELDS as ID_NUMBER_FIELDS
from hallwatch.privacy import MASK as MASK
from hallwatch.privacy import mask_id_numbers as mask_id_numbers
from hallwatch.privacy import mask_id_numbers_text as mask_id_numbers_text


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
