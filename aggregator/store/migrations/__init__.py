"""The Alembic environment of the state database (see :mod:`aggregator.store.migrate`)."""
