"""A real PostgreSQL server for the state tests, on a free loopback port.

The server is a throwaway cluster in a temp folder (``initdb``, then ``pg_ctl start``),
with its unix socket in that folder too, durability switched off (tests only) and trust
authentication on loopback. PostgreSQL refuses to run as root: as root, the cluster
belongs to an unprivileged user (``postgres`` where it exists, else ``nobody``) and every
server command runs as that user through ``runuser`` (or ``su``).

Set ``HALLWATCH_TEST_POSTGRES_URL`` (e.g. ``postgresql+psycopg://me:pw@127.0.0.1:5432/postgres``,
a role that may create databases) to use a running server instead.

Example:
    >>> with Postgres() as server:  # doctest: +SKIP
    ...     url = server.create_database("hw_demo")
"""

from __future__ import annotations

import logging
import os
import pwd
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

from hallwatch.broker import free_port

logger = logging.getLogger(__name__)

URL_ENV = "HALLWATCH_TEST_POSTGRES_URL"
"""Environment variable naming an existing server to use instead of starting one."""

BIN_CANDIDATES = tuple(f"/usr/lib/postgresql/{v}/bin" for v in range(18, 12, -1))

_FAST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "100",
    "shared_buffers": "32MB",
    "log_min_messages": "warning",
}
"""Throwaway-cluster settings: nothing here needs to survive a crash."""

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def find_postgres_bin() -> Path | None:
    """Folder of ``initdb``/``pg_ctl``/``postgres``, or None if PostgreSQL is not installed."""
    for folder in BIN_CANDIDATES:
        if os.access(Path(folder) / "pg_ctl", os.X_OK):
            return Path(folder)
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


def _unprivileged_user() -> str:
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL")


class Postgres:
    """One throwaway PostgreSQL cluster (or an existing server named by ``URL_ENV``).

    Args:
        port: Loopback port; None picks a free one.
        bin_dir: Folder of the server binaries (default: found on the system).
    """

    host = "127.0.0.1"

    def __init__(self, port: int | None = None, *, bin_dir: Path | None = None) -> None:
        self.external: URL | None = (
            make_url(os.environ[URL_ENV]) if os.environ.get(URL_ENV) else None
        )
        self.port = port if port is not None else free_port(self.host)
        self.bin_dir = bin_dir or find_postgres_bin()
        self.dir = Path(tempfile.mkdtemp(prefix="hallwatch-postgres-"))
        self.data = self.dir / "data"
        self.log_path = self.dir / "postgres.log"
        self.user: str | None = _unprivileged_user() if os.geteuid() == 0 else None
        self.started = False

    # -- the server ------------------------------------------------------------------------

    def _command(self, program: str, *args: str) -> list[str]:
        if self.bin_dir is None:
            raise FileNotFoundError("PostgreSQL is not installed (no pg_ctl found)")
        argv = [str(self.bin_dir / program), *args]
        if self.user is None:
            return argv
        if shutil.which("runuser"):
            return ["runuser", "-u", self.user, "--", *argv]
        return ["su", self.user, "-s", "/bin/sh", "-c", shlex.join(argv)]

    def _run(self, program: str, *args: str, timeout: float = 60) -> None:
        proc = subprocess.run(
            self._command(program, *args), capture_output=True, text=True, timeout=timeout
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"{program} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
                f"{self.log_text()}"
            )

    def start(self, timeout: float = 60) -> None:
        """Create the cluster and start the server (waits until it accepts connections).

        Raises:
            RuntimeError: ``initdb`` or the server failed (their output is in the message).
        """
        if self.started or self.external is not None:
            self.started = True
            return
        if self.user is not None:
            shutil.chown(self.dir, user=self.user)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--no-sync", "--locale=C")  # fmt: skip
        options = " ".join(
            [f"-p {self.port}", f"-k {self.dir}", f"-c listen_addresses={self.host}"]
            + [f"-c {k}={v}" for k, v in _FAST_SETTINGS.items()]
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-o", options,
                  "-w", "-t", str(int(timeout)), "start", timeout=timeout + 10)  # fmt: skip
        self.started = True
        logger.info("PostgreSQL started on %s:%d (%s)", self.host, self.port, self.dir)

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended)."""
        if not self.started or self.external is not None:
            self.started = False
            return
        self.started = False
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def cleanup(self) -> None:
        """Stop the server and remove its folder."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_text(self) -> str:
        """The server's log so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except (FileNotFoundError, PermissionError):
            return ""

    # -- databases ---------------------------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL (psycopg 3) of one database of this server."""
        base = self.external or URL.create(
            "postgresql+psycopg", username="postgres", host=self.host, port=self.port
        )
        return base.set(drivername="postgresql+psycopg", database=database).render_as_string(
            hide_password=False
        )

    def create_database(self, name: str) -> str:
        """Create an empty database (dropping one of that name first); returns its URL."""
        self._admin(f'DROP DATABASE IF EXISTS "{_checked(name)}" WITH (FORCE)')
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, ending its sessions."""
        self._admin(f'DROP DATABASE IF EXISTS "{_checked(name)}" WITH (FORCE)')

    def _admin(self, sql: str) -> None:
        engine = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(sql))
        finally:
            engine.dispose()

    def __enter__(self) -> Postgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()


def _checked(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"not a plain database name: {name!r}")
    return name


def available() -> bool:
    """Whether a server can be had: an external one is named, or the binaries exist."""
    return bool(os.environ.get(URL_ENV)) or find_postgres_bin() is not None


_shared: Postgres | None = None


def shared_server(add_cleanup: Callable[[Callable[[], None]], None]) -> Postgres:
    """One server per test process, started on first use.

    Args:
        add_cleanup: Registers its cleanup, e.g. ``request.config.add_cleanup`` (runs
            when the pytest session ends).
    """
    global _shared
    if _shared is None:
        server = Postgres()
        try:
            server.start()
        except BaseException:
            server.cleanup()
            raise
        _shared = server

        def cleanup() -> None:
            global _shared
            _shared = None
            server.cleanup()

        add_cleanup(cleanup)
    return _shared
