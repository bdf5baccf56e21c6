"""Alembic migrations of the state database (:mod:`aggregator.store.migrate`).

- Migrating an empty database gives exactly the models' schema (Alembic's
  ``compare_metadata`` finds nothing), on SQLite and PostgreSQL, with the partial unique
  indexes' ``WHERE``; ``create_all`` + stamp (in-memory SQLite) gives the same schema.
- A database made by ``create_all`` before migrations existed is stamped and kept; one
  whose schema is not the baseline's is refused with the differences, untouched.
- The packaged ``env.py`` works for Alembic's own commands (downgrade, upgrade, ``--sql``).
"""

from __future__ import annotations

import io
import itertools
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, Table, create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from aggregator.store import migrate
from aggregator.store.migrate import (
    BASELINE_REVISION,
    SchemaMismatchError,
    alembic_config,
    baseline_schema,
    head_revision,
    schema_outline,
    target_metadata,
    upgrade,
)
from aggregator.store.state import Base, StateStore
from tests.support.postgres import Postgres, available, shared_server

_names = itertools.count()
ALERTS = target_metadata().tables["alerts"]


@pytest.fixture(scope="session")
def postgres(request: pytest.FixtureRequest) -> Postgres:
    """The test process's PostgreSQL server."""
    if not available():
        pytest.skip("PostgreSQL is not installed")
    return shared_server(request.config.add_cleanup)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.sqlite'}"
        return
    server: Postgres = request.getfixturevalue("postgres")
    name = f"hw_migrations_{next(_names)}"
    yield server.create_database(name)
    server.drop_database(name)


@pytest.fixture
def engine(empty_db: str) -> Iterator[Engine]:
    made = create_engine(empty_db)
    yield made
    made.dispose()


def diffs(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), target_metadata()))


def revision_of(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return migrate.current_revision(conn)


def index_definitions(engine: Engine) -> dict[str, str]:
    sql = {
        "sqlite": "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL",
        "postgresql": "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    }[engine.dialect.name]
    with engine.connect() as conn:
        return {str(name): str(ddl) for name, ddl in conn.execute(text(sql))}


def table_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


# -- an empty database ---------------------------------------------------------------------


def test_empty_database_migrates_to_exactly_the_models(engine: Engine) -> None:
    outcome = upgrade(engine)
    assert (outcome.before, outcome.after, outcome.stamped) == (None, head_revision(), False)
    assert revision_of(engine) == head_revision()
    assert diffs(engine) == []
    assert table_names(engine) == set(target_metadata().tables) | {"alembic_version"}
    # Alembic does not compare partial-index predicates: check each index's WHERE.
    definitions = index_definitions(engine)
    dialect = engine.dialect.name
    partial = {ix: ix.dialect_options[dialect]["where"] for ix in ALERTS.indexes}
    partial = {ix: where for ix, where in partial.items() if where is not None}
    assert len(partial) == 3
    for ix, where in partial.items():
        ddl = " ".join(definitions[str(ix.name)].replace("(", " ").replace(")", " ").split())
        assert "UNIQUE" in ddl.upper() and "WHERE" in ddl.upper(), ddl
        for word in str(where).replace("'open'", "").split():
            assert word.lower() in ddl.lower(), (word, ddl)


def test_upgrading_again_changes_nothing(engine: Engine) -> None:
    upgrade(engine)
    again = upgrade(engine)
    assert (again.before, again.after, again.stamped) == (head_revision(),) * 2 + (False,)
    assert diffs(engine) == []


def test_in_memory_create_all_and_stamp_gives_the_same_schema(tmp_path: Path) -> None:
    memory = StateStore("sqlite://")
    migrated = create_engine(f"sqlite:///{tmp_path / 'm.sqlite'}")
    try:
        outcome = memory.migrate()
        assert (outcome.before, outcome.after) == (None, head_revision())
        upgrade(migrated)
        with memory.engine.connect() as a, migrated.connect() as b:
            assert schema_outline(a) == schema_outline(b)
            assert migrate.current_revision(a) == head_revision()
        assert diffs(memory.engine) == []
        assert index_definitions(memory.engine) == index_definitions(migrated)
    finally:
        memory.dispose()
        migrated.dispose()


def test_state_store_create_all_migrates(empty_db: str) -> None:
    store = StateStore(empty_db)
    try:
        store.create_all()  # the name its callers use
        assert revision_of(store.engine) == head_revision()
        assert diffs(store.engine) == []
    finally:
        store.dispose()


@pytest.mark.integration
def test_replicas_starting_together_migrate_once(postgres: Postgres) -> None:
    name = f"hw_migrations_{next(_names)}"
    url = postgres.create_database(name)
    outcomes: list[migrate.UpgradeOutcome] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def replica() -> None:
        barrier.wait()
        try:
            outcomes.append(upgrade(url))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=replica) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    postgres.drop_database(name)
    assert errors == []
    assert sorted(o.before or "" for o in outcomes) == ["", head_revision(), head_revision()]


# -- databases from before migrations --------------------------------------------------------


def baseline_tables() -> list[Table]:
    """The tables revision 0001 made: what ``StateStore.create_all`` made before migrations."""
    return [t for name, t in Base.metadata.tables.items() if name in baseline_schema()]


def create_pre_migration_schema(engine: Engine, tables: list[Table] | None = None) -> None:
    """What ``StateStore.create_all`` made before migrations: today's models of those
    tables, with the ledger's ``hall`` index of that time (dropped by revision 0007)."""
    Base.metadata.create_all(engine, tables=baseline_tables() if tables is None else tables)
    with engine.begin() as conn:
        conn.execute(text("CREATE INDEX ix_seen_facts_hall ON seen_facts (hall)"))


def test_pre_migration_database_is_stamped_and_kept(engine: Engine) -> None:
    create_pre_migration_schema(engine)  # create_all before migrations
    t0 = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            ALERTS.insert().values(
                id="A1", hall="h1", kind="off_post", post="w1", state="open", start=t0,
                opened_at=t0, message="离岗",
            )
        )  # fmt: skip
    outcome = upgrade(engine)
    assert (outcome.before, outcome.after, outcome.stamped) == (
        BASELINE_REVISION,
        head_revision(),
        True,
    )
    assert revision_of(engine) == head_revision()
    assert diffs(engine) == []
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id, message FROM alerts")).all() == [("A1", "离岗")]


def test_mismatching_pre_migration_database_is_refused_untouched(engine: Engine) -> None:
    # An older create_all: no evidence table, post_status without evidence_id.
    old = [t for t in baseline_tables() if t.name != "evidence"]
    create_pre_migration_schema(engine, old)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE post_status DROP COLUMN evidence_id"))
    before = schema_outline_of(engine)
    with pytest.raises(SchemaMismatchError) as caught:
        upgrade(engine)
    err = caught.value
    assert "table evidence: missing" in err.differences
    assert "table post_status: missing column evidence_id String(40)" in err.differences
    assert len(err.differences) == 2
    assert "no alembic_version table" in str(err) and "table evidence: missing" in str(err)
    assert schema_outline_of(engine) == before
    assert "alembic_version" not in table_names(engine)


def test_unknown_index_on_a_pre_migration_database_is_a_mismatch(engine: Engine) -> None:
    create_pre_migration_schema(engine)
    with engine.begin() as conn:
        conn.execute(text("CREATE INDEX my_own_index ON alerts (message)"))
    with pytest.raises(SchemaMismatchError, match="unexpected index my_own_index"):
        upgrade(engine)


def test_other_applications_tables_are_ignored(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE someone_elses (id INTEGER PRIMARY KEY)"))
    assert upgrade(engine).stamped is False
    # the only difference with the models: their table (which Alembic would drop)
    assert [(d[0], d[1].name) for d in diffs(engine)] == [("remove_table", "someone_elses")]  # type: ignore[index]
    assert "someone_elses" in table_names(engine)


def schema_outline_of(engine: Engine) -> dict[str, tuple[str, ...]]:
    with engine.connect() as conn:
        return schema_outline(conn)


def test_ledger_rows_are_kept_when_the_ledger_becomes_one_tree(engine: Engine) -> None:
    upgrade(engine, "0006")
    rows = [
        {"id": f"F{i:03d}", "hall": "h1", "kind": "presence", "ts": datetime(2026, 11, 2, 1, i,
         tzinfo=UTC), "received_at": datetime(2026, 11, 2, 2, tzinfo=UTC)}
        for i in range(3)
    ]  # fmt: skip
    ledger = target_metadata().tables["seen_facts"]
    with engine.begin() as conn:
        conn.execute(ledger.insert(), rows)
    assert "ix_seen_facts_hall" in index_definitions(engine)

    upgrade(engine)
    assert "ix_seen_facts_hall" not in index_definitions(engine)
    assert diffs(engine) == []
    with engine.connect() as conn:
        kept = conn.execute(ledger.select().order_by(ledger.c.id)).mappings().all()
        assert [dict(r) for r in kept] == rows
        if engine.dialect.name == "sqlite":
            ddl = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'seen_facts'"))
            assert "WITHOUT ROWID" in ddl.scalar_one()
        with pytest.raises(IntegrityError):  # still the dedup key
            conn.execute(ledger.insert(), rows[:1])

    with engine.begin() as conn:  # and back
        config = alembic_config()
        config.attributes["connection"] = conn
        command.downgrade(config, "0006")
    assert "ix_seen_facts_hall" in index_definitions(engine)
    with engine.connect() as conn:
        kept = conn.execute(ledger.select().order_by(ledger.c.id)).mappings().all()
        assert [dict(r) for r in kept] == rows
        if engine.dialect.name == "sqlite":
            ddl = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'seen_facts'"))
            assert "WITHOUT ROWID" not in ddl.scalar_one()


# -- Alembic's own commands through the packaged env.py ------------------------------------


def test_alembic_commands_downgrade_and_upgrade(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    try:
        upgrade(engine)
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, "base")
        assert table_names(engine) == {"alembic_version"}
        command.upgrade(alembic_config(f"sqlite:///{tmp_path / 'state.sqlite'}"), "head")
        assert revision_of(engine) == head_revision()
        assert diffs(engine) == []
    finally:
        engine.dispose()


def test_offline_sql_for_postgresql_keeps_the_partial_indexes() -> None:
    out = io.StringIO()
    config = alembic_config("postgresql+psycopg://hallwatch@db.invalid/hallwatch")
    config.output_buffer = out
    command.upgrade(config, "head", sql=True)
    sql = " ".join(out.getvalue().split())
    assert (
        "CREATE UNIQUE INDEX alerts_one_open_per_post ON alerts (hall, post, kind) "
        "WHERE state = 'open'" in sql
    )
    assert "jpeg BYTEA NOT NULL" in sql and "start TIMESTAMP WITH TIME ZONE NOT NULL" in sql
    assert f"INSERT INTO alembic_version (version_num) VALUES ('{BASELINE_REVISION}')" in sql
    assert f"SET version_num='{head_revision()}'" in sql


def test_offline_sql_for_sqlite_rebuilds_the_ledger() -> None:
    out = io.StringIO()
    config = alembic_config("sqlite:////nowhere/hallwatch.sqlite")
    config.output_buffer = out
    command.upgrade(config, "head", sql=True)  # batch mode, without a database to reflect
    sql = " ".join(out.getvalue().split())
    assert "DROP INDEX ix_seen_facts_hall" in sql
    assert "CONSTRAINT pk_seen_facts PRIMARY KEY (id) ) WITHOUT ROWID" in sql
    assert "INSERT INTO _alembic_tmp_seen_facts (id, hall, kind, ts, received_at) SELECT" in sql


def test_command_line_upgrade_and_current(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    assert migrate.main(["upgrade", "--url", url]) == 0
    assert migrate.main(["current", "--url", url]) == 0
    assert capsys.readouterr().out.split() == ["empty", "->", head_revision(), head_revision()]
