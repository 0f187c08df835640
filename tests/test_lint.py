"""Lint: one uniform notebook header, ipython3 cells, ruff over code and notebooks."""

import re
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest

from course.book import toc_pages

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIRS = ("chapters", "exercises", "solutions")
NOTEBOOKS = sorted(p for d in NOTEBOOK_DIRS for p in (ROOT / d).glob("*.md"))
HEADER = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
    format_version: 0.13
    jupytext_version: 1.19.6
kernelspec:
  display_name: Python 3 (ipykernel)
  language: python
  name: python3
---
"""


def ids(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


def test_notebooks_exist():
    assert len(NOTEBOOKS) >= 3, "no notebooks found under chapters/, exercises/, solutions/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_uniform_header(path):
    text = path.read_text(encoding="utf-8")
    assert text.startswith(HEADER), (
        f"{path.relative_to(ROOT)} does not start with the course's jupytext header; "
        "copy it from tests/test_lint.py (HEADER)"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_code_cells_are_ipython3(path):
    fences = re.findall(r"^```\{code-cell\}(.*)$", path.read_text(encoding="utf-8"), re.M)
    assert fences, f"{path.relative_to(ROOT)} has no code cell"
    bad = [f for f in fences if f.strip() != "ipython3"]
    assert not bad, f"{path.relative_to(ROOT)}: code cells must be `{{code-cell}} ipython3`: {bad}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_label_and_title(path):
    """Each page opens with its label and title, right after the header."""
    body = path.read_text(encoding="utf-8")[len(HEADER) :].lstrip()
    body = re.sub(r"^%.*\n+", "", body)  # the generated-file banner of an exercise
    folder, name = path.parent.name, path.stem
    label = name if folder == "chapters" else f"{folder}-{name}"
    assert body.startswith(f"({label})=\n# "), (
        f"{path.relative_to(ROOT)} must open with `({label})=` and a `# Title`"
    )


def toc_files() -> set[str]:
    return set(toc_pages(ROOT))


def test_toc_lists_every_notebook():
    listed = toc_files()
    on_disk = {str(p.relative_to(ROOT).with_suffix("")) for p in NOTEBOOKS}
    assert on_disk <= listed, f"notebooks missing from _toc.yml: {sorted(on_disk - listed)}"
    missing = {f for f in listed if not (ROOT / f"{f}.md").exists()}
    assert not missing, f"_toc.yml lists files that do not exist: {sorted(missing)}"


def test_chapters_exercises_solutions_share_names():
    names = {d: {p.stem for p in (ROOT / d).glob("*.md")} for d in NOTEBOOK_DIRS}
    assert names["exercises"] == names["solutions"], "every solution generates one exercise"


def run_ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True
    )


def test_ruff_check_python():
    result = run_ruff("check", "course", "tests", "tools", "_ext")
    assert result.returncode == 0, f"ruff check found problems:\n{result.stdout}{result.stderr}"


def test_ruff_format_python():
    result = run_ruff("format", "--check", "course", "tests", "tools", "_ext")
    assert result.returncode == 0, f"run `ruff format course tests tools`:\n{result.stdout}"


def test_ruff_check_notebook_code(tmp_path):
    """ruff over every notebook's code cells (converted to .ipynb, which ruff reads)."""
    for path in NOTEBOOKS:
        target = tmp_path / path.parent.name / f"{path.stem}.ipynb"
        target.parent.mkdir(exist_ok=True)
        jupytext.write(jupytext.read(path), target)
    result = run_ruff(
        "check",
        "--config",
        str(ROOT / "pyproject.toml"),
        "--ignore",
        # PT is pytest style, for test files: a notebook's asserts are claims, not tests.
        # A notebook's small helpers are explained by the prose around them (D102, D103).
        # An import used in a solution but not in its generated exercise keeps its noqa.
        "E402,E501,B018,PT,D102,D103,RUF100",
        str(tmp_path),
    )
    report = result.stdout.replace(str(tmp_path) + "/", "")
    assert result.returncode == 0, f"ruff found problems in notebook code cells:\n{report}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_no_semicolon_to_hide_output(path):
    """A trailing `;` hides a cell's value in Jupyter, but not under nbval, whose kernel
    keeps no history (IPython looks for the `;` there): the outputs would then differ.
    Assign the value instead (`_ = plt.plot(...)`)."""
    cells = [c for c in jupytext.read(path).cells if c.cell_type == "code"]
    bad = [c.source.strip().splitlines()[-1] for c in cells if c.source.strip().endswith(";")]
    assert not bad, f"{path.relative_to(ROOT)}: cells end with `;`: {bad}"


TEST_ONLY = "remove-cell"
HINT_STEPS = (
    "Hints come in steps. The first ✗ of an exercise says what differed and points at the idea;\n"
    "a second ✗ of the same exercise adds a nudge; the third gives the recipe. To see the whole\n"
    'hint at once, call the check with `hint="full"`.'
)
EXERCISE_NOTEBOOKS = [p for p in NOTEBOOKS if p.parent.name == "exercises"]
CHAPTER_NOTEBOOKS = [p for p in NOTEBOOKS if p.parent.name == "chapters"]


def hidden_code_cells(path):
    """The code cells tagged `remove-cell` (never shown on the site) of a notebook."""
    cells = jupytext.read(path).cells
    return [c for c in cells if c.cell_type == "code" and TEST_ONLY in c.metadata.get("tags", [])]


@pytest.mark.parametrize("path", EXERCISE_NOTEBOOKS, ids=ids(EXERCISE_NOTEBOOKS))
def test_no_test_only_cell_where_a_learner_works(path):
    """A cell hidden on the site shows in JupyterLab, Binder and Colab: under an exercise
    it would give answers away or expose the checker's internals."""
    found = [c.source.splitlines()[0] for c in hidden_code_cells(path)]
    assert not found, f"{path.relative_to(ROOT)}: test-only cells a learner would see: {found}"


@pytest.mark.parametrize("path", EXERCISE_NOTEBOOKS, ids=ids(EXERCISE_NOTEBOOKS))
def test_exercise_notebooks_say_how_hints_grow(path):
    text = " ".join(path.read_text(encoding="utf-8").split())
    assert " ".join(HINT_STEPS.split()) in text, (
        f"{path.relative_to(ROOT)} must say once, near the top, how hints grow (the paragraph "
        "HINT_STEPS in tests/test_lint.py, in the solution's EXERCISE ONLY block)"
    )


@pytest.mark.parametrize("path", CHAPTER_NOTEBOOKS, ids=ids(CHAPTER_NOTEBOOKS))
def test_a_test_only_cell_says_what_it_proves(path):
    """In a chapter's notebook a test-only cell stays (it is the proof), collapsed; its
    first line, a comment, is what a learner sees of it."""
    bare = [
        c.source.splitlines()[0] if c.source else "(empty)"
        for c in hidden_code_cells(path)
        if not c.source.lstrip().startswith("#")
    ]
    assert not bare, (
        f"{path.relative_to(ROOT)}: test-only cells whose first line is not a comment saying "
        f"what they prove: {bare}"
    )
