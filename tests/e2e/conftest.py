"""Browser tests' shared fixture: one Chromium for the session (Debian's /usr/bin/chromium, never a downloaded browser).

Without ``/usr/bin/chromium`` the browser tests are skipped with the reason, except in CI (``CI=true``), where that
fails: ``scripts/system-deps.sh`` installs it. One Playwright instance serves every browser test module: the sync API
cannot run two in one process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        reason = f"{CHROMIUM} is missing: run ./scripts/system-deps.sh as root (apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(f"BROWSER TESTS NOT RUN: {reason}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()

