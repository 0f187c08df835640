"""Every chapter, exercise and solution page as a Jupyter notebook (.ipynb), for Colab.

    python tools/notebooks.py OUT          # `make notebooks` writes _build/notebooks/

OUT/<folder>/<page>.ipynb mirrors the .md sources. Each notebook starts with one more cell,
tagged `remove-cell` (a built page never shows it), that installs the course's helpers
(`import course`) when the notebook runs on Colab and does nothing anywhere else. Outside
the repository MNIST is not vendored: `check_mnist` says so and torchvision downloads it.
The deploy workflow pushes OUT to the `colab` branch, where each page's "Open in Colab"
button points (_ext/colab_button.py).
"""

import argparse
import sys
from pathlib import Path

import jupytext
import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from course.book import toc_pages  # noqa: E402

FOLDERS = ("chapters", "exercises", "solutions")
"""The pages that are notebooks a learner runs (not the front page or the reference)."""


def repository_url() -> str:
    """The repository's address, from `_config.yml`."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    return config["repository"]["url"].rstrip("/")


def install_cell() -> nbformat.NotebookNode:
    """The first cell: on Colab only, `pip install` the course package from its repository
    (COURSE_PIP_SPEC replaces where it comes from, e.g. a wheel in tests/test_colab.py)."""
    spec = f"git+{repository_url()}@main"
    source = f'''# On Colab only: install the course's helpers (`import course`).
import importlib
import os
import subprocess
import sys

if "google.colab" in sys.modules:
    spec = os.environ.get("COURSE_PIP_SPEC", "{spec}")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", spec], check=True)
    importlib.invalidate_caches()'''
    return nbformat.v4.new_code_cell(source, metadata={"tags": ["remove-cell"]})


def pages() -> list[str]:
    """The chapter, exercise and solution pages, in the toc's order."""
    return [page for page in toc_pages() if page.split("/")[0] in FOLDERS]


def to_ipynb(page: str) -> nbformat.NotebookNode:
    """The `.ipynb` of `page` for Colab: its cells after the Colab-only install cell."""
    notebook = jupytext.read(ROOT / f"{page}.md")
    notebook.metadata.pop("jupytext", None)
    notebook.metadata["kernelspec"] = {
        "display_name": "Python 3",
        "language": "python",
        "name": "python3",
    }
    notebook.metadata["language_info"] = {"name": "python"}
    notebook.cells.insert(0, install_cell())
    for number, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{number}"
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.validate(notebook)
    return notebook


def write_all(out: Path) -> list[Path]:
    """Write every page's notebook under `out`; return their paths."""
    written = []
    for page in pages():
        path = out / f"{page}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(nbformat.writes(to_ipynb(page)) + "\n", encoding="utf-8")
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
