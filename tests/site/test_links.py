"""Every internal link and anchor of the built site resolves, checked offline.

Each HTML page of the site (outside ``_static``) is parsed with ``html.parser``; every
``href`` and ``src`` that stays inside the site must name a file that exists and, where
it has a ``#fragment``, an element of that page with that ``id`` (or an ``<a name>``).
Links that leave the site (``https:``, ``mailto:``) are not followed: the tests run
offline.
"""

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

pytestmark = pytest.mark.site

LINK_ATTRIBUTES = {"href", "src"}


class PageLinks(HTMLParser):
    """The anchors a page defines and the links it makes."""

    def __init__(self):
        super().__init__()
        self.anchors, self.links = set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.anchors.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.anchors.add(attrs["name"])
        for name in LINK_ATTRIBUTES & attrs.keys():
            if attrs[name] is not None and not (tag == "link" and attrs.get("rel") == "canonical"):
                self.links.append(attrs[name])


def parse(page: Path) -> PageLinks:
    parser = PageLinks()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def broken_links(site: Path) -> list[str]:
    """Every internal link of the site that names a missing file or anchor."""
    # _static holds the theme's template fragments, _print the PDF's joined document (which
    # tools/pdf.py may be writing meanwhile; tests/site/test_pdf.py reads its links): no pages
    pages = {
        page: parse(page)
        for page in site.rglob("*.html")
        if not {"_static", "_print"} & set(page.relative_to(site).parts)
    }
    broken = []
    for page, parsed in pages.items():
        for link in parsed.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("javascript:", "data:")):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            where = f"{page.relative_to(site)}: {link}"
            if not target.is_file():
                broken.append(f"{where} (no file {target})")
            elif parts.fragment and target.suffix == ".html":
                anchors = (pages.get(target) or parse(target)).anchors
                if unquote(parts.fragment) not in anchors:
                    broken.append(f"{where} (no anchor #{parts.fragment})")
    return broken


def test_internal_links_and_anchors_resolve(site):
    broken = broken_links(site)
    assert not broken, f"{len(broken)} broken links:\n  " + "\n  ".join(broken[:40])


def test_the_checker_finds_a_broken_link_and_anchor(tmp_path):
    (tmp_path / "a.html").write_text(
        '<p id="here"><a href="#here">ok</a> <a href="b.html#here">ok</a>'
        ' <a href="b.html#gone">no anchor</a> <a href="c.html">no file</a>'
        ' <img src="_static/x.png"> <a href="https://example.org/">external</a></p>'
    )
    (tmp_path / "b.html").write_text('<h1 id="here">B</h1>')
    assert [line.split(": ", 1)[1] for line in broken_links(tmp_path)] == [
        "b.html#gone (no anchor #gone)",
        f"c.html (no file {tmp_path / 'c.html'})",
        f"_static/x.png (no file {tmp_path / '_static' / 'x.png'})",
    ]
