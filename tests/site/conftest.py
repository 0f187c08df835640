"""Fixtures for the tests of the built site: the site, a local server, a real browser.

The browser is Debian's Chromium (``/usr/bin/chromium``, or ``COURSE_CHROMIUM``) driven
by Playwright. Where it is missing the browser tests skip and say so, except in CI
(``CI=true``), where they fail. Helpers that are not fixtures live in ``pages.py``.
"""

import functools
import http.server
import os
import threading
from pathlib import Path

import pytest

from tests.site.pages import CHROMIUM, CHROMIUM_ARGS, SITE, Visits


@pytest.fixture(scope="session")
def site() -> Path:
    """The built site's folder; fails with a pointer to ``make book`` if there is none."""
    if not (SITE / "index.html").is_file():
        pytest.fail(f"no built site in {SITE}: run make book first (or set COURSE_SITE)")
    return SITE


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files without logging each request to stderr."""

    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="session")
def server(site):
    """The site served on 127.0.0.1 on a free port, in a thread; yields its base URL."""
    handler = functools.partial(QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the whole session."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} not found: install Debian's chromium to run the browser tests"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        # A learner's machine without Chromium: the site tests cannot run, say so and skip.
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def visits(browser, server) -> Visits:
    return Visits(browser, server)
