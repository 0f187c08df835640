"""Fixtures for every test. The site tests have their own in `tests/site/conftest.py`."""

import os
from pathlib import Path

import pytest

from course.book import CHROMIUM, CHROMIUM_ARGS, ROOT

NOTEBOOK_FOLDERS = ("chapters", "exercises", "solutions")


def pytest_addoption(parser):
    parser.addoption(
        "--with-index",
        action="store_true",
        help="also run the tests that ask the package index (make lock-check)",
    )


def notebook_named(value) -> str | None:
    """The notebook (``chapters/tensors.md``) that a test parameter names, if it names
    one: a path to it, or its name with or without ``.md``."""
    if isinstance(value, Path):
        try:
            value = value.resolve().relative_to(ROOT).as_posix()
        except ValueError:
            return None
    if not isinstance(value, str) or not value.startswith(tuple(f"{d}/" for d in NOTEBOOK_FOLDERS)):
        return None
    return value if value.endswith(".md") else f"{value}.md"


def notebooks_of(item) -> set[str]:
    """The notebooks that the parameters of a test name."""
    callspec = getattr(item, "callspec", None)
    values = callspec.params.values() if callspec is not None else ()
    flat = [v for value in values for v in (value if isinstance(value, tuple) else (value,))]
    return {name for value in flat if (name := notebook_named(value)) is not None}


# Site tests whose every test reads the whole book (the search index, the PDF, the links
# between pages, Previous and Next): `make check` never narrows them to some pages.
WHOLE_BOOK = ("tests/site/test_reading.py", "tests/site/test_pdf.py", "tests/site/test_links.py")


def pages_of(item, pages: set[str]) -> set[str]:
    """The pages of the book (``chapters/tensors``) that the parameters of a test name."""
    callspec = getattr(item, "callspec", None)
    values = callspec.params.values() if callspec is not None else ()
    flat = [v for value in values for v in (value if isinstance(value, tuple) else (value,))]
    return {value for value in flat if isinstance(value, str) and value in pages}


def only_changed_pages(config, items) -> None:
    """`make check` (tools/check.py): a site test of given pages runs only when one of
    them is among the pages whose HTML changed (COURSE_SITE_PAGES); tests of no page in
    particular, and those of WHOLE_BOOK, run."""
    changed = {p for p in os.environ.get("COURSE_SITE_PAGES", "").split(",") if p}
    if not changed:
        return
    from course.book import toc_pages

    pages = set(toc_pages()) | {"reference/execution"}
    kept, left = [], []
    for item in items:
        path = item.nodeid.split("::")[0]
        named = pages_of(item, pages) if path.startswith("tests/site/") else set()
        if path in WHOLE_BOOK or not named or named & changed:
            kept.append(item)
        else:
            left.append(item)
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = kept


def only_changed_notebooks(config, items) -> None:
    """`make check` (tools/check.py): in the test files named by COURSE_NOTEBOOK_TESTS,
    which read every notebook, a test of one notebook runs only for the notebooks named
    by COURSE_NOTEBOOKS (those that changed); tests of no notebook in particular run,
    except those marked ``reads_no_notebook`` (an edit of a notebook cannot change them)."""
    files = {f for f in os.environ.get("COURSE_NOTEBOOK_TESTS", "").split(",") if f}
    if not files:
        return
    wanted = {f for f in os.environ.get("COURSE_NOTEBOOKS", "").split(",") if f}
    kept, left = [], []
    for item in items:
        if item.nodeid.split("::")[0] not in files:
            kept.append(item)
            continue
        named = notebooks_of(item)
        unread = item.get_closest_marker("reads_no_notebook") is not None
        (left if unread or (named and not named & wanted) else kept).append(item)
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = kept


def pytest_collection_modifyitems(config, items):
    """`make test` runs offline: a test that needs the package index is skipped, saying
    which command runs it (`make lock-check`, which CI runs after `make test`)."""
    only_changed_notebooks(config, items)
    only_changed_pages(config, items)
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
