"""course.book: the toc walker that the site tests, the front page and the PDF share."""

from course.book import toc_chapters, toc_pages

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
