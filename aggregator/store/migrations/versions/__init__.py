"""Revisions of the state database's schema, oldest first (``0001`` is the baseline)."""
