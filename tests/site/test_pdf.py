"""The book as one PDF (``make pdf``, ``tools/pdf.py``), read as a reader of paper does.

Read with pypdf (outline, links) and poppler's pdftotext (text): a book's worth of
pages, none blank; every chapter with its number in the outline and in the printed
contents, on the page the contents says; page numbers on the pages; every link either a
jump inside the PDF or a real address (never the temporary print server); each solution
printed once; no MathJax error and no raw TeX (a formula left untypeset shows its
``\\(`` delimiters); code that fits its line. A sample of pages is rendered to PNG under
``_build/pdf-pages/`` (with poppler's pdftoppm) to be looked at.
"""

import json
import logging
import os
import re
import shutil
import subprocess
import time

import pytest

from tests.site.pages import BOOK, CHAPTERS, SITE, SOLUTIONS
from tools import pdf

pytestmark = pytest.mark.site

PDF_NAME = pdf.PDF_NAME
PRINT_PATIENCE = 600  # seconds; the print takes about 25
MIN_PAGES = 10 * len(CHAPTERS)


@pytest.fixture(scope="module", autouse=True)
def printed():
    """Under `make check` the PDF is printed while the tests run: wait for the print."""
    status = os.environ.get(pdf.PRINTING)
    if not status:
        return
    deadline = time.monotonic() + PRINT_PATIENCE
    while not os.path.isfile(status):
        if time.monotonic() > deadline:
            pytest.fail(f"tools/pdf.py still printing after {PRINT_PATIENCE} s")
        time.sleep(0.2)
    with open(status, encoding="utf-8") as file:
        code = file.read().strip()
    if code != "0":
        pytest.fail(f"tools/pdf.py failed (exit status {code}): its output is above")


@pytest.fixture(scope="module")
def reader(site):
    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # Chromium's trailer size notes
    path = site / PDF_NAME
    if not path.is_file():
        pytest.fail(f"no {path}: run make pdf (tools/pdf.py)")
    return PdfReader(path)


@pytest.fixture(scope="module")
def page_texts(reader, site) -> list[str]:
    """The text of each page, by poppler's pdftotext (a second for the book; pypdf's
    `extract_text` takes twenty)."""
    if shutil.which("pdftotext") is None:
        pytest.fail("pdftotext not found: install poppler-utils (.ci/run does)")
    text = subprocess.run(
        ["pdftotext", "-layout", "-enc", "UTF-8", str(site / PDF_NAME), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pages = text.split("\f")[: len(reader.pages)]
    assert len(pages) == len(reader.pages), "pdftotext and pypdf count different pages"
    return pages


@pytest.fixture(scope="module")
def pdf_text(page_texts) -> tuple[int, str]:
    return len(page_texts), re.sub(r"\s+", " ", "\n".join(page_texts))


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


def test_no_page_is_blank(reader, page_texts):
    """A page holds text beyond its running head and number, or an image."""
    blank = []
    for number, (page, text) in enumerate(zip(reader.pages, page_texts, strict=True), start=1):
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) <= 2 and not page.images:
            blank.append(number)
    assert not blank, f"blank or almost blank pages: {blank}"


def links(reader):
    """(page number, URI or None, named destination or None) of every link annotation."""
    found = []
    for number, page in enumerate(reader.pages, start=1):
        for annotation in page.get("/Annots") or []:
            annotation = annotation.get_object()
            if annotation.get("/Subtype") != "/Link":
                continue
            action = annotation.get("/A") or {}
            found.append((number, action.get("/URI"), annotation.get("/Dest")))
    return found


def test_every_link_jumps_inside_the_pdf_or_to_a_real_address(reader):
    every = links(reader)
    loopback = [(n, uri) for n, uri, _ in every if uri and re.search(r"//(127\.|localhost)", uri)]
    assert not loopback, f"links to the temporary print server: {loopback[:5]}"
    named = set(reader.named_destinations)
    dangling = [(n, dest) for n, uri, dest in every if dest is not None and dest not in named]
    assert not dangling, f"internal links without a destination: {dangling[:5]}"
    inside = sum(dest is not None for _, _, dest in every)
    assert inside >= 10 * len(CHAPTERS), f"only {inside} links jump inside the PDF"


def contents_entries(page_texts) -> dict[str, int]:
    """Title -> page number, as the printed contents (the pages headed Contents) lists them."""
    start = next(i for i, text in enumerate(page_texts) if text.lstrip().startswith("Contents"))
    entries = {}
    for text in page_texts[start : start + 6]:
        for line in text.splitlines():
            match = re.match(r"^(.*?\S)\s*(\d+)$", line.strip())
            if match:
                entries[match[1]] = int(match[2])
    return entries


@pytest.mark.parametrize("page", CHAPTERS)
def test_each_chapter_is_numbered_in_the_outline_and_the_contents_on_the_right_page(
    reader, page_texts, page
):
    number = CHAPTERS.index(page) + 1
    heading = f"{number}. {chapter_title(page)}"
    outline = {
        item.title: reader.get_destination_page_number(item) + 1
        for item in reader.outline
        if not isinstance(item, list)
    }
    assert heading in outline, f"the PDF's outline has no {heading!r}: {sorted(outline)}"
    listed = contents_entries(page_texts)
    assert listed.get(heading) == outline[heading], (
        f"the printed contents lists {heading!r} on page {listed.get(heading)}, "
        f"the chapter starts on page {outline[heading]}"
    )
    text = " ".join(page_texts[outline[heading] - 1].split())
    assert heading in text, f"page {outline[heading]} does not start {heading!r}: {text[:200]}"


def test_pages_carry_their_numbers(page_texts):
    """After the front matter every page shows its page number (a line of its own)."""
    unnumbered = [
        number
        for number, text in enumerate(page_texts, start=1)
        if number > 3 and str(number) not in [line.strip() for line in text.splitlines()]
    ]
    assert not unnumbered, f"pages without their number: {unnumbered[:10]}"


@pytest.mark.parametrize("page", SOLUTIONS)
def test_each_solution_is_printed_once(pdf_text, page):
    """The exercise pages are printed without their solution boxes: the appendix has them."""
    source = (BOOK / f"{page}.md").read_text(encoding="utf-8")
    tasks = re.findall(r"# BEGIN SOLUTION (\d+\.\d+[a-z]?)\s", source)
    assert tasks, f"{page} has no solution region"
    for task in set(tasks):
        count = len(re.findall(rf"# BEGIN SOLUTION {re.escape(task)}\s", pdf_text[1] + " "))
        assert count == tasks.count(task), (
            f"the solution of {task} is printed {count} times, not {tasks.count(task)}"
        )


def test_code_fits_its_line():
    """A code cell too wide for the column is set smaller, never wrapped at column 0
    (tools/pdf.py measures every block in the printed layout and reports what wraps)."""
    report = json.loads((SITE.parent / "pdf.json").read_text(encoding="utf-8"))
    wrapped = [w for w in report["wide_code"] if w["input"]]
    assert not wrapped, f"code blocks that wrap in the PDF: {wrapped[:3]}"


def test_sample_pages_rendered_to_look_at(reader, site):
    """The first pages, a chapter opening and a solution page, as PNG to be looked at."""
    tool = shutil.which("pdftoppm")
    if tool is None:
        pytest.skip("pdftoppm (poppler-utils) not installed: no PNGs of the PDF's pages")
    out = SITE.parent / "pdf-pages"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    outline = [item for item in reader.outline if not isinstance(item, list)]
    samples = {1, 2, 3, reader.get_destination_page_number(outline[2]) + 1, len(reader.pages)}
    for number in sorted(samples):
        subprocess.run(
            [
                tool,
                "-r",
                "60",
                "-png",
                "-f",
                str(number),
                "-l",
                str(number),
                str(site / PDF_NAME),
                str(out / "page"),
            ],
            check=True,
        )
    assert len(list(out.glob("page-*.png"))) == len(samples)
