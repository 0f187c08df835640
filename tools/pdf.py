"""The whole book as one PDF, printed by the Chromium the site tests use, offline.

    python tools/pdf.py                       # the book of this repository, in _build/
    python tools/pdf.py --path-output DIR     # a book built with --path-output DIR

Steps: Jupyter Book builds the book as one HTML page (``--builder singlehtml``; the
notebooks' outputs come from the jupyter-cache the HTML build filled, so nothing is
executed again when the site is built); the page is served on 127.0.0.1 and opened in
headless Chromium with every request off 127.0.0.1 blocked; once MathJax has typeset and
every image has loaded, the page is printed to A4 with Chromium's print styles. The PDF
goes next to the site, ``<output>/_build/html/executable-pytorch.pdf``, where the front
page links to it.

It stops with a message, and writes no PDF, when the build fails, when a formula shows a
MathJax error, or when an image does not load.
"""

import argparse
import functools
import http.server
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

from course.book import CHROMIUM, CHROMIUM_ARGS, ROOT

PDF_NAME = "executable-pytorch.pdf"

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


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


def build_single_page(output: Path) -> Path:
    """Build the book as one HTML page under ``output``; return that page."""
    command = [
        str(Path(sys.executable).parent / "jupyter-book"),
        "build",
        str(ROOT),
        "--builder",
        "singlehtml",
        "--path-output",
        str(output),
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    page = output / "_build" / "singlehtml" / "index.html"
    if result.returncode != 0 or not page.is_file():
        sys.exit(f"the single-page build failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return page


def print_to_pdf(page: Path, pdf: Path) -> dict:
    """Open ``page`` in Chromium from a local server and print it to ``pdf``."""
    from playwright.sync_api import sync_playwright

    handler = functools.partial(QuietHandler, directory=str(page.parent))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{httpd.server_address[1]}"
    try:
        with sync_playwright() as playwright:
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
            tab.goto(f"http://{host}/{page.name}", wait_until="load")
            tab.add_style_tag(content=PRINT_CSS)
            facts = tab.evaluate(READY_JS)
            if facts["math_errors"]:
                sys.exit(f"MathJax could not typeset: {facts['math_errors'][:5]}")
            if facts["broken_images"]:
                sys.exit(f"images that did not load: {facts['broken_images'][:5]}")
            tab.emulate_media(media="print")
            pdf.parent.mkdir(parents=True, exist_ok=True)
            tab.pdf(
                path=str(pdf),
                format="A4",
                print_background=True,
                display_header_footer=True,
                header_template="<span></span>",
                footer_template=(
                    '<div style="font-size:8px;width:100%;text-align:center">'
                    '<span class="pageNumber"></span> / <span class="totalPages"></span></div>'
                ),
                margin={"top": "16mm", "bottom": "16mm", "left": "14mm", "right": "14mm"},
            )
            browser.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
    return facts


def main(argv=None) -> None:
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
    output = args.path_output.resolve()
    page = build_single_page(output)
    pdf = output / "_build" / "html" / PDF_NAME
    facts = print_to_pdf(page, pdf)
    print(f"{pdf}: {pdf.stat().st_size // 1024} KiB, {facts['math']} formulas typeset")


if __name__ == "__main__":
    main()
