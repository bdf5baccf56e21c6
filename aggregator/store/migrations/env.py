"""Alembic's entry point, for the ``alembic`` command and :func:`alembic.command` calls.

:func:`aggregator.store.migrate.upgrade` does not load this file (it configures the same
options itself); ``python -m aggregator.store.migrate revision`` does. The connection is
taken from ``config.attributes["connection"]`` when given, else made from the
``sqlalchemy.url`` option; ``--sql`` (offline) mode renders the SQL for that URL.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, make_url

from aggregator.store.migrate import configure_options

config = context.config


def _migrate(connection: Connection) -> None:
    context.configure(connection=connection, **configure_options(connection.dialect.name))
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    """Render the migrations as SQL for the configured URL."""
    url = config.get_main_option("sqlalchemy.url") or "sqlite://"
    dialect = make_url(url).get_backend_name()
    context.configure(url=url, literal_binds=True, **configure_options(dialect))
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Run the migrations on the given connection, or on one to the configured URL."""
    given = config.attributes.get("connection")
    if given is not None:
        _migrate(given)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite://")
    try:
        with engine.begin() as connection:
            _migrate(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
