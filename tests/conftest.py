"""Fixtures for every test. The site tests have their own in `tests/site/conftest.py`."""

import os

import pytest

from course.book import CHROMIUM, CHROMIUM_ARGS


def pytest_addoption(parser):
    parser.addoption(
        "--with-index",
        action="store_true",
        help="also run the tests that ask the package index (make lock-check)",
    )


def pytest_collection_modifyitems(config, items):
    """`make test` runs offline: a test that needs the package index is skipped, saying
    which command runs it (`make lock-check`, which CI runs after `make test`)."""
    if config.getoption("--with-index"):
        return
    skip = pytest.mark.skip(reason="needs the package index: run `make lock-check`")
    for item in items:
        if "index" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def learner_mode(monkeypatch):
    """Check functions only print, as in a learner's notebook: COURSE_CHECKS is unset.

    (Tests of the strict modes set it themselves.)
    """
    monkeypatch.delenv("COURSE_CHECKS", raising=False)


@pytest.fixture(autouse=True)
def first_hints():
    """Every test starts as a fresh kernel does: no exercise has had a ✗ yet, so the next
    failure shows the first step of its hint (`course.checks.Hint`)."""
    from course.checks import reset_hints

    reset_hints()
    yield
    reset_hints()


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium per test process (Playwright's sync API allows one at a time).

    Debian's Chromium (`/usr/bin/chromium`, or `COURSE_CHROMIUM`). Where it is missing the
    browser tests skip and say so, except in CI (`CI=true`), where they fail.
    """
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} not found: install Debian's chromium to run the browser tests"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
