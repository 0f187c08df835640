"""The whole book as one PDF, a book to read on paper, printed by the tests' Chromium offline.

    python tools/pdf.py                       # the site of this repository, _build/html
    python tools/pdf.py --path-output DIR     # a book built with --path-output DIR

Run it after `make book`. The pages of the built site are joined into one HTML document,
``_build/html/_print/book.html`` (a title page, a printed contents, then each chapter
followed by its exercises, then the worked solutions as an appendix), and Chromium prints
that document to A4, twice: the first print says on which page each chapter and section
begins, the second prints those numbers in the contents. The result is
``<output>/_build/html/executable-pytorch.pdf``, where the front page links to it.

What makes it a book rather than a printout of web pages:

- every link between pages is a jump inside the PDF (ids are prefixed per page and links
  rewritten to them); a link to a page the PDF leaves out (the execution statistics) goes
  to the published site, never to the temporary server the print was made from;
- page numbers and running heads (CSS page-margin boxes, one named page per chapter),
  numbered chapter titles, an outline (bookmarks) of chapters and sections;
- each solution once: the exercise pages are printed without their solution boxes, which
  the appendix holds; hidden code cells are printed open, without their toggles;
- code fits the line: a block too wide for the column is set smaller (down to 6 pt)
  rather than wrapped at column 0, and the tool says how many blocks still wrap;
- figures are kept whole and no taller than a page.

It stops with a message, and writes no PDF, when a formula shows a MathJax error or an
image does not load. A summary of what it printed goes to ``_build/pdf.json`` (read by
the tests in tests/site/test_pdf.py).
"""

import argparse
import json
import posixpath
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from course.book import CHROMIUM, CHROMIUM_ARGS, ROOT, serve, toc_chapters

PDF_NAME = "executable-pytorch.pdf"
PRINT_DIR = "_print"
REPORT = "pdf.json"
PRINTING = "COURSE_PDF_PRINTING"
"""Set by `make check`, which prints the PDF while the tests run: the file that holds this
script's exit status once it has ended (tests/site/test_pdf.py waits for it)."""
TITLE = "Executable PyTorch"

READY_JS = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  await document.fonts.ready;
  await Promise.all([...document.images].filter((i) => !i.complete)
    .map((i) => new Promise((done) => { i.onload = i.onerror = done; })));
  return {
    math: document.querySelectorAll('mjx-container').length,
    math_errors: [...document.querySelectorAll('mjx-merror')].map((e) => e.textContent),
    broken_images: [...document.images].filter((i) => !i.naturalWidth).map((i) => i.src),
  };
}"""

# Set a code block too wide for the column smaller, step by step down to 6 pt, instead of
# wrapping it (a wrapped line restarts at column 0 and breaks Python's indentation).
# Returns how many blocks still do not fit (they wrap) and where they are.
# The printed contents, replaced by one that has the page numbers of the last print.
CONTENTS_JS = "(html) => { document.querySelector('.contents.front').outerHTML = html; }"
FIT_CODE_JS = """() => {
  const wide = [];
  for (const pre of document.querySelectorAll('.book-page pre')) {
    let size = parseFloat(getComputedStyle(pre).fontSize);
    while (pre.scrollWidth > pre.clientWidth + 1 && size > 8) {
      size -= 0.5;
      pre.style.fontSize = size + 'px';
    }
    if (pre.scrollWidth > pre.clientWidth + 1) {
      pre.classList.add('wraps');
      const page = pre.closest('.book-page');
      const input = !!pre.closest('.cell_input, .highlight-python, .highlight-ipython3');
      wide.push({page: page ? page.dataset.page : '', input: input,
                 line: pre.textContent.split('\\n').find((l) => l.length > 90) || ''});
    }
  }
  return wide;
}"""

PRINT_CSS = """
@page { size: A4; margin: 18mm 16mm 16mm 16mm;
  @bottom-center { content: counter(page); font: 9pt 'DejaVu Sans', sans-serif; color: #444; }
}
@page front { @bottom-center { content: none; } }
%(running_heads)s
html, body { background: white !important; }
body { font-size: 10.5pt; }
.bd-article { max-width: none !important; padding: 0 !important; }
.front { page: front; }
.title-page { height: 250mm; display: flex; flex-direction: column; justify-content: center; }
.title-page h1 { font-size: 34pt; margin: 0 0 6mm 0; border: none; }
.title-page .subtitle { font-size: 15pt; color: #333; }
.title-page .colophon { margin-top: 30mm; font-size: 10pt; color: #555; }
.contents { break-before: page; }
.contents h1 { font-size: 20pt; }
.contents ol { list-style: none; padding-left: 0; }
.contents li { margin: 0.5mm 0; }
.contents .part { margin-top: 4mm; font-weight: 600; }
.contents li.section { padding-left: 8mm; font-size: 9.5pt; }
.contents a { display: flex; color: inherit !important; text-decoration: none; }
.contents a .title { flex: 0 1 auto; }
.contents a .dots { flex: 1 1 auto; border-bottom: 1px dotted #999; margin: 0 2mm 1.2mm; }
.contents a .number { flex: 0 0 auto; }
.book-page { break-before: page; }
.book-page h1 { font-size: 22pt; }
pre { white-space: pre !important; overflow: visible !important; font-size: 8.5px;
      line-height: 1.3; }
pre.wraps { white-space: pre-wrap !important; overflow-wrap: anywhere; }
figure, img, .cell_output img { break-inside: avoid; }
img { max-width: 100% !important; max-height: 225mm !important; object-fit: contain;
      height: auto; }
h1, h2, h3, h4, .admonition-title, figcaption { break-after: avoid; }
figcaption { break-before: avoid; }
details > summary { display: none !important; }
*, *::before, *::after { animation: none !important; transition: none !important; }
.cell, details, .cell_input, .cell_output { opacity: 1 !important; }
"""

# What paper has no use for: permalinks, copy buttons, launch/download buttons, scripts.
DROP = [
    "a.headerlink",
    "button",
    ".copybtn",
    ".thebe-launch-button",
    "script",
    ".prev-next-area",
    ".toggle-hidden",
]


@dataclass
class Page:
    """One page of the site as printed: which page, its number and title, its part."""

    name: str  # e.g. "chapters/tensors"
    part: str  # "front", "chapter", "section" (a page of a chapter), "exercises", "solutions"
    chapter: int | None  # the chapter's number, for chapters, their sections and exercises
    title: str = ""
    sections: list[tuple[str, str]] = field(default_factory=list)  # (anchor, title)

    @property
    def slug(self) -> str:
        """The prefix of every id of this page in the joined document."""
        return self.name.replace("/", "-")


def book_pages(site: Path) -> list[Page]:
    """The pages the PDF prints, in the book's order: the front page, each chapter (its
    section pages after it, where it has some) with its exercises, then every solution
    page (an appendix). The reference pages (execution statistics) stay on the site."""
    chapters, solutions = [], []
    number = 0
    for name, sections in toc_chapters(ROOT).items():
        folder = name.split("/")[0]
        if folder == "chapters":
            number += 1
            chapters.append(Page(name, "chapter", number))
            chapters += [Page(section, "section", number) for section in sections]
        elif folder == "exercises":
            chapters.append(Page(name, "exercises", number))
        elif folder == "solutions":
            solutions.append(Page(name, "solutions", None))
    front = [Page("intro", "front", None)]
    return [p for p in front + chapters + solutions if (site / f"{p.name}.html").is_file()]


def published_url() -> str:
    """Where the site is published (`html.baseurl` in _config.yml)."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    return config["html"]["baseurl"].rstrip("/") + "/"


def page_body(site: Path, page: Page, printed: dict[str, Page]):
    """The article of `page`, ready to print inside the joined document."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup((site / f"{page.name}.html").read_text(encoding="utf-8"), "html.parser")
    article = soup.select_one("article.bd-article") or soup.select_one("article")
    for selector in DROP:
        for element in article.select(selector):
            element.decompose()
    if page.part == "exercises":  # each solution is printed once, in the appendix
        for element in article.select(".solution"):
            element.decompose()
    for details in article.select("details"):
        details["open"] = ""
    heading = article.find("h1")
    page.title = re.sub(r"\s+", " ", heading.get_text()).strip() if heading else page.name
    for element in article.select("[id]"):
        element["id"] = f"{page.slug}--{element['id']}"
    for link in article.select("a[href]"):
        link["href"] = _relink(link["href"], page, printed)
    for image in article.select("img[src]"):
        image["src"] = _absolute(image["src"], page)
    page.sections = [
        (section["id"], re.sub(r"\s+", " ", h2.get_text()).strip())
        for section in article.select("section[id]")
        if (h2 := section.find("h2", recursive=False)) is not None
    ]
    return article


def _absolute(href: str, page: Page) -> str:
    """A path relative to `page` as a path from the site's root ("/_images/…")."""
    return posixpath.normpath(posixpath.join("/" + posixpath.dirname(page.name), href))


def _relink(href: str, page: Page, printed: dict[str, Page]) -> str:
    """Where a link of `page` points in the PDF: an anchor inside it, or a real address."""
    parts = urlsplit(href)
    if parts.scheme or href.startswith("mailto:"):
        return href
    if not parts.path:  # "#anchor" on the same page
        return f"#{page.slug}--{parts.fragment}" if parts.fragment else f"#{page.slug}"
    target = _absolute(parts.path, page).lstrip("/")
    name = target.removesuffix(".html")
    if target.endswith(".html") and name in printed:
        slug = printed[name].slug
        return f"#{slug}--{parts.fragment}" if parts.fragment else f"#{slug}"
    url = published_url() + target
    return f"{url}#{parts.fragment}" if parts.fragment else url


def head(site: Path, pages: list[Page]) -> str:
    """The joined document's head: the site's stylesheets and MathJax, and print rules."""
    from bs4 import BeautifulSoup

    # A page with math: the site loads MathJax only where a page needs it.
    for model in pages:
        html = (site / f"{model.name}.html").read_text(encoding="utf-8")
        if "window.MathJax" in html:
            break
    soup = BeautifulSoup(html, "html.parser")
    parts = ['<meta charset="utf-8">', f"<title>{TITLE}</title>"]
    for link in soup.head.select("link[rel=stylesheet]"):
        parts.append(f'<link rel="stylesheet" href="{_absolute(link["href"], model)}">')
    for script in soup.head.select("script"):
        source = script.get("src", "")
        text = script.string or ""
        if "mathjax" in source.lower():
            parts.append(f'<script defer src="{_absolute(source, model)}"></script>')
        elif text.lstrip().startswith("window.MathJax"):
            parts.append(f"<script>{text}</script>")
    heads = []
    for number, page in enumerate(pages):
        label = running_head(page)
        if label:
            heads.append(
                f"@page p{number} {{ @top-left {{ content: {css_string(label)}; "
                "font: 8.5pt 'DejaVu Sans', sans-serif; color: #555; } }"
            )
            heads.append(f".page-p{number} {{ page: p{number}; }}")
    css = PRINT_CSS.replace("%(running_heads)s", "\n".join(heads))
    parts.append(f"<style>{css}</style>")
    return "\n".join(parts)


def css_string(text: str) -> str:
    """`text` as a CSS string literal (CSS escapes are not JSON's: no \\u2014)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def running_head(page: Page) -> str:
    """The running head of a page: its chapter's number and title, or the appendix's."""
    if page.part == "front":
        return TITLE
    if page.part == "solutions":
        return f"Solutions — {page.title.removeprefix('Solutions: ')}"
    return page.title


def contents(pages: list[Page], numbers: dict[str, int]) -> str:
    """The printed contents: each page and its sections, with the page it starts on."""

    def entry(anchor: str, title: str, kind: str) -> str:
        number = numbers.get(anchor, "")
        return (
            f'<li class="{kind}"><a href="#{anchor}"><span class="title">{title}</span>'
            f'<span class="dots"></span><span class="number">{number}</span></a></li>'
        )

    items, appendix = [], False
    for page in pages:
        if page.part == "solutions" and not appendix:
            items.append('<li class="part">Appendix: worked solutions</li>')
            appendix = True
        if page.part == "section":  # a page of a chapter, listed under it
            items.append(entry(page.slug, page.title, "section"))
            continue
        items.append(entry(page.slug, page.title, "page"))
        if page.part == "chapter":
            items += [entry(anchor, title, "section") for anchor, title in page.sections]
    return f'<div class="contents front"><h1>Contents</h1><ol>{"".join(items)}</ol></div>'


def title_page(commit: str) -> str:
    """The first page: the book's title, what it is, and which build this is."""
    return (
        '<div class="title-page front">'
        f"<h1>{TITLE}</h1>"
        '<p class="subtitle">From tensors to your own autograd: a course in which every '
        "page is a notebook, and every notebook is a test.</p>"
        f'<p class="colophon">Printed from the site at {published_url()}'
        f"{f' (commit {commit})' if commit else ''}. Every link in this PDF jumps inside "
        "it, or to that site.</p></div>"
    )


def document(site: Path, pages: list[Page], numbers: dict[str, int], commit: str) -> str:
    """The whole book as one HTML document."""
    printed = {page.name: page for page in pages}
    bodies = []
    for number, page in enumerate(pages):
        article = page_body(site, page, printed)
        bodies.append(
            f'<div class="book-page page-p{number}" id="{page.slug}" data-page="{page.name}">'
            f"{article.decode_contents()}</div>"
        )
    return (
        f'<!DOCTYPE html><html lang="en" data-mode="light" data-theme="light"><head>'
        f"{head(site, pages)}</head><body><article class='bd-article'>"
        f"{title_page(commit)}{contents(pages, numbers)}{''.join(bodies)}</article></body></html>"
    )


def commit_id() -> str:
    """The short commit the book was built from, or "" outside a git checkout."""
    import subprocess

    result = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    return result.stdout.strip() if result.returncode == 0 else ""


def destinations(pdf: Path) -> dict[str, int]:
    """Named destination -> page number (1-based) in a PDF Chromium printed."""
    from pypdf import PdfReader

    reader = PdfReader(pdf)
    return {
        name.lstrip("/"): reader.get_destination_page_number(dest) + 1
        for name, dest in reader.named_destinations.items()
    }


def print_book(site: Path, pages: list[Page], out: Path, commit: str) -> dict:
    """Print the joined document twice (numbers, then the contents with them) to `out`."""
    from playwright.sync_api import sync_playwright

    folder = site / PRINT_DIR
    folder.mkdir(exist_ok=True)
    numbers: dict[str, int] = {}
    with serve(site) as base_url, sync_playwright() as playwright:
        host = urlsplit(base_url).netloc
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(color_scheme="light")
        context.route(
            "**/*",
            lambda route: (
                route.continue_()
                if urlsplit(route.request.url).netloc == host
                else route.abort("blockedbyclient")
            ),
        )
        tab = context.new_page()
        (folder / "book.html").write_text(document(site, pages, numbers, commit), encoding="utf-8")
        tab.goto(f"http://{host}/{PRINT_DIR}/book.html", wait_until="load")
        facts = tab.evaluate(READY_JS)
        if facts["math_errors"]:
            sys.exit(f"MathJax could not typeset: {facts['math_errors'][:5]}")
        if facts["broken_images"]:
            sys.exit(f"images that did not load: {facts['broken_images'][:5]}")
        tab.emulate_media(media="print")
        wide = tab.evaluate(FIT_CODE_JS)
        for _ in range(3):  # until the contents' page numbers are those it prints with
            tab.pdf(path=str(out), prefer_css_page_size=True, print_background=True)
            found = destinations(out)
            if found == numbers:
                break
            numbers = found
            tab.evaluate(CONTENTS_JS, contents(pages, numbers))  # no reload: math stays
        browser.close()
    return {"math": facts["math"], "wide_code": wide, "numbers": numbers}


def add_outline(pdf: Path, pages: list[Page], numbers: dict[str, int]) -> int:
    """Bookmarks: each page, and a chapter's sections under it (a section page under its
    chapter, and its own sections under it). Returns the page count."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(pdf))
    chapter = None
    for page in pages:
        if page.slug not in numbers:
            continue
        above = chapter if page.part == "section" else None
        parent = writer.add_outline_item(
            title=page.title, page_number=numbers[page.slug] - 1, parent=above
        )
        chapter = parent if page.part == "chapter" else chapter
        for anchor, title in page.sections if page.part in ("chapter", "section") else []:
            if anchor in numbers:
                writer.add_outline_item(title=title, page_number=numbers[anchor] - 1, parent=parent)
    writer.add_metadata({"/Title": TITLE, "/Author": "The Executable PyTorch authors"})
    writer.page_mode = "/UseOutlines"
    with pdf.open("wb") as out:
        writer.write(out)
    return len(writer.pages)


def main(argv=None) -> None:
    """Print the built book to one PDF with the tests' Chromium."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--path-output",
        type=Path,
        default=ROOT,
        help="the folder holding _build/ (as given to jupyter-book build --path-output)",
    )
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} not found: install Debian's chromium to print the book")
    build = args.path_output.resolve() / "_build"
    site = build / "html"
    if not (site / "index.html").is_file():
        sys.exit(f"no site in {site}: run make book first")
    pages = book_pages(site)
    pdf = site / PDF_NAME
    with tempfile.TemporaryDirectory() as folder:
        draft = Path(folder) / PDF_NAME
        try:
            facts = print_book(site, pages, draft, commit_id())
        finally:
            for leftover in (site / PRINT_DIR).glob("*"):
                leftover.unlink()
            (site / PRINT_DIR).rmdir()
        count = add_outline(draft, pages, facts["numbers"])
        pdf.write_bytes(draft.read_bytes())
    report = {
        "pages": count,
        "formulas": facts["math"],
        "printed": [
            {"page": p.name, "title": p.title, "starts": facts["numbers"].get(p.slug)}
            for p in pages
        ],
        "wide_code": facts["wide_code"],
    }
    (build / REPORT).write_text(json.dumps(report, indent=1), encoding="utf-8")
    wraps = [w for w in facts["wide_code"] if w["input"]]
    print(
        f"{pdf}: {count} pages, {facts['math']} formulas typeset, "
        f"{pdf.stat().st_size // 1024} KiB; code blocks that wrap: {len(wraps)} of code, "
        f"{len(facts['wide_code']) - len(wraps)} of output"
    )


if __name__ == "__main__":
    main()
