"""The whole book as one PDF, printed by the Chromium the site tests use, offline.

    python tools/pdf.py                       # the site of this repository, _build/html
    python tools/pdf.py --path-output DIR     # a book built with --path-output DIR

Run it after `make book`. Each page of the site, in the order of ``_toc.yml``, is served
on 127.0.0.1 and opened in headless Chromium with every request off 127.0.0.1 blocked;
once MathJax has typeset and every image has loaded, hidden cells (the solutions) are
opened and the page is printed to A4 with Chromium's print styles. The pages are joined
into one PDF, with a bookmark per page, next to the site:
``<output>/_build/html/executable-pytorch.pdf``, where the front page links to it.

(A single-page build, ``--builder singlehtml``, would be simpler, but myst-nb's hidden
cells have no writer for that builder: the build stops with "unknown node type:
HideCodeCellNode".)

It stops with a message, and writes no PDF, when a formula shows a MathJax error or an
image does not load.
"""

import argparse
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from course.book import CHROMIUM, CHROMIUM_ARGS, ROOT, serve, toc_pages

PDF_NAME = "executable-pytorch.pdf"

READY_JS = """async () => {
  document.querySelectorAll('details').forEach((d) => { d.open = true; });
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

# Print what a reader of paper needs: the article, not the site around it; code that
# wraps instead of being cut at the margin; figures kept whole on a page.
PRINT_CSS = """
@page { size: A4; margin: 16mm 14mm; }
.bd-sidebar-primary, .bd-sidebar-secondary, .bd-header-article, .prev-next-area,
.bd-footer, .bd-footer-content, .bd-footer-article, .headerlink, .search-button,
.theme-switch-button, #pst-back-to-top, .copybtn, .thebe-launch-button { display: none !important; }
.bd-main .bd-content .bd-article-container { max-width: none !important; }
pre { white-space: pre-wrap !important; overflow-wrap: anywhere; }
img { break-inside: avoid; max-width: 100% !important; }
h1, h2, h3 { break-after: avoid; }
"""


def print_pages(site: Path, pages: list[str], folder: Path) -> list[tuple[str, Path, int]]:
    """Print each page of ``site`` to its own PDF in ``folder``.

    Returns (title, file, formulas) for each page.
    """
    from playwright.sync_api import sync_playwright

    printed = []
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
        for number, page in enumerate(pages):
            tab.goto(f"http://{host}/{page}.html", wait_until="load")
            tab.add_style_tag(content=PRINT_CSS)
            facts = tab.evaluate(READY_JS)
            if facts["math_errors"]:
                sys.exit(f"{page}: MathJax could not typeset: {facts['math_errors'][:5]}")
            if facts["broken_images"]:
                sys.exit(f"{page}: images that did not load: {facts['broken_images'][:5]}")
            tab.emulate_media(media="print")
            path = folder / f"{number:03d}.pdf"
            tab.pdf(
                path=str(path),
                format="A4",
                print_background=True,
                margin={"top": "16mm", "bottom": "16mm", "left": "14mm", "right": "14mm"},
            )
            title = tab.locator("article h1").first.inner_text().strip().rstrip("#")
            printed.append((title, path, facts["math"]))
        browser.close()
    return printed


def join(printed: list[tuple[str, Path, int]], pdf: Path) -> int:
    """Join the pages' PDFs into ``pdf``, one bookmark per page; return the page count."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    for title, path, _ in printed:
        start = len(writer.pages)
        writer.append(str(path))
        writer.add_outline_item(title=title, page_number=start)
    writer.add_metadata({"/Title": "Executable PyTorch"})
    pdf.parent.mkdir(parents=True, exist_ok=True)
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
    site = args.path_output.resolve() / "_build" / "html"
    if not (site / "index.html").is_file():
        sys.exit(f"no site in {site}: run make book first")
    with tempfile.TemporaryDirectory() as folder:
        printed = print_pages(site, toc_pages(ROOT), Path(folder))
        pdf = site / PDF_NAME
        count = join(printed, pdf)
    formulas = sum(n for _, _, n in printed)
    print(f"{pdf}: {count} pages, {formulas} formulas typeset, {pdf.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
