"""tools/pdf.py without a built site: which pages it prints as what, and the outline of a
chapter that is several pages (the printed PDF itself: tests/site/test_pdf.py)."""

from pypdf import PdfReader, PdfWriter

from course.book import toc_pages
from tools import pdf


def test_a_chapter_s_section_pages_follow_it_under_its_number(tmp_path):
    for page in toc_pages():
        (tmp_path / f"{page}.html").parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f"{page}.html").write_text("<article></article>")
    printed = {page.name: page for page in pdf.book_pages(tmp_path)}
    assert (printed["chapters/mnist"].part, printed["chapters/mnist"].chapter) == ("chapter", 2)
    assert (printed["chapters/mnist-cnn"].part, printed["chapters/mnist-cnn"].chapter) == (
        "section",
        2,
    )
    assert printed["chapters/autograd"].chapter == 3, "a section page is no chapter of its own"
    contents = pdf.contents(list(printed.values()), {})
    assert '<li class="section"><a href="#chapters-mnist-data">' in contents


def outline_titles(items, depth=0):
    """(depth, title) of each bookmark, in order."""
    found = []
    for item in items:
        if isinstance(item, list):
            found += outline_titles(item, depth + 1)
        else:
            found.append((depth, item.title))
    return found


def test_section_pages_nest_under_their_chapter_in_the_outline(tmp_path):
    page = pdf.Page
    pages = [
        page("chapters/tensors", "chapter", 1, "1. Tensors", [("views", "Views")]),
        page("chapters/mnist", "chapter", 2, "2. MNIST", []),
        page("chapters/mnist-data", "section", 2, "2.1. The data", [("batches", "Batches")]),
        page("chapters/mnist-cnn", "section", 2, "2.2. A CNN", []),
        page("exercises/mnist", "exercises", 2, "Exercises: MNIST", []),
    ]
    numbers = {p.slug: n for n, p in enumerate(pages, start=1)} | {"views": 1, "batches": 3}
    path = tmp_path / "book.pdf"
    writer = PdfWriter()
    for _ in pages:
        writer.add_blank_page(100, 100)
    writer.write(path)
    pdf.add_outline(path, pages, numbers)
    assert outline_titles(PdfReader(path).outline) == [
        (0, "1. Tensors"),
        (1, "Views"),
        (0, "2. MNIST"),
        (1, "2.1. The data"),
        (2, "Batches"),
        (1, "2.2. A CNN"),
        (0, "Exercises: MNIST"),
    ]
