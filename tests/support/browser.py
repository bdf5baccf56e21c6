"""A real headless Chromium for the dashboard's end-to-end tests (Playwright for Python).

Debian's ``chromium`` package is driven through Playwright's ``executable_path``; no
browser is downloaded (never ``playwright install``). Tests skip when either is missing.
Screenshots go to ``$HALLWATCH_TEST_ARTIFACTS`` (default ``var/test-artifacts/``).

Example:
    >>> with Chromium() as chromium:  # doctest: +SKIP
    ...     page = chromium.page("http://127.0.0.1:8080/")
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Playwright, ViewportSize

logger = logging.getLogger(__name__)

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
ARTIFACTS_ENV = "HALLWATCH_TEST_ARTIFACTS"
BIG_SCREEN: ViewportSize = {"width": 1920, "height": 1080}
"""Viewport of the screenshots: a 1080p big screen (大屏)."""


def find_chromium() -> str | None:
    """Path of Debian's chromium, or None if it is not installed."""
    for path in CHROMIUM_CANDIDATES:
        if Path(path).exists():
            return path
    return shutil.which("chromium")


def missing() -> str | None:
    """Why the browser tests cannot run here (None: they can)."""
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install -e '.[test]')"
    if find_chromium() is None:
        return "chromium is not installed (apt-get install chromium)"
    return None


def artifacts_dir() -> Path:
    """The folder for test artifacts (created)."""
    folder = Path(os.environ.get(ARTIFACTS_ENV, "var/test-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Chromium:
    """Headless Chromium with one context per :meth:`context` call; page errors are kept.

    Attributes:
        errors: Uncaught JavaScript errors of every page opened (message strings).
    """

    def __init__(self) -> None:
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self.errors: list[str] = []

    def __enter__(self) -> Chromium:
        from playwright.sync_api import sync_playwright

        executable = find_chromium()
        if executable is None:
            raise FileNotFoundError("chromium is not installed")
        self._playwright = sync_playwright().start()
        self._browser = self._playwright.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox"]
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._browser is not None:
            self._browser.close()
        if self._playwright is not None:
            self._playwright.stop()

    def context(self, *, locale: str = "zh-CN") -> BrowserContext:
        """A fresh context (own cookies and storage) with a big-screen viewport."""
        assert self._browser is not None, "use Chromium() as a context manager"
        return self._browser.new_context(
            viewport=BIG_SCREEN, locale=locale, timezone_id="Asia/Shanghai"
        )

    def page(self, url: str, context: BrowserContext | None = None) -> Page:
        """A page of ``context`` (a fresh one if None) opened at ``url``; its uncaught
        errors and console errors are collected in :attr:`errors`."""
        page = (context or self.context()).new_page()
        page.on("pageerror", lambda exc: self.errors.append(f"{url}: {exc}"))
        page.on("console", lambda msg: self._console(url, msg.type, msg.text))
        page.goto(url)
        return page

    def _console(self, url: str, kind: str, text: str) -> None:
        # a refused request (the sign-in page's 401, an auditor's 403) is logged by the
        # browser as a console error; it is an answer the page handles, not a page error
        if kind == "error" and not text.startswith("Failed to load resource"):
            self.errors.append(f"{url}: console: {text}")

    def screenshot(self, page: Page, name: str) -> Path:
        """Save a full-page PNG as ``<artifacts>/<name>.png``."""
        path = artifacts_dir() / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        logger.info("screenshot %s", path)
        return path
