"""Fixtures for the tests of the built site: where it is, a local server, a real browser.

The site is ``_build/html`` (``make book``), or the folder named by ``COURSE_SITE``. The
pages under test are those of the toc of the book the site was built from: the folder
two levels above the site when it holds a ``_toc.yml``, else this repository.

The browser is Debian's Chromium (``/usr/bin/chromium``, or ``COURSE_CHROMIUM``) driven
by Playwright. Where it is missing the browser tests skip and say so, except in CI
(``CI=true``), where they fail.
"""

import functools
import http.server
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SITE = Path(os.environ.get("COURSE_SITE", ROOT / "_build" / "html")).resolve()
BOOK = SITE.parent.parent if (SITE.parent.parent / "_toc.yml").is_file() else ROOT
SCREENSHOTS = SITE.parent / "screenshots"
CHROMIUM = Path(os.environ.get("COURSE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 812}


def toc_pages(book: Path = BOOK) -> list[str]:
    """Every page of the book's ``_toc.yml``, root first, as paths without suffix."""
    toc = yaml.safe_load((book / "_toc.yml").read_text())
    pages = [toc["root"]]

    def walk(entry):
        if isinstance(entry, dict):
            if "file" in entry:
                pages.append(str(Path(entry["file"]).with_suffix("")))
            for value in entry.values():
                walk(value)
        elif isinstance(entry, list):
            for item in entry:
                walk(item)

    walk({key: value for key, value in toc.items() if key != "root"})
    return pages


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


@dataclass
class Visit:
    """What a reader's browser saw while loading one page."""

    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    offsite_requests: list[str] = field(default_factory=list)
    facts: dict = field(default_factory=dict)
    # axe-core fetches the page's stylesheets again, resolving @import against the page
    # rather than the stylesheet (a 404 no reader meets): requests stop counting then.
    recording: bool = True


# Collected in the page once it has loaded and MathJax (where present) has typeset.
FACTS_JS = """() => {
  const article = document.querySelector('article.bd-article');
  const visible = (e) => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);
  const root = document.documentElement;
  return {
    has_article: !!article,
    math: [...article.querySelectorAll('.math')].map((e) => ({
      text: e.textContent.slice(0, 80),
      typeset: !!e.querySelector('mjx-container'),
      error: !!e.querySelector('mjx-merror'),
    })),
    images: [...article.querySelectorAll('img')].map((e) => ({
      src: e.getAttribute('src'), alt: e.getAttribute('alt'),
      complete: e.complete, width: e.naturalWidth,
    })),
    inputs: [...article.querySelectorAll('.cell .cell_input')].map((e) => ({
      text: e.textContent.trim().length,
      visible: visible(e),
      hidden_by_toggle: !!e.closest('details:not([open])'),
    })),
    outputs: article.querySelectorAll('.cell .cell_output').length,
    binder: [...document.querySelectorAll('a[href*="mybinder.org"]')].map((a) => a.href),
    notebook_download: [...document.querySelectorAll('a.btn-download-notebook-button')]
      .map((a) => a.getAttribute('href')),
    scroll_width: root.scrollWidth,
    client_width: root.clientWidth,
    too_wide: [...document.querySelectorAll('body *')].filter((e) => {
      const r = e.getBoundingClientRect();
      return r.width > 0 && r.right > root.clientWidth + 1;
    }).slice(0, 5).map((e) => e.tagName.toLowerCase() + '.' + [...e.classList].join('.')),
  };
}"""

WAIT_FOR_MATH_JS = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  await document.fonts.ready;
  await Promise.all([...document.images].filter((i) => !i.complete)
    .map((i) => new Promise((done) => { i.onload = i.onerror = done; })));
}"""


class Visits:
    """Loads each page once per viewport (lazily, cached) and records what happened."""

    def __init__(self, browser, base_url: str):
        self.browser, self.base_url, self.cache = browser, base_url, {}

    def url(self, page: str) -> str:
        return f"{self.base_url}{page}.html"

    def open(self, viewport: dict = DESKTOP, **context_options):
        """A fresh tab whose requests off 127.0.0.1 are blocked; returns it, its context
        (close it when done) and the ``Visit`` recording what happens in it."""
        visit = Visit()
        context = self.browser.new_context(viewport=viewport, **context_options)
        host = urlsplit(self.base_url).netloc

        def route(request_route):
            url = request_route.request.url
            if urlsplit(url).netloc == host:
                request_route.continue_()
            else:
                visit.offsite_requests.append(url)
                request_route.abort("blockedbyclient")

        context.route("**/*", route)
        tab = context.new_page()

        def failed(request):
            if visit.recording and urlsplit(request.url).netloc == host:
                visit.failed_requests.append(f"{request.url} ({request.failure})")

        def response(answer):
            if visit.recording and answer.status >= 400:
                visit.failed_requests.append(f"{answer.url} ({answer.status})")

        def console(message):
            if visit.recording and message.type == "error":
                visit.console_errors.append(message.text)

        tab.on("console", console)
        tab.on("pageerror", lambda e: visit.console_errors.append(f"uncaught: {e}"))
        tab.on("requestfailed", failed)
        tab.on("response", response)
        return context, tab, visit

    def load(self, page: str, viewport: dict, name: str, **context_options) -> Visit:
        """Load ``page``, wait for math and images, collect facts, save a screenshot."""
        context, tab, visit = self.open(viewport, **context_options)
        try:
            tab.goto(self.url(page), wait_until="load")
            tab.evaluate(WAIT_FOR_MATH_JS)
            visit.facts = tab.evaluate(FACTS_JS)
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shot = SCREENSHOTS / f"{page.replace('/', '-')}-{name}.png"
            tab.screenshot(path=shot, full_page=True)
            if name == "desktop":
                visit.recording = False
                visit.facts["axe"] = accessibility_violations(tab)
        finally:
            context.close()
        return visit

    def desktop(self, page: str) -> Visit:
        if (page, "desktop") not in self.cache:
            self.cache[page, "desktop"] = self.load(page, DESKTOP, "desktop")
        return self.cache[page, "desktop"]

    def phone(self, page: str) -> Visit:
        if (page, "phone") not in self.cache:
            self.cache[page, "phone"] = self.load(
                page, PHONE, "phone", is_mobile=True, has_touch=True
            )
        return self.cache[page, "phone"]


def accessibility_violations(tab) -> list[str]:
    """axe-core's serious and critical violations on the page, one line each."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(tab).response
    return [
        f"{v['impact']}: {v['id']} ({v['help']}) at "
        + json.dumps([n["target"] for n in v["nodes"][:3]])
        for v in results["violations"]
        if v["impact"] in ("serious", "critical")
    ]


@pytest.fixture(scope="session")
def visits(browser, server) -> Visits:
    return Visits(browser, server)


@pytest.fixture(autouse=True)
def learner_mode(monkeypatch):
    """Check functions only print, as in a learner's notebook: COURSE_CHECKS is unset.

    (Tests of the strict modes set it themselves.)
    """
    monkeypatch.delenv("COURSE_CHECKS", raising=False)
