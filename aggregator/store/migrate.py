"""Schema migrations of the state database (Alembic, kept inside the package).

:func:`upgrade` brings a database to the newest schema (Alembic's *head*) from Python: no
``alembic.ini``, no working directory. The revisions live in
``aggregator/store/migrations/versions``; :data:`~aggregator.store.state.Base`'s metadata
(every table: state, evidence, the 异常办件 register) is their target.

A database created before migrations existed (``create_all``: the tables are there, no
``alembic_version``) is *stamped* at the first revision, then upgraded, but only if its
tables, columns, keys and indexes are those of revision ``0001``; otherwise
:class:`SchemaMismatchError` says what differs and nothing is changed.

On PostgreSQL the upgrade runs in one transaction under an advisory lock, so replicas
starting together migrate once; on SQLite it runs in one transaction too.

A new revision, after changing the models (review it: autogenerate misses renames and
partial-index predicates)::

    python -m aggregator.store.migrate revision -m "alerts.level" --url sqlite:///tmp/x.db

Example:
    >>> upgrade("sqlite://").after == head_revision()
    True
"""

from __future__ import annotations

import argparse
import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, create_engine, inspect, text

# Imported for their tables, which join Base.metadata: the 异常办件 register, the evidence.
import aggregator.auth.models
import aggregator.cases.models
import aggregator.export.audit
import aggregator.notify.records
import aggregator.reports.daily_data
import aggregator.reports.runs
import aggregator.store.evidence  # noqa: F401
from aggregator.store.state import Base

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
"""The Alembic environment: ``env.py``, ``script.py.mako``, ``versions/``."""

BASELINE_REVISION = "0001"
"""The revision whose schema a pre-migration (``create_all``) database must have."""

VERSION_TABLE = "alembic_version"

_PG_LOCK_KEY = 0x48414C4C  # "HALL": one advisory lock for every hallwatch upgrade


class SchemaMismatchError(RuntimeError):
    """A database without migration history whose tables are not revision 0001's.

    Attributes:
        differences: What differs, one line each.
    """

    def __init__(self, url: str, differences: list[str]) -> None:
        self.differences = differences
        shown = "\n  ".join(differences[:40])
        more = f"\n  … and {len(differences) - 40} more" if len(differences) > 40 else ""
        super().__init__(
            f"{url} has hallwatch tables but no {VERSION_TABLE} table, and they are not the "
            f"schema of revision {BASELINE_REVISION}, so it cannot be stamped and migrated. "
            f"Differences:\n  {shown}{more}\nBring it to that schema by hand, or export its "
            "data and start from an empty database."
        )


@dataclass(frozen=True)
class UpgradeOutcome:
    """What :func:`upgrade` did.

    Attributes:
        before: Revision before (None: no migration history).
        after: Revision after.
        stamped: A pre-migration database was stamped at the baseline first.
    """

    before: str | None
    after: str
    stamped: bool = False


def target_metadata() -> MetaData:
    """The schema the migrations produce: every table on ``Base``."""
    return Base.metadata


def configure_options(dialect_name: str) -> dict[str, Any]:
    """Options for ``EnvironmentContext.configure`` (shared with ``env.py``).

    SQLite cannot ``ALTER`` most things: its operations run in batch mode (copy and swap).
    """
    return {
        "target_metadata": target_metadata(),
        "render_as_batch": dialect_name == "sqlite",
        "compare_type": True,
        "version_table": VERSION_TABLE,
    }


def alembic_config(url: str | None = None) -> Config:
    """An in-memory Alembic config pointing at the packaged migrations.

    Args:
        url: Database URL for commands that connect on their own (``revision``).
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@functools.cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest revision.

    >>> head_revision() >= BASELINE_REVISION
    True
    """
    head = _scripts().get_current_head()
    if head is None:  # pragma: no cover - the package ships its revisions
        raise RuntimeError(f"no migrations in {MIGRATIONS_DIR}")
    return head


def current_revision(connection: Connection) -> str | None:
    """The database's revision (None: no migration history)."""
    return MigrationContext.configure(
        connection, opts={"version_table": VERSION_TABLE}
    ).get_current_revision()


def upgrade(
    target: str | Engine, revision: str = "head", *, create_fresh: bool = False
) -> UpgradeOutcome:
    """Migrate a database to ``revision`` (default: the newest), in one transaction.

    Args:
        target: A SQLAlchemy URL, or an engine (an in-memory SQLite database must be given
            as the engine that holds it).
        revision: Target revision.
        create_fresh: An empty database gets ``Base.metadata.create_all`` and is stamped at
            head, instead of running every revision (about half the time; the tests check
            both give the same schema). For throwaway in-memory databases.

    Returns:
        The revisions before and after.

    Raises:
        SchemaMismatchError: The database has hallwatch tables, no migration history,
            and not the baseline schema.
    """
    with _engine(target) as engine, engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        before = current_revision(conn)
        stamped = False
        if before is None and create_fresh and revision == "head" and not _hallwatch_tables(conn):
            target_metadata().create_all(conn)
            _run(conn, revision, stamp=True)
            return UpgradeOutcome(before=None, after=head_revision())
        if before is None and _hallwatch_tables(conn):
            differences = legacy_differences(conn)
            if differences:
                raise SchemaMismatchError(_safe_url(engine), differences)
            _run(conn, BASELINE_REVISION, stamp=True)
            before, stamped = BASELINE_REVISION, True
            logger.info("pre-migration database stamped at revision %s", BASELINE_REVISION)
        _run(conn, revision)
        after = current_revision(conn) or ""
    if after != before:
        logger.info("state database migrated from %s to %s", before or "empty", after)
    return UpgradeOutcome(before=before, after=after, stamped=stamped)


def stamp(target: str | Engine, revision: str = "head") -> None:
    """Record ``revision`` as applied without running anything (a schema made otherwise)."""
    with _engine(target) as engine, engine.begin() as conn:
        _run(conn, revision, stamp=True)


def _run(conn: Connection, revision: str, *, stamp: bool = False) -> None:
    """Run (or only record) the migrations to ``revision`` on an open transaction."""
    script = _scripts()

    def steps(rev: Any, _context: Any) -> Any:
        if stamp:
            return script._stamp_revs(revision, rev)
        return script._upgrade_revs(revision, rev)

    config = alembic_config()
    with EnvironmentContext(config, script, fn=steps, destination_rev=revision) as env:
        env.configure(connection=conn, **configure_options(conn.dialect.name))
        with env.begin_transaction():
            env.run_migrations()


@contextmanager
def _engine(target: str | Engine) -> Iterator[Engine]:
    if isinstance(target, Engine):
        yield target
        return
    engine = create_engine(target)
    try:
        yield engine
    finally:
        engine.dispose()


def _safe_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


# -- the pre-migration check ----------------------------------------------------------------


def _hallwatch_tables(conn: Connection) -> set[str]:
    known = set(target_metadata().tables) | set(baseline_schema())
    return known & set(inspect(conn).get_table_names())


@functools.cache
def baseline_schema() -> dict[str, tuple[str, ...]]:
    """Tables, columns, keys and indexes of revision 0001, as :func:`schema_outline` gives.

    Built once per process by running the baseline on a scratch in-memory SQLite database.
    """
    engine = create_engine("sqlite://")
    try:
        with engine.begin() as conn:
            _run(conn, BASELINE_REVISION)
            return schema_outline(conn)
    finally:
        engine.dispose()


def schema_outline(conn: Connection) -> dict[str, tuple[str, ...]]:
    """A dialect-neutral outline of each table: one sorted line per column, key and index.

    Column types are reduced to their family (``String(64)``, ``DateTime``, ``Float`` …),
    so that SQLite and PostgreSQL outlines of one schema are equal. Partial-index
    predicates are not compared.
    """
    insp = inspect(conn)
    outline: dict[str, tuple[str, ...]] = {}
    for table in insp.get_table_names():
        if table == VERSION_TABLE:
            continue
        lines = [
            f"column {c['name']} {_family(c['type'])}{'' if c['nullable'] else ' NOT NULL'}"
            for c in insp.get_columns(table)
        ]
        pk = insp.get_pk_constraint(table).get("constrained_columns") or []
        lines.append(f"primary key ({', '.join(pk)})")
        for ix in insp.get_indexes(table):
            if ix.get("duplicates_constraint"):
                continue
            unique = "unique " if ix.get("unique") else ""
            columns = ", ".join(str(c) for c in ix["column_names"])
            lines.append(f"{unique}index {ix['name']} ({columns})")
        for uq in insp.get_unique_constraints(table):
            lines.append(f"unique ({', '.join(uq['column_names'])})")
        for fk in insp.get_foreign_keys(table):
            cols, ref = ", ".join(fk["constrained_columns"]), fk["referred_table"]
            lines.append(f"foreign key ({cols}) -> {ref} ({', '.join(fk['referred_columns'])})")
        outline[table] = tuple(sorted(lines))
    return outline


def _family(type_: Any) -> str:
    affinity = getattr(type_, "_type_affinity", None) or type(type_)
    name = str(affinity.__name__).lstrip("_")
    length = getattr(type_, "length", None)
    if name == "String" and length:
        return f"String({length})"
    return {"Binary": "LargeBinary", "Double": "Float", "Numeric": "Float"}.get(name, name)


def legacy_differences(conn: Connection) -> list[str]:
    """How a database's hallwatch tables differ from revision 0001 (empty: they match)."""
    expected = baseline_schema()
    actual = schema_outline(conn)
    ours = set(expected) | set(target_metadata().tables)
    out: list[str] = []
    for table in sorted(ours):
        if table not in actual:
            if table in expected:
                out.append(f"table {table}: missing")
            continue
        if table not in expected:
            out.append(f"table {table}: not in revision {BASELINE_REVISION}")
            continue
        have, want = set(actual[table]), set(expected[table])
        out.extend(f"table {table}: missing {line}" for line in sorted(want - have))
        out.extend(f"table {table}: unexpected {line}" for line in sorted(have - want))
    return out


# -- command line -------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``python -m aggregator.store.migrate {upgrade,current,revision}``."""
    parser = argparse.ArgumentParser(prog="python -m aggregator.store.migrate")
    parser.add_argument("action", choices=["upgrade", "current", "revision"])
    parser.add_argument("--url", required=True, help="SQLAlchemy URL of the state database")
    parser.add_argument("-m", "--message", default="", help="revision: its title")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.action == "upgrade":
        outcome = upgrade(args.url)
        print(f"{outcome.before or 'empty'} -> {outcome.after}")
    elif args.action == "current":
        with _engine(args.url) as engine, engine.connect() as conn:
            print(current_revision(conn) or "none")
    else:
        upgrade(args.url)  # autogenerate compares against an up-to-date database
        command.revision(alembic_config(args.url), message=args.message, autogenerate=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
