"""The notebooks a learner opens on Colab (`make notebooks`, tools/notebooks.py).

Every page's Colab notebook runs in the notebook tests (tests/nbcollect.py), in the
stand-in for Colab of tests/colab.py, compared cell by cell with the published page. Here:
the notebooks are written as Colab needs them (their Markdown: tests/test_notebooks.py),
their first cell installs the helpers of their own commit on Colab and says how to install
them elsewhere, each page gets its button, the wheel holds what the checks need there,
and MNIST, which is not vendored on Colab, is downloaded by torchvision (from a mirror on
127.0.0.1 in place of the internet) where `course` says.
"""

import subprocess
import sys
import zipfile

import jupytext
import nbformat
import pytest

from course.book import ROOT
from tests import colab as stand_in
from tools import notebooks

PAGES = notebooks.pages()


def load_colab_button():
    """The Sphinx extension _ext/colab_button.py, as the build loads it."""
    sys.path.insert(0, str(ROOT / "_ext"))
    import colab_button

    return colab_button


@pytest.fixture(scope="module")
def colab(tmp_path_factory):
    """A stand-in for Colab without any copy of MNIST."""
    colab = stand_in.start(tmp_path_factory.mktemp("colab"), with_mnist=False)
    yield colab
    colab.close()


def test_every_page_has_a_notebook(tmp_path):
    written = notebooks.write_all(tmp_path)
    assert len(written) == len(PAGES) >= 15
    for path in written:
        notebook = nbformat.read(path, as_version=4)
        first = notebook.cells[0]
        assert "google.colab" in first.source
        assert "remove-cell" in first.metadata["tags"]
        assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code")


def test_colab_installs_the_helpers_of_the_commit_it_was_generated_from():
    """A notebook generated from one commit never meets the helpers of a later one."""
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    source = notebooks.install_cell().source
    assert f'COURSE = "git+https://github.com/executable-pytorch/course@{head}"' in source
    assert '"COURSE_PIP_SPEC", COURSE' in source


@pytest.mark.reads_no_notebook
def test_outside_a_git_checkout_the_branch_is_installed_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setattr(notebooks, "ROOT", tmp_path)
    with pytest.warns(UserWarning, match="no git checkout.*helpers of the branch main"):
        assert notebooks.commit() == "main"


def test_outside_colab_a_missing_course_says_how_to_install_it(tmp_path):
    """Without `course` (python -S: no site-packages), the first cell stops with one line
    that says how to install it; with it, the cell does nothing."""
    source = notebooks.install_cell().source
    run = subprocess.run(
        [sys.executable, "-S", "-c", source], cwd=tmp_path, capture_output=True, text=True
    )
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("ModuleNotFoundError: The course's helpers (`import course`) are"), last
    assert "`pip install -e .` in a clone of https://github.com/" in last
    assert "open this notebook on Colab, where this cell installs them." in last
    installed = subprocess.run([sys.executable, "-c", source], cwd=tmp_path, capture_output=True)
    assert (installed.returncode, installed.stdout, installed.stderr) == (0, b"", b"")


def test_the_wheel_holds_the_reference_engine(colab):
    with zipfile.ZipFile(colab.wheel) as wheel:
        packaged = wheel.read("course/engine_reference.md").decode()
    assert packaged == (ROOT / "solutions" / "engine.md").read_text()


@pytest.mark.reads_no_notebook
def test_mnist_is_downloaded_where_there_is_no_copy(colab):
    """What the MNIST pages' first data cells do on Colab: `check_mnist` says that there
    is no copy, then torchvision downloads both sets into the folder it names."""
    install = nbformat.v4.new_code_cell(notebooks.install_cell().source)
    code = "\n".join(
        [
            install.source,
            colab.setup_source(),
            "import torchvision",
            "from course.data import check_mnist",
            'root = check_mnist("../data")',
            "sets = [torchvision.datasets.MNIST(root, train=t, download=True) for t in (1, 0)]",
            "print([len(s) for s in sets])",
        ]
    )
    folder = colab.folder("chapters/mnist")
    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=folder,
        env=colab.kernel_env(None),
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "No MNIST copy in ../data/MNIST/raw: torchvision" in run.stdout
    assert "[60000, 10000]" in run.stdout
    assert (folder.parent / "data" / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()


def test_every_notebook_page_gets_an_open_in_colab_button():
    colab_button = load_colab_button()

    repo = "https://github.com/executable-pytorch/course"
    for page in PAGES:
        context = {"header_buttons": [{"label": "launch-buttons", "buttons": []}]}
        app = type("App", (), {"config": type("C", (), {"html_theme_options": {}})()})()
        app.config.html_theme_options = {"repository_url": repo}
        colab_button.add_colab_button(app, page, "page.html", context, None)
        (button,) = context["header_buttons"][0]["buttons"]
        assert button["url"] == (
            "https://colab.research.google.com/github/executable-pytorch/course/blob/colab/"
            f"{page}.ipynb"
        )
    assert colab_button.colab_url(repo, "intro") is None


@pytest.mark.parametrize("page", ["chapters/tensors", "exercises/tensors"])
def test_the_download_menu_offers_the_learner_s_notebook(tmp_path, page):
    """The theme copies myst-nb's notebook of the page (MyST source, outputs of the run)
    into `_sources`; the extension replaces it with the learner's notebook, keeping the
    outputs cell for cell (the site tests count them against the page's)."""
    ran = jupytext.read(ROOT / f"{page}.md")
    code = [c for c in ran.cells if c.cell_type == "code"]
    for number, cell in enumerate(code):
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"run {number}\n")]
    path = tmp_path / "_sources" / f"{page}.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(ran, path)
    app = type("App", (), {"outdir": str(tmp_path)})()
    context = {"ipynb_source": f"{page}.ipynb"}
    load_colab_button().offer_the_learner_notebook(app, page, "page.html", context, None)
    offered = nbformat.read(path, as_version=4)
    expected = notebooks.learner_notebook(page)
    assert [c.source for c in offered.cells] == [c.source for c in expected.cells]
    outputs = [[o.text for o in c.outputs] for c in offered.cells[1:] if c.cell_type == "code"]
    assert outputs == [[f"run {n}\n"] for n in range(len(code))]
