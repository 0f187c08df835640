"""course.book: the toc walker that the site tests, the front page and the PDF share, and
the local server they read the site from."""

import socket
import struct
import time
from urllib.parse import urlsplit

from course.book import serve, toc_chapters, toc_pages

TOC = """\
format: jb-book
root: intro
parts:
  - numbered: true
    chapters:
      - file: chapters/one.md
      - file: chapters/two
        sections:
          - file: chapters/two-a
            sections:
              - file: chapters/two-a-deep
          - file: chapters/two-b
  - chapters:
      - file: exercises/two
      - url: https://example.org
"""


def test_sections_nest_under_their_chapter_in_reading_order(tmp_path):
    (tmp_path / "_toc.yml").write_text(TOC)
    assert toc_pages(tmp_path) == [
        "intro",
        "chapters/one",
        "chapters/two",
        "chapters/two-a",
        "chapters/two-a-deep",
        "chapters/two-b",
        "exercises/two",
    ]
    assert toc_chapters(tmp_path) == {
        "chapters/one": [],
        "chapters/two": ["chapters/two-a", "chapters/two-a-deep", "chapters/two-b"],
        "exercises/two": [],
    }


def test_the_book_lists_each_page_once_chapters_first():
    chapters = toc_chapters()
    pages = [page for chapter, sections in chapters.items() for page in (chapter, *sections)]
    assert pages == toc_pages()[1:], "the chapters and their sections are the toc, root aside"
    assert chapters["chapters/mnist"][0] == "chapters/mnist-data"


def test_a_client_that_hangs_up_mid_transfer_prints_nothing(tmp_path, capfd):
    """Chromium closes a tab while a file is still being sent: the server says nothing
    (it printed a BrokenPipeError traceback)."""
    (tmp_path / "big.bin").write_bytes(b"\0" * 64 * 2**20)
    with serve(tmp_path) as url:
        address = urlsplit(url)
        for _ in range(3):
            client = socket.create_connection((address.hostname, address.port))
            client.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            client.recv(1024)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()  # a reset, mid-transfer
        time.sleep(0.5)
    assert "Traceback" not in capfd.readouterr().err
