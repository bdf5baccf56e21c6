"""A real VictoriaMetrics single node for integration tests, on a loopback port.

Started with a retention of 100 years (tests write past dates), no latency offset (the
newest samples are readable at once) and deduplication to 1 ms (the same sample written
twice is one sample, as in production).

Example:
    >>> with VictoriaMetrics() as vm:  # doctest: +SKIP
    ...     print(vm.url)
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from tests.support.server import ServerProcess, find_binary

VICTORIA_CANDIDATES = ("/usr/bin/victoria-metrics", "/usr/local/bin/victoria-metrics")


def find_victoria() -> str | None:
    """Path of the victoria-metrics binary, or None if it is not installed."""
    return find_binary("victoria-metrics", VICTORIA_CANDIDATES)


class VictoriaMetrics(ServerProcess):
    """One victoria-metrics process; restartable on the same port and data folder.

    Args:
        port: Port to listen on (loopback only); None picks a free one.
        binary: victoria-metrics executable (default: found on the system).
    """

    stop_timeout_s = 10.0  # on SIGTERM it writes its buffers to disk

    def __init__(self, port: int | None = None, *, binary: str | None = None) -> None:
        found = binary or find_victoria()
        if found is None:
            raise FileNotFoundError("victoria-metrics is not installed")
        super().__init__("victoria-metrics", found, port)

    @property
    def url(self) -> str:
        """Base URL (``http://127.0.0.1:PORT``)."""
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        """The command line it runs."""
        return [
            self.binary,
            f"-httpListenAddr={self.host}:{self.port}",
            f"-storageDataPath={self.dir / 'data'}",
            "-retentionPeriod=100y",
            "-search.latencyOffset=0s",
            "-dedup.minScrapeInterval=1ms",
            "-loggerLevel=WARN",
        ]

    def healthy(self) -> bool:
        """Whether ``/health`` answers OK."""
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=0.5) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def start(self, timeout: float = 15.0) -> None:
        """Start the server and wait until ``/health`` answers.

        Raises:
            RuntimeError: It exited or was not healthy in time (its log is in the message).
        """
        self._launch(self.command(), self.healthy, timeout, "not healthy")

    def force_flush(self) -> None:
        """Make the samples received so far searchable (``/internal/force_flush``)."""
        with urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=5) as response:
            response.read()

    def export(self, match: str, start: float = 0, end: float | None = None) -> list[Any]:
        """Raw series from ``/api/v1/export`` (after a force flush), one dict per series.

        Args:
            match: A series selector, e.g. ``{__name__=~"queue_.+"}``.
            start: Unix seconds.
            end: Unix seconds; None: now.
        """
        self.force_flush()
        params = {"match[]": match, "start": f"{start:.3f}"}
        if end is not None:
            params["end"] = f"{end:.3f}"
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/export?{query}", timeout=5) as response:
            body = response.read().decode()
        return [json.loads(line) for line in body.splitlines() if line.strip()]
