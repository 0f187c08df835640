"""Every chapter, exercise and solution page as the notebook a learner opens (.ipynb):
on Colab, in the site's download menu, in plain Jupyter.

    python tools/notebooks.py OUT          # `make notebooks` writes _build/notebooks/

OUT/<folder>/<page>.ipynb mirrors the .md sources, as a learner opens them: plain Jupyter
Markdown, no MyST (tools/plain_markdown.py), solutions in closed boxes that hold their
code, the code of test-only cells (tagged `remove-cell`) and of cells the site shows
folded (`hide-input`) collapsed. Each notebook starts with one more cell, tagged
`remove-cell` (a built page never shows it), that installs the course's helpers
(`import course`) of the commit it was generated from when the notebook runs on Colab,
and elsewhere says in one line how to install them if they are missing. Outside the
repository MNIST is not vendored: `check_mnist` says so and torchvision downloads it. The
deploy workflow pushes OUT to the `colab` branch, where each page's "Open in Colab" button
points; the site's download menu offers the same notebook, with a chapter's outputs
(_ext/colab_button.py).
"""

import argparse
import subprocess
import sys
import warnings
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from course.book import toc_pages  # noqa: E402
from tools.plain_markdown import Page, config, convert, repository_url  # noqa: E402

FOLDERS = ("chapters", "exercises", "solutions")
"""The pages that are notebooks a learner runs (not the front page or the reference)."""
TEST_ONLY = "remove-cell"
COLLAPSED = {TEST_ONLY, "hide-input"}
"""Code cells whose code is collapsed: test-only cells, and those the site shows folded."""


class OutputsMismatch(ValueError):
    """An executed notebook's code cells are not the page's."""


def commit() -> str:
    """The commit the notebooks are generated from (`git rev-parse HEAD`). Outside a git
    checkout (a downloaded archive) there is none: the book's branch, with a warning."""
    run = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if run.returncode == 0:
        return run.stdout.strip()
    branch = config()["repository"]["branch"]
    warnings.warn(
        f"{ROOT} is no git checkout ({run.stderr.strip()}): the notebooks' Colab cell "
        f"installs the course's helpers of the branch {branch}, not of this commit",
        stacklevel=2,
    )
    return branch


def install_source() -> str:
    """The first cell's code: on Colab, `pip install` the course's helpers of the generating
    commit (COURSE_PIP_SPEC replaces where they come from, e.g. a wheel in the tests);
    elsewhere, a one-line error that says how to install them if they are missing."""
    url = repository_url()
    spec = f"git+{url}@{commit()}"
    return f'''# On Colab: install the course's helpers (`import course`) of this notebook's commit.
import importlib.util
import os
import subprocess
import sys

COURSE = "{spec}"
if "google.colab" in sys.modules:
    spec = os.environ.get("COURSE_PIP_SPEC", COURSE)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", spec], check=True)
    importlib.invalidate_caches()
elif importlib.util.find_spec("course") is None:
    raise ModuleNotFoundError(
        "The course's helpers (`import course`) are not installed: run "
        "`pip install -e .` in a clone of {url}, "
        "or open this notebook on Colab, where this cell installs them."
    )'''


def install_cell() -> nbformat.NotebookNode:
    """The first cell of every learner's notebook (see `install_source`), tagged
    `remove-cell` so that a built page never shows it."""
    return nbformat.v4.new_code_cell(install_source(), metadata={"tags": [TEST_ONLY]})


def learner_notebook(
    page: str, executed: nbformat.NotebookNode | None = None
) -> nbformat.NotebookNode:
    """The notebook of `page` (e.g. "chapters/tensors") as a learner opens it: the install
    cell, then its cells in plain Jupyter Markdown, test-only cells collapsed. Without
    outputs, or with those of `executed` (the same page run), cell for cell."""
    notebook = jupytext.read(ROOT / f"{page}.md")
    notebook.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    state = Page(page, page.rsplit("/", 1)[0] if "/" in page else "")
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            cell.source = convert(cell.source, state)
        elif cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            if COLLAPSED & set(cell.metadata.get("tags", [])):
                cell.metadata.setdefault("jupyter", {})["source_hidden"] = True
    if executed is not None:
        copy_outputs(executed, notebook, page)
    notebook.cells.insert(0, install_cell())
    for number, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{number}"
    nbformat.validate(notebook)
    return notebook


def copy_outputs(executed, notebook, page: str) -> None:
    """Give each code cell of `notebook` the outputs of the same cell in `executed`."""
    ran = [c for c in executed.cells if c.cell_type == "code"]
    cells = [c for c in notebook.cells if c.cell_type == "code"]
    if [c.source for c in ran] != [c.source for c in cells]:
        raise OutputsMismatch(f"{page}: the executed notebook's code cells differ from the page's")
    for cell, run in zip(cells, ran, strict=True):
        cell.outputs, cell.execution_count = run.get("outputs", []), run.get("execution_count")


def pages() -> list[str]:
    """The chapter, exercise and solution pages, in the toc's order."""
    return [page for page in toc_pages(ROOT) if page.split("/")[0] in FOLDERS]


def write_all(out: Path) -> list[Path]:
    """Write every page's notebook under `out`; return their paths."""
    written = []
    for page in pages():
        path = out / f"{page}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(nbformat.writes(learner_notebook(page)) + "\n", encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Write the notebooks into the folder given on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="folder for the .ipynb files")
    args = parser.parse_args(argv)
    written = write_all(args.out)
    print(f"{len(written)} notebooks in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
