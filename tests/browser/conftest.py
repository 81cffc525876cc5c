"""Debian's Chromium, driven by Playwright, for the browser tests.

The browser is launched once per test session with a fresh, throw-away
profile. It must be Debian's ``/usr/bin/chromium`` (``make chromium``), never a
browser downloaded by Playwright. Every page runs in its own context that
aborts any request leaving this machine, so a test that passes proves that
nothing was fetched from the network.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    # Untagged PNGs are sRGB; keep the output sRGB too, so no colour conversion.
    "--force-color-profile=srgb",
]
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


@pytest.fixture(scope="session")
def blocked_requests() -> list[str]:
    """URLs that pages of the session tried to fetch from the network."""
    return []


@pytest.fixture(scope="session")
def browser(tmp_path_factory, blocked_requests):
    """A headless Debian Chromium with a fresh profile, for the whole session."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"Chromium is missing at {CHROMIUM}. Run `make chromium` (Debian's "
            "chromium package) and run the browser tests again. Do not use "
            "`playwright install`.",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            user_data_dir=str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=LAUNCH_ARGS,
            device_scale_factor=1,
            viewport={"width": 1024, "height": 768},
        )
        context.route("**/*", lambda route: _local_only(route, blocked_requests))
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


def _local_only(route, blocked: list[str]) -> None:
    """Let loopback and data URLs through; abort everything else."""
    url = route.request.url
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about") or (
        parts.scheme in ("http", "https", "ws", "wss") and parts.hostname in LOOPBACK
    ):
        route.continue_()
        return
    blocked.append(url)
    route.abort("blockedbyclient")


@pytest.fixture
def page(browser, blocked_requests):
    """A new page in the session's browser; fails if it tried the network."""
    page = browser.new_page()
    before = len(blocked_requests)
    try:
        yield page
    finally:
        page.close()
    tried = blocked_requests[before:]
    assert not tried, f"the page tried to fetch from the network: {tried}"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """``tests/browser/artifacts/``, git-ignored, for screenshots."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
