"""``hallwatch users …``: add users, set passwords, issue and revoke tokens, from a shell
on the aggregator's host (settings from the same ``HALLWATCH_*`` variables).

Passwords are read from standard input (``--password-stdin``) or asked for without echo;
never taken as an argument, where ``ps`` and shell history would keep them. A token's
secret is printed once.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aggregator.auth.users import UserStore


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``users`` command and its subcommands to the CLI."""
    users = sub.add_parser("users", help="Users, passwords and API tokens.")
    users.add_argument("--hall", action="append", help="Hall YAML file (repeatable).")
    cmds = users.add_subparsers(dest="users_command", required=True)

    add = cmds.add_parser("add", help="Add a user.")
    add.add_argument("username")
    add.add_argument(
        "--role", required=True,
        choices=["supervision_officer", "hall_manager", "auditor", "admin"],
    )  # fmt: skip
    add.add_argument("--name", help="Display name.")
    add.add_argument("--scope-hall", action="append", default=[], help="A hall they see.")
    add.add_argument("--region", action="append", default=[], help="A 行政区划代码 prefix.")
    add.add_argument("--password-stdin", action="store_true", help="Read the password from stdin.")
    add.add_argument("--no-password", action="store_true", help="Token-only machine client.")
    add.set_defaults(func=_add)

    passwd = cmds.add_parser("passwd", help="Set a user's password.")
    passwd.add_argument("username")
    passwd.add_argument("--password-stdin", action="store_true")
    passwd.set_defaults(func=_passwd)

    token = cmds.add_parser("token", help="Issue an API token (printed once).")
    token.add_argument("username")
    token.add_argument("--name", required=True, help="What the token is for.")
    token.add_argument("--days", type=float, help="Expires after this many days (default never).")
    token.set_defaults(func=_token)

    revoke = cmds.add_parser("revoke", help="Revoke a token by id.")
    revoke.add_argument("token_id")
    revoke.set_defaults(func=_revoke)

    for name, value in (("disable", True), ("enable", False)):
        cmd = cmds.add_parser(name, help=f"{name.capitalize()} a user.")
        cmd.add_argument("username")
        cmd.set_defaults(func=_disable, disabled=value)

    listing = cmds.add_parser("list", help="List users.")
    listing.set_defaults(func=_list)


@contextmanager
def _store(args: argparse.Namespace) -> Iterator[UserStore]:
    from aggregator.auth.users import UserStore
    from aggregator.service import load_halls
    from aggregator.settings import settings_for
    from aggregator.store.state import StateStore

    settings = settings_for(args.hall)
    state = StateStore(settings.database_url)
    state.migrate()
    try:
        yield UserStore(state, load_halls(settings.halls))
    finally:
        state.dispose()


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise SystemExit("hallwatch users: the passwords differ")
    return first


def _run(args: argparse.Namespace, action: Callable[[UserStore], object]) -> int:
    from aggregator.auth.users import UserError

    try:
        with _store(args) as users:
            action(users)
    except UserError as exc:
        print(f"hallwatch users: {exc}", file=sys.stderr)
        return 2
    return 0


def _add(args: argparse.Namespace) -> int:
    from aggregator.auth.roles import Role

    password = None if args.no_password else _password(args)

    def act(users: UserStore) -> None:
        info = users.add(
            args.username, role=Role(args.role), halls=args.scope_hall, regions=args.region,
            password=password, display_name=args.name, actor=getpass.getuser(),
        )  # fmt: skip
        print(f"added {info.username} ({info.role.value})")

    return _run(args, act)


def _passwd(args: argparse.Namespace) -> int:
    password = _password(args)
    return _run(args, lambda users: users.set_password(
        args.username, password, actor=getpass.getuser()))  # fmt: skip


def _token(args: argparse.Namespace) -> int:
    from hallwatch.contract import utcnow

    expires = utcnow() + timedelta(days=args.days) if args.days else None

    def act(users: UserStore) -> None:
        issued = users.issue_token(
            args.username, args.name, expires_at=expires, actor=getpass.getuser()
        )
        print(f"token {issued.id} for {args.username} (shown once):", file=sys.stderr)
        print(issued.secret)

    return _run(args, act)


def _revoke(args: argparse.Namespace) -> int:
    def act(users: UserStore) -> None:
        if not users.revoke(args.token_id, actor=getpass.getuser()):
            raise SystemExit(f"hallwatch users: no valid token {args.token_id}")

    return _run(args, act)


def _disable(args: argparse.Namespace) -> int:
    return _run(args, lambda users: users.set_disabled(
        args.username, args.disabled, actor=getpass.getuser()))  # fmt: skip


def _list(args: argparse.Namespace) -> int:
    def act(users: UserStore) -> None:
        for u in users.all():
            scope = ",".join(u.halls + tuple(f"region:{r}" for r in u.regions)) or "all halls"
            flag = " (disabled)" if u.disabled else ""
            print(f"{u.username}\t{u.role.value}\t{scope}{flag}")

    return _run(args, act)
