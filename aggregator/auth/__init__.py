"""Users, roles, passwords and tokens: who may see which hall and do what.

- :mod:`aggregator.auth.passwords` — Argon2id hashing (argon2-cffi) and the strength rule;
- :mod:`aggregator.auth.models` — the ``users``, ``api_tokens`` and ``auth_events`` tables;
- :mod:`aggregator.auth.users` — :class:`~aggregator.auth.users.UserStore`: users, login,
  tokens (API, machine and dashboard-session tokens, stored as SHA-256 only), and the
  :class:`~aggregator.api.deps.Caller` a token stands for.
"""
