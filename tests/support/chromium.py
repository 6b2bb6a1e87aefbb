"""Headless Chromium for tests: Debian's `chromium`, driven by Playwright (the `playwright`
package from PyPI, without its own browser downloads: `playwright install` is never run)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext

CHROMIUM = "/usr/bin/chromium"
# no GPU, no sandbox (root in containers), nothing fetched behind the page's back
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    """Debian's chromium; fails (not skips) without it: CI installs it (`.ci/run`)."""
    found = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if not found:
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)")
    return found


@contextmanager
def chromium(profile: Path) -> Iterator[BrowserContext]:
    """A headless Chromium with a fresh profile in `profile`. Host names do not resolve (the
    tests run offline: map tiles fail at once instead of waiting on DNS); 127.0.0.1 and
    localhost work."""
    from playwright.sync_api import sync_playwright

    offline = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=chromium_path(),
            headless=True,
            args=[*FLAGS, offline],
            viewport={"width": 1280, "height": 1000},
        )
        try:
            yield context
        finally:
            context.close()
