"""What the browser tests share: Debian's Chromium, driven by Playwright for Python.

A test module calls ``playwright_api()`` at import and sets ``pytestmark = BROWSER_MARKS``: it
is skipped when ``/usr/bin/chromium`` or Playwright is missing, except under ``.ci/run``
(``ENTRA_REQUIRE_BROWSER_TEST=1``), which installs Chromium and must run it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREEN = {"width": 1366, "height": 900}
PAGE_TIMEOUT_MS = 20_000

# .ci/run sets it: there a missing browser is a failure, not a skip.
BROWSER_REQUIRED = os.environ.get("ENTRA_REQUIRE_BROWSER_TEST") == "1"

BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]


def playwright_api() -> ModuleType:
    """``playwright.sync_api``; fails the module under CI when Chromium or it is missing."""
    if BROWSER_REQUIRED and not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium", pytrace=False)
    if BROWSER_REQUIRED:
        from playwright import sync_api

        return sync_api
    return pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


@contextmanager
def browser_page(**context_options: Any) -> Iterator[tuple[Any, list[str]]]:
    """A page on a 1366 px screen, and the Content Security Policy violations the browser
    reports on its console while it is used."""
    sync_api = playwright_api()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = browser.new_context(viewport=SCREEN, **context_options)
            page = context.new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            violations: list[str] = []
            page.on(
                "console",
                lambda message: (
                    violations.append(message.text)
                    if "Content Security Policy" in message.text
                    else None
                ),
            )
            yield page, violations
        finally:
            browser.close()
