"""Headless Debian Chromium driven by Playwright's sync API.

Playwright's own browser download cannot work on these machines (no network but the package
registries), so we always launch the Debian package's /usr/bin/chromium. Never run
`playwright install`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM = "/usr/bin/chromium"

CHROMIUM_ARGS = [
    "--no-sandbox",  # needed when running as root (CI, these machines)
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Keep Chromium from reaching for the (closed) network at start-up.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

INSTALL_HINT = (
    "Chromium is not installed at /usr/bin/chromium. Run `make test` (it installs the Debian "
    "package when running as root) or `sudo apt-get install -y chromium`."
)


def chromium_path() -> str:
    """The Chromium binary to launch: /usr/bin/chromium, or a RuntimeError saying how to get it."""
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    found = shutil.which("chromium")
    if found:
        return found
    raise RuntimeError(INSTALL_HINT)


@contextmanager
def launch_chromium(**launch_options: object) -> Iterator[Browser]:
    """Start Playwright and a headless Chromium; close both on exit.

    Extra keyword arguments go to `chromium.launch()` (e.g. `slow_mo=100`).
    """
    from playwright.sync_api import sync_playwright

    options: dict[str, object] = {
        "executable_path": chromium_path(),
        "headless": True,
        "args": list(CHROMIUM_ARGS),
    }
    options.update(launch_options)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(**options)
        try:
            yield browser
        finally:
            browser.close()
