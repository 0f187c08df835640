"""What the site tests share besides fixtures: where the site is, its pages, how a page
is visited in Chromium and what is recorded about it.

The site is ``_build/html`` (``make book``), or the folder named by ``COURSE_SITE``. The
pages under test are those of the toc of the book the site was built from: the folder
two levels above the site when it holds a ``_toc.yml``, else this repository.
Screenshots land in ``screenshots/`` next to the site's ``html/`` folder, one per page,
width (phone 390×844, desktop 1366×900) and colour scheme (light, dark): the first screen
a reader sees, or with ``COURSE_SCREENSHOTS=full`` the whole page (a second or two more
per page: the suite's slowest step, so not by default).
"""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from course import book
from course.book import toc_chapters, toc_pages

ROOT = Path(__file__).resolve().parents[2]
SITE = Path(os.environ.get("COURSE_SITE", ROOT / "_build" / "html")).resolve()
BOOK = SITE.parent.parent if (SITE.parent.parent / "_toc.yml").is_file() else ROOT
SCREENSHOTS = SITE.parent / "screenshots"
FULL_PAGE_SCREENSHOTS = os.environ.get("COURSE_SCREENSHOTS") == "full"
CHROMIUM = book.CHROMIUM
CHROMIUM_ARGS = book.CHROMIUM_ARGS
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
# The two ways a reader meets the site: the context options of each.
WIDTHS = {
    "desktop": {"viewport": DESKTOP},
    "phone": {"viewport": PHONE, "is_mobile": True, "has_touch": True},
}
MODES = ("light", "dark")

BOOK_PAGES = toc_pages(BOOK)
# `make check` (tools/check.py) names the pages whose HTML changed: the tests of one page
# run for those; the tests of the whole book (its chapters, its PDF) run as ever.
ONLY = [page for page in os.environ.get("COURSE_SITE_PAGES", "").split(",") if page]
PAGES = [page for page in BOOK_PAGES if page in ONLY] if ONLY else BOOK_PAGES
NOTEBOOK_FOLDERS = ("chapters/", "exercises/", "solutions/")
NOTEBOOKS = [page for page in PAGES if page.startswith(NOTEBOOK_FOLDERS)]
# A chapter that is several pages counts once, as its landing page (the chapter-level
# checks: numbering, Next to its exercises, the PDF's chapters); CHAPTER_PAGES are every
# page of every chapter, sections included (SECTIONS: a chapter's section pages).
SECTIONS = {
    page: pages for page, pages in toc_chapters(BOOK).items() if page.startswith("chapters/")
}
CHAPTERS = list(SECTIONS)
CHAPTER_PAGES = [page for page in BOOK_PAGES if page.startswith("chapters/")]
SOLUTIONS = [page for page in BOOK_PAGES if page.startswith("solutions/")]


def listing(items) -> str:
    return "\n  " + "\n  ".join(str(item) for item in items)


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
    probes: dict = field(default_factory=dict)  # name -> what PROBES[name] returned


# What the tests of one page measure in it besides FACTS_JS, taken during the one load of
# each page per width and colour scheme: name -> (width, mode, JavaScript, its argument).
# Test modules add theirs with `probe()` when they are imported (pytest collects every
# test module before the first test runs, so before any page loads).
PROBES: dict[str, tuple[str, str, str, object]] = {}


def probe(name: str, js: str, width: str = "desktop", mode: str = "light", arg=None) -> str:
    """Measure `js` (called with `arg`, if given) in every page loaded at `width` in `mode`;
    a test reads it as ``visits.get(page, width, mode).probes[name]``."""
    PROBES[name] = (width, mode, js, arg)
    return name


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
      shown_width: e.getBoundingClientRect().width,
      shown_height: e.getBoundingClientRect().height, natural_height: e.naturalHeight,
      in_output: !!e.closest('.cell_output'),
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
    text: article.innerText,
    duplicate_ids: [...document.querySelectorAll('[id]')].map((e) => e.id)
      .filter((id, i, ids) => id && ids.indexOf(id) !== i),
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
    """Loads each page once per width and mode (lazily, cached) and records what happened:
    the tests of one page share that load (FACTS_JS, PROBES); only a test that acts on the
    page (a click, a scroll, a search) opens a tab of its own."""

    def __init__(self, browser, base_url: str):
        self.browser, self.base_url, self.cache = browser, base_url, {}

    def url(self, page: str) -> str:
        return f"{self.base_url}{page}.html"

    def open(self, width: str = "desktop", mode: str = "light"):
        """A fresh tab whose requests off 127.0.0.1 are blocked; returns it, its context
        (close it when done) and the ``Visit`` recording what happens in it."""
        visit = Visit()
        context = self.browser.new_context(**WIDTHS[width], color_scheme=mode)
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

    def load(self, page: str, width: str, mode: str) -> Visit:
        """Load ``page``, wait for math and images, collect facts, save a screenshot."""
        context, tab, visit = self.open(width, mode)
        try:
            tab.goto(self.url(page), wait_until="load")
            tab.evaluate(WAIT_FOR_MATH_JS)
            visit.facts = tab.evaluate(FACTS_JS)
            for name, (at_width, in_mode, js, arg) in PROBES.items():
                if (at_width, in_mode) == (width, mode):
                    visit.probes[name] = tab.evaluate(js) if arg is None else tab.evaluate(js, arg)
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shot = SCREENSHOTS / f"{page.replace('/', '-')}-{width}-{mode}.png"
            tab.screenshot(path=shot, full_page=FULL_PAGE_SCREENSHOTS)
            if width == "desktop" and mode == "light":
                visit.recording = False
                visit.facts["axe"] = accessibility_violations(tab)
        finally:
            context.close()
        return visit

    def get(self, page: str, width: str = "desktop", mode: str = "light") -> Visit:
        if (page, width, mode) not in self.cache:
            self.cache[page, width, mode] = self.load(page, width, mode)
        return self.cache[page, width, mode]

    def desktop(self, page: str) -> Visit:
        return self.get(page, "desktop")

    def phone(self, page: str) -> Visit:
        return self.get(page, "phone")


def accessibility_violations(tab) -> list[str]:
    """axe-core's serious and critical violations on the page, one line each."""
    from axe_playwright_python.sync_playwright import Axe

    # Only violations are reported in full: passes and incomplete checks keep one node
    # each, which halves the run on a long page (color-contrast dominates) and changes
    # nothing that is reported.
    results = Axe().run(tab, options={"resultTypes": ["violations"]}).response
    return [
        f"{v['impact']}: {v['id']} ({v['help']}) at "
        + json.dumps([n["target"] for n in v["nodes"][:3]])
        for v in results["violations"]
        if v["impact"] in ("serious", "critical")
    ]
