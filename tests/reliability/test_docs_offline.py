"""The API docs page renders with no network but the service itself: a real browser (headless
Chromium) loads it with every address other than 127.0.0.1 unreachable, and the page it renders
lists every documented route. Docs UIs that no package ships for offline use are absent (404),
not white pages."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import tempfile
import time

import httpx
import pytest

from tests.reliability.conftest import OPENAPI

# No DNS for any name but 127.0.0.1, and any proxied (that is, non-loopback) request goes to a
# closed local port: the page gets nothing from outside, as on a machine without internet.
OFFLINE = [
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--proxy-server=http://127.0.0.1:9",
    "--proxy-bypass-list=127.0.0.1",
]
BROWSER_SECONDS = 60  # a hard stop; it takes 2-5 s


def chromium() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("the docs page test needs a browser: apt-get install chromium (or set CHROMIUM=/path/to/it)")
    return path


def rendered_dom(url: str) -> str:
    """The DOM after the page's scripts ran (10 s of the page's virtual time, real time for fetches)."""
    with tempfile.TemporaryDirectory(prefix="docs-browser-") as profile:
        command = [
            chromium(),
            "--headless",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            *OFFLINE,
            *(["--no-sandbox"] if os.geteuid() == 0 else []),  # Chromium refuses root with its sandbox
            "--virtual-time-budget=10000",
            "--dump-dom",
            url,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=BROWSER_SECONDS, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize("page", ["/schema/swagger", "/schema"])
def test_the_docs_page_lists_every_route_with_no_network(live_server, page):
    started = time.monotonic()
    dom = rendered_dom(live_server + page)
    shown = {html.unescape(path) for path in re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', dom)}
    assert shown == set(OPENAPI["paths"]), f"routes on the page: {sorted(shown)}\n{dom[:3000]}"
    assert time.monotonic() - started < 30


def test_the_docs_page_and_its_assets_come_from_the_service(live_server):
    """Everything the page loads is on the service (no CDN URL, not even for the favicon), and
    none of it needs a token."""
    page = httpx.get(f"{live_server}/schema/swagger")
    assert page.status_code == 200
    loaded = re.findall(r'(?:src|href)=["\']([^"\']+)["\']', page.text)
    assert loaded and all(url.startswith("/schema/") for url in loaded), loaded
    for url in loaded:
        asset = httpx.get(live_server + url)
        assert asset.status_code == 200 and asset.content, url
        assert "max-age" in asset.headers.get("cache-control", ""), url


@pytest.mark.parametrize("page", ["/schema/redoc", "/schema/elements", "/schema/rapidoc"])
def test_docs_uis_without_local_assets_are_absent(live_server, page):
    answer = httpx.get(live_server + page)
    assert answer.status_code == 404
    assert answer.json() == {"message": "Not Found"}  # as every path that is not a route, not an HTML page
