"""Columns of exports: a name and a value kind, and their Arrow schema.

Example:
    >>> arrow_schema([Column("time"), Column("on_post", "float")]).types
    [DataType(string), DataType(double)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

ColumnKind = Literal["str", "int", "float", "bool"]

ARROW_TYPES: dict[str, pa.DataType] = {
    "str": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
}
"""The Arrow (Parquet) type of each column kind."""


@dataclass(frozen=True, slots=True)
class Column:
    """A column of an export: name and value kind (Parquet type)."""

    name: str
    kind: ColumnKind = "str"


def arrow_schema(columns: Sequence[Column]) -> pa.Schema:
    """The Arrow schema of an export's columns (what Parquet files and batches carry)."""
    return pa.schema([(c.name, ARROW_TYPES[c.kind]) for c in columns])
