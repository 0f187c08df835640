"""A pytest plugin: every MyST notebook in chapters/, exercises/ and solutions/ is a test.

nbval only collects ``.ipynb`` files, and the course commits none, so each ``.md``
notebook is converted in memory with jupytext and handed to nbval's collector. Each code
cell becomes one test item (``chapters/tensors.md::Cell 3``); a failing cell fails with
its traceback.

Where each notebook runs: as on Colab (``tests/colab.py``), in a folder outside the
repository, after the install cell that the Colab notebook starts with
(``tools/notebooks.py``) has installed `course` from a wheel of this repository. The
build (``tools/execute.py``) has already run every notebook inside the repository, as a
learner's clone does, and any error stops it; this second run is the one compared. The
cells the Colab notebook adds are items of their own (``Colab: install course``, ``Colab:
setup``), and a last item checks that the notebook left the repository alone. The
kernel's folder is named like the notebook's (``work/chapters``), next to a copy of
MNIST in ``work/data``, so ``../data`` means what it means in the repository.

What each notebook is compared against:

- If ``make book`` executed it (``_build/jupyter_execute/<dir>/<name>.ipynb``, the
  notebook behind the published page) and its code is unchanged since, nbval compares
  every output of this run with the published one, after ``tests/sanitize.cfg`` has
  masked memory addresses and timings. The page a reader sees is then exactly what a
  learner's run prints, on a clone or on Colab. Cells tagged ``nbval-ignore-output`` are
  run, not compared.
- Otherwise the converted notebook has no outputs to compare, and nbval checks that
  every cell runs without error; the ``assert`` cells carry the claims.

The environment variable ``COURSE_CHECKS`` (see ``course.checks``) makes the check cells
strict: in chapters and solutions every check must pass; in exercises every check must
report "not done yet", since an exercise ships unsolved.
"""

import os
import tempfile
from collections import defaultdict
from pathlib import Path
from unittest import mock

import jupytext
import nbformat
import pytest
from nbval.kernel import CURRENT_ENV_KERNEL_NAME, RunningKernel
from nbval.plugin import IPyNbCell, IPyNbFile

from course.book import execution_settings, run_side_by_side
from tests import colab

ROOT = Path(__file__).resolve().parent.parent
BUILT = ROOT / "_build" / "jupyter_execute"
CHECK_MODES = {"chapters": "strict", "solutions": "strict", "exercises": "stubs"}
SANITIZER = ROOT / "tests" / "sanitize.cfg"


def pytest_configure(config):
    """Set nbval's options; --nbval itself stays off so stray .ipynb files are ignored.

    Workers and kernels run side by side: their thread pools wait passively
    (`course.book.SIDE_BY_SIDE_ENV`)."""
    run_side_by_side()
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


# The tests of the built site share, per process, one browser and the pages it has loaded
# (tests/site/pages.py): every test of a page goes to the same worker, which loads that
# page once per width and colour scheme. The pages are dealt to two groups, a third of
# them (the front page among them) to the first; each test of no page in particular is a
# unit of its own.
SITE_TESTS = "tests/site/"


def site_group(nodeid: str, pages: list[str]) -> str:
    """The scope of a site test: ``tests/site/0`` or ``tests/site/1``, by the page its
    parameters name (the longest page name found in its id); a test of no page in
    particular (the search, the PDF, the menus) is a unit of its own: each opens its own
    tab, and a file of them (tests/site/test_reading.py) would keep one worker busy while
    the other waits, as it does under `make check` after a prose edit."""
    params = nodeid.partition("[")[2]
    named = [p for p in pages if p in params]
    if not named:
        return nodeid
    page = max(named, key=len)
    index = pages.index(page)
    return f"{SITE_TESTS}{0 if index % 3 == 0 else 1}"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile`, except that the site tests of a page go to its group's worker.

    A file is the unit of work otherwise: a notebook's cells share one kernel.
    """
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    from course.book import toc_pages

    pages = [*toc_pages(), "reference/execution", "search"]

    class FilesAndSite(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.startswith(SITE_TESTS):
                return site_group(nodeid, pages)
            return super()._split_scope(nodeid)

    return FilesAndSite(config, log)


_colab: colab.Colab | None = None


def colab_stand_in() -> colab.Colab:
    """This process's stand-in for Colab, started at its first notebook."""
    global _colab
    if _colab is None:
        _colab = colab.start(Path(tempfile.mkdtemp(prefix="course-colab-")), with_mnist=True)
    return _colab


def pytest_unconfigure(config):
    """Stop the stand-in for Colab and remove its folders."""
    global _colab
    if _colab is not None:
        _colab.close()
        _colab = None


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
    """nbval's notebook collector, run as on Colab, with the course's check mode and
    output policy."""

    def __init__(self, *args, notebook, check_mode: str, compare: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.notebook = notebook
        self.check_mode = check_mode
        self.compare_outputs = compare
        self.page = f"{self.path.parent.name}/{self.path.stem}"

    def collect(self):
        """The Colab notebook's cells: its install cell and the test's setup cell, then
        nbval's items for the notebook's own cells (``Cell 0``, ...), then the last check.

        The stand-in for Colab starts when the first item runs (``setup``), not here; the
        added cells get their code from it then."""
        from tools.notebooks import install_cell

        with mock.patch("nbval.plugin.nbformat.read", return_value=self.notebook):
            cells = list(super().collect())
        sources = {
            "Colab: install course": lambda _: install_cell().source,
            "Colab: setup": colab.Colab.setup_source,
            "Colab: the repository is untouched": colab.Colab.untouched_source,
        }
        self.added = {self.added_item(name): source for name, source in sources.items()}
        install, setup, untouched = self.added
        return [install, setup, *cells, untouched]

    def added_item(self, name: str) -> IPyNbCell:
        """An item for a cell the test adds: run, its outputs not compared."""
        cell = nbformat.v4.new_code_cell("")
        options = defaultdict(bool, check=False)
        return IPyNbCell.from_parent(self, name=name, cell_num=-1, cell=cell, options=options)

    def setup(self):
        """Start the kernel as Colab would: in a folder outside the repository, with the
        stand-in's environment and COURSE_CHECKS set (os.environ is restored after)."""
        stand_in = colab_stand_in()
        for item, source in self.added.items():
            item.cell.source = source(stand_in)
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(stand_in.kernel_env(self.check_mode))
        try:
            self.kernel = RunningKernel(
                CURRENT_ENV_KERNEL_NAME,
                cwd=str(stand_in.folder(self.page)),
                startup_timeout=self.config.option.nbval_kernel_startup_timeout,
            )
        finally:
            os.environ.clear()
            os.environ.update(saved)
        self.setup_sanitize_files()
