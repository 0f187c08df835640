"""A pytest plugin: every MyST notebook in chapters/, exercises/ and solutions/ is a test.

nbval only collects ``.ipynb`` files, and the course commits none, so each ``.md``
notebook is converted in memory with jupytext and handed to nbval's collector. The kernel
runs in the notebook's own folder, so relative paths such as ``../data`` work. Each code
cell becomes one test item (``chapters/tensors.md::Cell 3``); a failing cell fails with
its traceback.

What each notebook is compared against:

- If ``make book`` executed it (``_build/jupyter_execute/<dir>/<name>.ipynb``, the
  notebook behind the published page) and its code is unchanged since, nbval runs it
  again and compares every output with the published one, after ``tests/sanitize.cfg``
  has masked memory addresses and timings. The page a reader sees is then exactly what
  a learner's run prints. Cells tagged ``nbval-ignore-output`` are run, not compared.
- Otherwise the converted notebook has no outputs to compare, and nbval checks that
  every cell runs without error; the ``assert`` cells carry the claims.

The environment variable ``COURSE_CHECKS`` (see ``course.checks``) makes the check cells
strict: in chapters and solutions every check must pass; in exercises every check must
report "not done yet", since an exercise ships unsolved.
"""

import os
from pathlib import Path
from unittest import mock

import jupytext
import nbformat
import pytest
from nbval.plugin import IPyNbFile

from course.book import execution_settings

ROOT = Path(__file__).resolve().parent.parent
BUILT = ROOT / "_build" / "jupyter_execute"
CHECK_MODES = {"chapters": "strict", "solutions": "strict", "exercises": "stubs"}
SANITIZER = ROOT / "tests" / "sanitize.cfg"


def pytest_configure(config):
    """Set nbval's options; --nbval itself stays off so stray .ipynb files are ignored."""
    config.option.nbval_current_env = True
    config.option.nbval_sanitize_with = str(SANITIZER)
    config.option.nbval_cell_timeout = execution_settings()["timeout"]


def pytest_collect_file(file_path, parent):
    folder = file_path.parent
    if file_path.suffix == ".md" and folder.parent == ROOT and folder.name in CHECK_MODES:
        notebook, compare = notebook_to_run(file_path)
        return MarkdownNotebook.from_parent(
            parent,
            path=file_path,
            notebook=notebook,
            check_mode=CHECK_MODES[folder.name],
            compare=compare,
        )
    return None


# Tests that pytest-xdist may give to any free worker, one by one: independent and slow
# (each runs one Colab notebook in a fresh folder). Named by node id, since the
# scheduler, in the controlling process, sees node ids only.
SPREAD = ("tests/test_colab.py::test_notebook_runs_outside_the_repository[",)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile`, except that the tests named in `SPREAD` are shared out one by one.

    A file is the unit of work otherwise: a notebook's cells share one kernel and a site
    test file shares one browser.
    """
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class FilesAndSpreadTests(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return nodeid if nodeid.startswith(SPREAD) else super()._split_scope(nodeid)

    return FilesAndSpreadTests(config, log)


def code_sources(notebook) -> list[str]:
    return [c.source.strip() for c in notebook.cells if c.cell_type == "code"]


def notebook_to_run(source: Path):
    """The notebook nbval runs for ``source``, and whether its outputs are references."""
    converted = jupytext.read(source)
    built = BUILT / source.parent.name / f"{source.stem}.ipynb"
    if built.exists():
        executed = nbformat.read(built, as_version=4)
        if code_sources(executed) == code_sources(converted):
            return executed, True
    return converted, False


class MarkdownNotebook(IPyNbFile):
    """nbval's notebook collector, with the course's check mode and output policy."""

    def __init__(self, *args, notebook, check_mode: str, compare: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.notebook = notebook
        self.check_mode = check_mode
        self.compare_outputs = compare

    def collect(self):
        """nbval's collection, fed the converted notebook instead of reading a file."""
        with mock.patch("nbval.plugin.nbformat.read", return_value=self.notebook):
            return list(super().collect())

    def setup(self):
        """Start the kernel with COURSE_CHECKS set; the variable is not left behind."""
        previous = os.environ.get("COURSE_CHECKS")
        os.environ["COURSE_CHECKS"] = self.check_mode
        try:
            super().setup()
        finally:
            if previous is None:
                del os.environ["COURSE_CHECKS"]
            else:
                os.environ["COURSE_CHECKS"] = previous
