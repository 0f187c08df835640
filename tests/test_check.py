"""tools/check.py (`make check`): it never leaves out a test that the same edit breaks.

The proof breaks a copy of the repository (a module that raises when imported, a notebook
cell that fails) and asks pytest itself which test files then fail to collect: each must
be among those `make check` selects for that edit. The notebook's own nbval run, the build
and the site tests of its page are selected by name.
"""

import re
import shutil
import subprocess
import sys

import pytest

from course.book import ROOT
from tools import check

BROKEN = "\nraise RuntimeError('injected by tests/test_check.py')\n"


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    """The repository's tracked files (not data/, the venv or the build) in a folder."""
    folder = tmp_path_factory.mktemp("repo")
    for name in check.files_now():
        if name.startswith("data/"):
            continue
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    return folder


def uncollectable(folder) -> set[str]:
    """The test files (outside tests/site) that pytest cannot collect in `folder`."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--co",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests",
            "--ignore=tests/site",
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(folder), "PATH": "/usr/bin:/bin", "HOME": str(folder)},
    )
    return set(re.findall(r"ERROR collecting (tests/\S+\.py)", result.stdout))


# One module of the checks, one that loads the reference engine for many tests (each
# case collects the whole suite once: about 15 s).
@pytest.mark.parametrize("module", ["course/checks/tensors.py", "course/notebooks.py"])
def test_a_broken_module_breaks_only_tests_that_make_check_selects(copy, module):
    original = (copy / module).read_text()
    (copy / module).write_text(original + BROKEN)
    try:
        broken = uncollectable(copy)
    finally:
        (copy / module).write_text(original)
    assert broken, f"breaking {module} broke no test file: the proof proves nothing"
    selection = check.plan([module], [], [])
    selected = set(selection.tests) if not selection.whole else broken
    missed = broken - selected
    assert not missed, f"make check leaves out {sorted(missed)} when {module} changes"


def test_a_module_every_test_runs_through_selects_the_whole_suite():
    assert check.plan(["course/book.py"], [], []).whole == ["course/book.py"]
    assert check.plan(["Makefile"], [], []).whole == ["Makefile"]


def test_a_changed_notebook_selects_its_run_its_readers_and_its_page():
    page = "chapters/tensors"
    selection = check.plan([f"{page}.md"], ["solutions/tensors.md", "intro.md"], [page, "intro"])
    assert f"{page}.md" in selection.notebooks
    assert "solutions/tensors.md" in selection.notebooks, "a notebook run again is left out"
    assert "intro.md" not in selection.notebooks, "the front page is no nbval test"
    readers = [
        test
        for test in check.test_files()
        if not test.startswith("tests/site/")
        and re.search(r"chapters|toc_pages|NOTEBOOK", (ROOT / test).read_text(encoding="utf-8"))
    ]
    assert readers, "no test reads the notebooks?"
    missed = [test for test in readers if test not in selection.tests]
    assert not missed, f"tests that read the notebooks, left out: {missed}"
    site = [test for test in check.test_files() if test.startswith("tests/site/")]
    assert set(site) <= set(selection.tests), "the site tests of a changed page are left out"
    assert selection.pages == ["chapters/tensors", "intro"]


def test_nothing_changed_selects_nothing():
    selection = check.plan([], [], [])
    assert not selection.whole
    assert not selection.notebooks
    assert not selection.tests
