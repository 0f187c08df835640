"""tools/check.py (`make check`): it never leaves out a test that the same edit breaks.

The proof breaks a copy of the repository (a module that raises when imported, a notebook
cell that fails) and asks pytest itself which test files then fail to collect: each must
be among those `make check` selects for that edit. The notebook's own nbval run, the build
and the site tests of its page are selected by name.
"""

# make check: reads notebooks only in a copy of the repository
import os
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
    """The repository's tracked files (not the venv or the build) in a folder; data/, which
    no test writes to, is a link to the repository's."""
    folder = tmp_path_factory.mktemp("repo")
    for name in check.files_now():
        if name.startswith("data/"):
            continue
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    (folder / "data").symlink_to(ROOT / "data", target_is_directory=True)
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
    assert selection.read == [f"{page}.md"]
    readers = [t for t in check.test_files() if not t.startswith("tests/site/")]
    every = [t for t in readers if check.notebooks_read(read(t)) is None]
    assert every, "no test reads every notebook?"
    assert set(every) <= set(selection.per_notebook) <= set(selection.tests)
    naming = [t for t in readers if f"{page}.md" in (check.notebooks_read(read(t)) or ())]
    assert naming, "no test names chapters/tensors.md?"
    assert set(naming) <= set(selection.tests), "a test that names the notebook is left out"
    site = [test for test in check.test_files() if test.startswith("tests/site/")]
    assert set(site) <= set(selection.tests), "the site tests of a changed page are left out"
    assert selection.pages == ["chapters/tensors", "intro"]


def test_a_notebook_is_read_by_name_or_with_all_of_them():
    assert check.notebooks_read('ROOT / "solutions" / "engine.md"') == {"solutions/engine.md"}
    assert check.notebooks_read("see exercises/engine.md") == {"exercises/engine.md"}
    assert check.notebooks_read("x = 1") == set()
    for source in ("toc_pages()", "notebooks.pages()", '("chapters", "exercises")', "BOOK_PAGES"):
        assert check.notebooks_read(source) is None, source


def test_an_edit_of_the_text_alone_runs_no_nbval():
    notebook = "chapters/tensors.md"
    selection = check.plan([notebook], [], [], text_only=frozenset({notebook}))
    assert notebook not in selection.notebooks
    assert "only its text changed" in selection.skipped[f"nbval {notebook}"]
    again = check.plan([notebook], [notebook], [], text_only=frozenset({notebook}))
    assert notebook in again.notebooks, "a notebook the build ran again is left out"


# A prose edit that the tests reading the text of the notebooks catch: a number no code
# computes (tests/test_prose_numbers.py), a `{ref}` to another page, which JupyterLab
# cannot follow (tests/test_notebooks.py), a header changed (tests/test_lint.py).
PROSE_ADDED = "\nThe answer is 4271, as {ref}`mnist` shows.\n"
HEADER_CHANGE = ("jupytext_version: 1.19.6", "jupytext_version: 1.19.5")


def test_a_prose_edit_breaks_only_tests_that_make_check_selects(copy, tmp_path):
    """The notebook half of the proof: a prose edit of one chapter in the copy; of the
    test files that read every notebook, the tests `make check` leaves out
    (COURSE_NOTEBOOKS keeps only the tests of the changed notebook, and every test of no
    notebook in particular) must all pass there. The tests the edit should break run
    too, and must fail in three files (else the edit proves nothing). The files
    that name notebooks are chosen by name (the test above). It assumes a tree where
    these tests pass, as `make test` needs."""
    notebook = "chapters/tensors.md"
    original = (copy / notebook).read_text()
    assert HEADER_CHANGE[0] in original
    edited = (original + PROSE_ADDED).replace(*HEADER_CHANGE, 1)
    selection = check.plan([notebook], [], [], text_only=frozenset({notebook}))
    readers = [t for t in selection.per_notebook if t != "tests/test_check.py"]
    every = ids(pytest_in(copy, ["--co", *readers], {}))
    kept = ids(pytest_in(copy, ["--co", *readers], selection.environment()))
    left_out = every - kept
    # what the edit should break: the edited notebook's tests, and the test of every
    # notebook's cross-references (a test of no notebook in particular, kept whatever
    # changed; the others of that kind, such as the Ctrl-C test, cost a minute)
    own = {k for k in kept if notebook in k or k.startswith("tests/test_notebooks.py::")}
    assert left_out, "COURSE_NOTEBOOKS filters nothing"
    unread = "tests/test_execute.py::test_ctrl_c_stops_every_run_at_once_kernels_included"
    assert unread in left_out, "a test marked reads_no_notebook is kept"
    assert own, f"no test of {notebook} collected"
    chosen = tmp_path / "tests.txt"  # pytest reads its arguments from @file
    chosen.write_text("\n".join(sorted(left_out | own)) + "\n")
    (copy / notebook).write_text(edited)
    try:
        report = pytest_in(copy, ["-rfE", f"@{chosen}"], {})
    finally:
        (copy / notebook).write_text(original)
    failed = set(re.findall(r"^(?:FAILED|ERROR) (\S+?)(?: - |$)", report, re.M))
    assert len({f.split("::")[0] for f in failed}) >= 3, f"the edit broke too little: {failed}"
    missed = failed & left_out
    assert not missed, f"make check leaves out {sorted(missed)} after a prose edit"


def ids(report: str) -> set[str]:
    """The test ids of a `pytest --co -q` report."""
    return set(re.findall(r"^(\S+::.+)$", report, re.M))


def read(test: str) -> str:
    return (ROOT / test).read_text(encoding="utf-8")


def pytest_in(folder, arguments: list[str], env: dict) -> str:
    """pytest's report, run in `folder` on one worker."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", *arguments],
        cwd=folder,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(folder), "PATH": "/usr/bin:/bin", "HOME": str(folder), **env},
    ).stdout


def test_nothing_changed_selects_nothing():
    selection = check.plan([], [], [])
    assert not selection.whole
    assert not selection.notebooks
    assert not selection.tests


def collected(arguments: list[str], env: dict) -> set[str]:
    """The test ids pytest collects here with `env` added to the environment."""
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("COURSE_")} | env,
    ).stdout
    return ids(out)


def test_site_tests_of_unchanged_pages_are_left_out_but_not_those_of_the_whole_book():
    files = ["tests/site/test_phone.py", "tests/site/test_reading.py"]
    every = collected(files, {})
    some = collected(files, {"COURSE_SITE_PAGES": "chapters/forward"})
    scrolls = "test_phone.py::test_a_block_wider_than_the_phone_shows_that_it_scrolls"
    assert any(scrolls in t and "[chapters/forward-" in t for t in some)
    assert not any(scrolls in t and "[chapters/tensors-" in t for t in some), "not narrowed"
    assert any(scrolls in t and "[chapters/tensors-" in t for t in every)
    reading = {t for t in every if "test_reading.py" in t}
    assert reading
    assert reading <= some, "a test of the whole book was narrowed to some pages"


def test_pages_made_from_the_build_alone_run_their_own_tests_not_the_whole_book_s():
    """A module edit that changes no output still writes the execution statistics again
    (their timings): that page's tests run, the search, the links and the PDF do not."""
    derived = check.plan([], [], ["reference/execution", "search"])
    site = {t for t in derived.tests if t.startswith("tests/site/")}
    assert site, "no site test for the changed statistics page"
    assert not site & set(check.WHOLE_BOOK), f"whole-book tests run: {site}"
    assert set(check.WHOLE_BOOK) <= set(derived.skipped), derived.skipped
    assert "PDF" not in " ".join(derived.describe())
    chapter = check.plan([], [], ["chapters/forward", "reference/execution"])
    assert set(check.WHOLE_BOOK) <= set(chapter.tests), "a chapter's edit skips the book's tests"
    assert "the PDF" in " ".join(chapter.describe())
