"""Every example in docs/protocol.md parses with the contract module."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hallwatch.contract import FactKind, parse_alert, parse_edge_status, parse_fact

DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
EXAMPLES = re.findall(
    r"### Example(?: \(\w+\))?: (.+?)\n\n```json\n(.+?)\n```", DOC.read_text(), re.S
)


def test_doc_has_an_example_of_every_message() -> None:
    kinds = {kind.value for kind in FactKind}
    assert {name for name, _ in EXAMPLES} == kinds | {"edge status", "alert"}


@pytest.mark.parametrize(("name", "text"), EXAMPLES, ids=[n for n, _ in EXAMPLES])
def test_example_parses(name: str, text: str) -> None:
    parse = {"edge status": parse_edge_status, "alert": parse_alert}.get(name, parse_fact)
    message = parse(text)
    assert json.loads(text)["schema"] == message.schema_version == 1
