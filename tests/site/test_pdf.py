"""The book as one PDF (``make pdf``, ``tools/pdf.py``): every chapter, math typeset.

Read with pypdf: the PDF has a book's worth of pages, the title of every chapter, no
MathJax error and no raw TeX (a formula left untypeset shows its ``\\(`` delimiters).
"""

import re

import pytest

from tests.site.pages import BOOK, CHAPTERS

pytestmark = pytest.mark.site

PDF_NAME = "executable-pytorch.pdf"
MIN_PAGES = 10 * len(CHAPTERS)


@pytest.fixture(scope="module")
def pdf_text(site) -> tuple[int, str]:
    from pypdf import PdfReader

    path = site / PDF_NAME
    if not path.is_file():
        pytest.fail(f"no {path}: run make pdf (tools/pdf.py)")
    reader = PdfReader(path)
    text = "\n".join(page.extract_text() or "" for page in reader.pages)
    return len(reader.pages), re.sub(r"\s+", " ", text)


def chapter_title(page: str) -> str:
    source = (BOOK / f"{page}.md").read_text(encoding="utf-8")
    # as rendered: Markdown's backticks are not part of the text
    return re.search(r"^# (.+)$", source, re.M).group(1).replace("`", "").strip()


def test_pdf_has_a_book_worth_of_pages(pdf_text):
    pages, _ = pdf_text
    assert pages >= MIN_PAGES, f"the PDF has {pages} pages, fewer than {MIN_PAGES}"


@pytest.mark.parametrize("page", CHAPTERS)
def test_pdf_holds_every_chapter(pdf_text, page):
    title = chapter_title(page)
    assert title in pdf_text[1], f"the PDF does not contain the chapter {title!r}"


def test_pdf_math_is_typeset(pdf_text):
    text = pdf_text[1]
    for raw in ("\\(", "\\[", "$$", "Math input error", "Undefined control sequence"):
        assert raw not in text, f"the PDF shows {raw!r}: math left untypeset or in error"


def test_front_page_links_to_the_pdf(visits):
    context, tab, _ = visits.open()
    try:
        tab.goto(visits.url("intro"), wait_until="load")
        link = tab.locator(f"article a[href='{PDF_NAME}']")
        assert link.count() == 1, "the front page does not link to the PDF"
        response = tab.request.get(visits.base_url + PDF_NAME)
        assert response.ok
        assert response.headers["content-type"] == "application/pdf"
    finally:
        context.close()
