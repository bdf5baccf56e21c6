"""Statements compiled once per database dialect and run through the driver's executemany.

The ingest writes a batch's rows of two hot statements (the dedup ledger's INSERT, the
posts' repeated presence) hundreds at a time. Through SQLAlchemy's compiled-statement or
ORM path each row costs more Python than the rest of a presence fact's state work;
:class:`DriverStatement` compiles a Core statement once for a dialect and hands its rows
to the DB-API ``executemany`` (``Connection.exec_driver_sql``), with values converted by
the columns' own bind processors (the same conversions SQLAlchemy applies).

On SQLite an INSERT's rows go in multi-row statements (``VALUES (…), (…), …``,
:data:`ROWS_PER_INSERT` at a time) rather than ``executemany``: the driver lets go of
the interpreter lock at every step of a statement, and a step per row let the MQTT
reader thread in hundreds of times a batch. A multi-row statement is as atomic as the
rows' ``executemany`` in the caller's savepoint: a refused row fails it whole.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, cast

from sqlalchemy import Connection, Insert
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement
from sqlalchemy.types import TypeEngine

Converter = Callable[[Any], Any]

ROWS_PER_INSERT = 150
"""Rows per multi-row INSERT on SQLite (a few parameters each: under the 999 of old
SQLite builds)."""


@functools.lru_cache(maxsize=64)
def _multirow_sql(head: str, values: str, rows: int) -> str:
    return f"{head} VALUES {', '.join([values] * rows)}"


def multirow_inserts(
    head: str, values: str, rows: Sequence[Sequence[Any]]
) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """The multi-row INSERTs of ``rows`` (:data:`ROWS_PER_INSERT` at a time), each with
    its parameters in one flat tuple, for a qmark driver (sqlite3).

    Args:
        head: The statement before ``VALUES`` (``INSERT INTO t (a, b)``).
        values: One row's placeholders (``(?, ?)``).
        rows: Each row's values, in the columns' order.

    >>> [(sql, flat) for sql, flat in multirow_inserts("INSERT INTO t (a)", "(?)", [[1], [2]])]
    [('INSERT INTO t (a) VALUES (?), (?)', (1, 2))]
    """
    for first in range(0, len(rows), ROWS_PER_INSERT):
        chunk = rows[first : first + ROWS_PER_INSERT]
        yield _multirow_sql(head, values, len(chunk)), tuple(itertools.chain.from_iterable(chunk))


class DriverStatement:
    """A Core statement as the database driver takes it, for one dialect.

    Args:
        statement: The statement, with bind parameters named ``names``.
        names: The order in which callers give each row's values.
        types: The type of each named value whose bind processor converts it (times).
        dialect: The database dialect (and driver) to compile for.

    Raises:
        RuntimeError: The compiled statement's parameters are not ``names``.

    Example:
        >>> from sqlalchemy import column, insert, table
        >>> from sqlalchemy.dialects import sqlite
        >>> t = table("t", column("a"), column("b"))
        >>> s = DriverStatement(insert(t), ("b", "a"), {}, sqlite.dialect())
        >>> s.sql, s.parameters([("B", "A")])
        ('INSERT INTO t (a, b) VALUES (?, ?)', [('A', 'B')])
    """

    _cache: ClassVar[dict[tuple[str, str], DriverStatement]] = {}

    def __init__(
        self,
        statement: ClauseElement,
        names: Sequence[str],
        types: dict[str, TypeEngine[Any]],
        dialect: Dialect,
    ) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        self.sql = str(compiled)
        self.names = tuple(names)
        self.positional = compiled.positional
        order = tuple(compiled.positiontup or ()) if self.positional else self.names
        found = order if self.positional else tuple(compiled.binds)
        if sorted(found) != sorted(self.names):
            raise RuntimeError(f"statement parameters {found} are not {self.names}")
        self._positions = [self.names.index(name) for name in order]
        self._reorder = self.positional and order != self.names
        self._converters: dict[str, Converter | None] = {
            name: type_.dialect_impl(dialect).bind_processor(dialect)
            for name, type_ in types.items()
        }
        head, values = self.sql, ""
        if isinstance(statement, Insert) and dialect.paramstyle == "qmark":
            head, _, values = self.sql.partition(" VALUES ")
        self._multirow = (head, values) if values.startswith("(") else None

    @classmethod
    def cached(
        cls, key: str, dialect: Dialect, build: Callable[[Dialect], DriverStatement]
    ) -> DriverStatement:
        """The statement ``key`` for ``dialect`` (built by ``build`` once per dialect and
        driver)."""
        cache_key = (key, f"{dialect.name}+{dialect.driver}")
        found = cls._cache.get(cache_key)
        if found is None:
            found = cls._cache[cache_key] = build(dialect)
        return found

    def converter(self, name: str) -> Converter:
        """The bind conversion of the value ``name`` (identity for a type without one)."""
        convert = self._converters.get(name)
        return convert if convert is not None else _identity

    def parameters(self, rows: Sequence[tuple[Any, ...]]) -> list[Any]:
        """The driver's parameters for ``rows`` (values in :attr:`names` order)."""
        if not self.positional:
            return [dict(zip(self.names, row, strict=True)) for row in rows]
        if self._reorder:
            return [tuple(row[i] for i in self._positions) for row in rows]
        return list(rows)

    def execute(self, connection: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        """Run the statement for each row: in one ``executemany``, or (an INSERT on
        SQLite) in multi-row statements."""
        if not rows:
            return
        parameters = self.parameters(rows)
        if self._multirow is None or len(parameters) == 1:
            connection.exec_driver_sql(self.sql, parameters)
            return
        for sql, flat in multirow_inserts(*self._multirow, parameters):
            connection.exec_driver_sql(sql, flat)


def _identity(value: Any) -> Any:
    return value
