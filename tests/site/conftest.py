"""Fixtures for the tests of the built site: the site, a local server, the page model.

The browser (`browser`, one Chromium per test process) comes from `tests/conftest.py`,
which the JupyterLab test shares. Helpers that are not fixtures live in `pages.py`.
"""

from pathlib import Path

import pytest

from course.book import serve
from tests.site.pages import SITE, Visits


@pytest.fixture(scope="session")
def site() -> Path:
    """The built site's folder; fails with a pointer to ``make book`` if there is none."""
    if not (SITE / "index.html").is_file():
        pytest.fail(f"no built site in {SITE}: run make book first (or set COURSE_SITE)")
    return SITE


@pytest.fixture(scope="session")
def server(site):
    """The site served on 127.0.0.1 on a free port, in a thread; yields its base URL."""
    with serve(site) as base_url:
        yield base_url


@pytest.fixture(scope="session")
def visits(browser, server) -> Visits:
    return Visits(browser, server)
