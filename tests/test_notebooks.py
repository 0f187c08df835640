"""The notebooks a learner opens on Colab or downloads (`make notebooks`, tools/notebooks.py,
tools/plain_markdown.py) read as notebooks written for them.

Each generated notebook's Markdown is read by a plain CommonMark renderer (markdown-it-py
in commonmark mode: no MyST, as Colab and plain Jupyter read it), which must find no
MyST syntax (directive fences, roles, targets, `%` comments, option lines), every
exercise of the page with its number and title, and every solution in a closed box that
holds its code, the very lines of the solution notebook; and no solution as a code cell.
No page holds a `{ref}` to another page, which JupyterLab cannot follow.
"""

import re
from itertools import pairwise

import jupytext
import nbformat
import pytest
from markdown_it import MarkdownIt

from course.book import ROOT
from tools import notebooks
from tools import plain_markdown as plain

PAGES = notebooks.pages()
COMMONMARK = MarkdownIt("commonmark")
ROLE = re.compile(r"\{[\w:.-]+\}$")
MYST_LINES = {
    "a target": re.compile(r"^\([\w.:-]+\)=\s*$"),
    "a % comment": re.compile(r"^%"),
    "an option line": re.compile(r"^:[\w-]+:(\s|$)"),
    "a colon fence": re.compile(r"^:::"),
}


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, nbformat.NotebookNode]:
    """Every page's learner notebook, as `make notebooks` writes it."""
    out = tmp_path_factory.mktemp("notebooks")
    notebooks.write_all(out)
    return {page: nbformat.read(out / f"{page}.ipynb", as_version=4) for page in PAGES}


def markdown(notebook) -> str:
    """The Markdown of a notebook, its cells one after the other."""
    return "\n\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")


def myst_leftovers(text: str) -> list[str]:
    """The MyST syntax that a CommonMark renderer shows as text or code in `text`."""
    found = []
    for token in COMMONMARK.parse(text):
        if token.type == "fence" and token.info.startswith("{"):
            found.append(f"a directive fence: {token.info}")
        if token.type != "inline":
            continue
        for before, after in pairwise(token.children):
            if (
                before.type == "text"
                and after.type == "code_inline"
                and ROLE.search(before.content)
            ):
                found.append(f"a role: {ROLE.search(before.content)[0]}`{after.content}`")
        for line in token.content.split("\n"):
            found += [f"{kind}: {line}" for kind, rx in MYST_LINES.items() if rx.match(line)]
    return found


def source_directives(page: str, name: str) -> list:
    """The `name` directives of a page's MyST source, parsed by MyST."""
    tokens = plain.parser().parse((ROOT / f"{page}.md").read_text(encoding="utf-8"))
    return [plain.parse(t, page) for t in tokens if plain.directive_name(t) == name]


def solution_boxes(text: str) -> list[tuple[str, str]]:
    """Each `<details>` box of `text` as (its summary, the code of its code blocks)."""
    boxes, summary, code = [], None, None
    for token in COMMONMARK.parse(text):
        if token.type == "html_block" and token.content.startswith("<details>"):
            found = re.search(r"<summary>(.*?)</summary>", token.content)
            summary, code = (found[1] if found else ""), ""
        elif token.type == "html_block" and token.content.startswith("</details>"):
            boxes.append((summary, code))
            summary = code = None
        elif token.type == "fence" and code is not None:
            code += token.content
    return boxes


def regions(name: str) -> dict[str, list[str]]:
    """The stripped lines of each solution region of solutions/<name>.md, by exercise."""
    text = (ROOT / "solutions" / f"{name}.md").read_text(encoding="utf-8")
    found: dict[str, list[str]] = {}
    for task, body in re.findall(
        r"# BEGIN SOLUTION (\S+)\n(.*?)\n[ \t]*# END SOLUTION", text, re.S
    ):
        exercise = re.match(r"\d+\.\d+", task)[0]
        found.setdefault(exercise, []).extend(line.strip() for line in body.split("\n"))
    return {task: [line for line in lines if line] for task, lines in found.items()}


@pytest.mark.parametrize("page", PAGES)
def test_no_myst_left(written, page):
    leftovers = myst_leftovers(markdown(written[page]))
    assert not leftovers, f"{page}.ipynb shows MyST as text: {leftovers}"


@pytest.mark.parametrize("page", PAGES)
def test_every_exercise_has_its_number_and_title(written, page):
    titles = [f"Exercise {d.arguments[0]}" for d in source_directives(page, "exercise")]
    tokens = COMMONMARK.parse(markdown(written[page]))
    headings = [
        inline.content
        for opening, inline in pairwise(tokens)
        if opening.type == "heading_open" and inline.content.startswith("Exercise ")
    ]
    assert all(re.match(r"Exercise \d+\.\d+ — \w", title) for title in titles), titles
    assert headings == titles, f"{page}.ipynb: exercise headings {headings}, expected {titles}"


@pytest.mark.parametrize("page", [p for p in PAGES if p.startswith("exercises/")])
def test_every_solution_is_a_closed_box_with_its_code(written, page):
    name = page.split("/")[1]
    boxes = solution_boxes(markdown(written[page]))
    expected = regions(name)
    assert len(boxes) == len(source_directives(page, "solution")) == len(expected) > 0
    for summary, code in boxes:
        task = re.fullmatch(r"Solution to Exercise (\d+\.\d+)", summary)
        assert task, f"{page}.ipynb: a solution box titled {summary!r}"
        shown = [line.strip() for line in code.split("\n")]
        missing = [line for line in expected[task[1]] if line not in shown]
        assert code.strip(), f"{page}.ipynb: {summary} holds no code"
        assert not missing, f"{page}.ipynb: {summary} lacks the lines {missing}"


@pytest.mark.parametrize("page", PAGES)
def test_the_code_cells_are_the_page_s_own(written, page):
    """No solution became a code cell ("Run All" would overwrite the learner's function),
    and no cell is lost: after the install cell, the code cells are the page's."""
    ours = [c.source for c in jupytext.read(ROOT / f"{page}.md").cells if c.cell_type == "code"]
    cells = written[page].cells
    assert cells[0].source == notebooks.install_cell().source
    assert [c.source for c in cells[1:] if c.cell_type == "code"] == ours


@pytest.mark.parametrize("page", [p for p in PAGES if p.startswith("exercises/")])
def test_no_test_only_cell_where_a_learner_works(written, page):
    """Only the install cell is tagged remove-cell (so that no built page shows it)."""
    tagged = [
        i for i, c in enumerate(written[page].cells) if "remove-cell" in c.metadata.get("tags", [])
    ]
    assert tagged == [0], f"{page}.ipynb: test-only cells at {tagged[1:]}"


@pytest.mark.parametrize("page", [p for p in PAGES if p.startswith("chapters/")])
def test_test_only_cells_stay_collapsed(written, page):
    hidden = [
        c.metadata.get("jupyter", {}).get("source_hidden")
        for c in written[page].cells[1:]
        if "remove-cell" in c.metadata.get("tags", [])
    ]
    assert hidden, f"{page}.ipynb has no test-only cell"
    assert all(hidden), f"{page}.ipynb: test-only cells shown: {hidden}"


def test_a_cross_reference_links_to_the_published_anchor():
    page = plain.Page("exercises/tensors", "exercises")
    text = plain.convert("See {ref}`mnist` and {ref}`the answers <solutions-tensors>`.", page)
    site = "https://executable-pytorch.github.io/course"
    assert text == (
        f"See [Neural networks on MNIST]({site}/chapters/mnist.html#mnist) and "
        f"[the answers]({site}/solutions/tensors.html#solutions-tensors)."
    )
    linked = plain.convert("[the worked solutions](../solutions/tensors.md)", page)
    assert linked == f"[the worked solutions]({site}/solutions/tensors.html)"


def test_myst_without_a_plain_form_is_an_error():
    page = plain.Page("chapters/tensors", "chapters")
    unknown_option = "```{exercise} 1.1 — A title\n:labl: exercises-tensors-1\n\nText\n```"
    for text in ("```{figure} x.png\n```", "{eq}`x`", "Term\n: definition", unknown_option):
        with pytest.raises(plain.ConversionError):
            plain.convert(text, page)


def cross_page_refs(text: str, page: str) -> list[str]:
    """The labels of the `{ref}`s in MyST `text` (directive bodies included) that lead to
    another page than `page`: jupyterlab-myst resolves none of them."""
    found = []
    for token in plain.parser().parse(text):
        if plain.directive_name(token) not in (None, "code-cell", "literalinclude", "include"):
            found += cross_page_refs(token.content, page)
        for child in token.children or []:
            if child.type == "myst_role" and child.meta["name"] == "ref":
                label = child.content.rsplit("<", 1)[-1].rstrip(">").strip()
                if plain.targets()[label].page != page:
                    found.append(label)
    return found


@pytest.mark.parametrize("page", PAGES)
def test_links_to_other_pages_are_links_jupyterlab_opens(page):
    """A `{ref}` to another page shows as "Cross Reference Not Found" in JupyterLab; a
    relative link to its `.md` opens it there, and the site renders it the same."""
    refs = cross_page_refs((ROOT / f"{page}.md").read_text(encoding="utf-8"), page)
    assert not refs, f"{page}.md: write [title](../folder/page.md), not {{ref}}, for {refs}"
