"""The book's structure, read from its `_toc.yml`: the one walker of the toc.

The site tests, the lint tests and `tools/pdf.py` all ask this module which pages the
book has, in reading order, so that a page added to (or nested in) the toc is seen by
every one of them. It also holds what building and testing the book share: the
execution settings, the browser, the environment of notebooks run side by side, and a
local server for the built site.
"""

import functools
import http.server
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
EXECUTION_RECORD = "notebook-dependencies.json"
"""The file, in the notebook cache, where `tools/execute.py` records for each notebook what
its outputs came from and when it ran; `_ext/course_site.py` reads the times."""


def toc_pages(book: Path = ROOT) -> list[str]:
    """Every page of `book/_toc.yml` in reading order, root first, without suffix.

    Handles parts, chapters and nested `sections` at any depth; a `file` given with
    its suffix (`chapters/tensors.md`) is listed without it. Entries that are not files
    (`url`, `glob`) are skipped.
    """
    path = book / "_toc.yml"
    if not path.is_file():
        raise FileNotFoundError(f"no _toc.yml in {book}: is it the book's folder?")
    toc = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(toc, dict) or "root" not in toc:
        raise ValueError(f"{path} has no 'root' entry: not a Jupyter Book toc")
    pages = [_strip(toc["root"])]

    def walk(entry):
        if isinstance(entry, dict):
            if "file" in entry:
                pages.append(_strip(entry["file"]))
            for key in ("parts", "chapters", "sections"):
                walk(entry.get(key, []))
        elif isinstance(entry, list):
            for item in entry:
                walk(item)

    walk(toc)
    return pages


def toc_chapters(book: Path = ROOT) -> dict[str, list[str]]:
    """Each chapter-level page of `book/_toc.yml` (the root and sections excluded), in
    reading order, mapped to the pages nested under it as `sections`, at any depth, in
    reading order (none for most pages). A chapter that is several pages is its landing
    page here, its sections in the list."""
    toc = yaml.safe_load((book / "_toc.yml").read_text(encoding="utf-8"))
    chapters = {}

    def nested(entry) -> list[str]:
        pages = []
        for section in entry.get("sections", []):
            if "file" in section:
                pages.append(_strip(section["file"]))
            pages += nested(section)
        return pages

    for part in toc.get("parts", [{"chapters": toc.get("chapters", [])}]):
        for chapter in part.get("chapters", []):
            if "file" in chapter:
                chapters[_strip(chapter["file"])] = nested(chapter)
    return chapters


def _strip(file: str) -> str:
    path = Path(file)
    return str(path.with_suffix("")) if path.suffix in (".md", ".ipynb", ".rst") else file


def execution_settings(book: Path = ROOT) -> dict:
    """The `execute:` settings of `book/_config.yml`: the one place the per-cell timeout is set.

    The book build, `tools/execute.py` and the notebook tests (nbval) all use it.
    """
    config = yaml.safe_load((book / "_config.yml").read_text(encoding="utf-8"))
    return config.get("execute", {})


# The browser that renders the book (the site tests, and the PDF of tools/pdf.py): Debian's
# Chromium (or the one `COURSE_CHROMIUM` names), headless, offline, with no first-run or
# update traffic.
CHROMIUM = Path(os.environ.get("COURSE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


# `make test` runs notebooks side by side (tools/execute.py, pytest-xdist), so there are
# more busy threads than cores. By default the threads of torch's pool (OpenMP) and of
# NumPy's BLAS (OpenBLAS) spin while they wait for work, on cores that the other
# notebooks need. Measured on 2 cores: with two notebooks side by side, the check that
# trains one epoch took 9 s in each instead of 2 s; the mini-autograd's training beside
# one busy process took 2.8 s instead of 1.5 s. Waiting passively (OpenMP) and spinning
# 2^4 cycles at most (OpenBLAS) changes no result, only who gets the cores.
SIDE_BY_SIDE_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": "4"}


def run_side_by_side() -> None:
    """Set `SIDE_BY_SIDE_ENV` in this process, for the kernels and workers it starts
    (a value already set is kept)."""
    for name, value in SIDE_BY_SIDE_ENV.items():
        os.environ.setdefault(name, value)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        """Serve quietly: no line per request."""


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        """A browser that closes a tab mid-transfer is no error (Chromium does, when a test
        has read what it needs); anything else is reported as usual."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve `folder` on 127.0.0.1 (a free port) in a thread; yields its base URL.

    The site tests, `tools/pdf.py` and the Colab stand-in's MNIST mirror use it."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = _QuietServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
