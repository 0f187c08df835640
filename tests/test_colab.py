"""The notebooks a learner opens on Colab (`make notebooks`, tools/notebooks.py) run there:
every page's .ipynb executes with nbclient in an empty folder outside the repository, as on
Colab. Their first cell installs `course` (here from a wheel built from this repository,
since `google.colab` is faked), and MNIST, not vendored there, is downloaded by torchvision
from a mirror on 127.0.0.1 in place of the internet."""

import functools
import gzip
import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from course.book import ROOT
from course.data import DATA_ROOT, MNIST_FILES

sys.path.insert(0, str(ROOT / "tools"))
import notebooks

PAGES = notebooks.pages()


def build_wheel(out: Path) -> Path:
    """A wheel of `course`, built from a copy of the sources (nothing written in the repo)."""
    source = out / "source"
    source.mkdir()
    for name in ("pyproject.toml", "LICENSE"):
        shutil.copy(ROOT / name, source)
    shutil.copytree(ROOT / "course", source / "course", ignore=shutil.ignore_patterns("__py*"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(out / "dist"), str(source)],
        check=True,
    )  # fmt: skip
    (wheel,) = (out / "dist").glob("course-*.whl")
    return wheel


@pytest.fixture(scope="module")
def colab(tmp_path_factory):
    base = tmp_path_factory.mktemp("colab")
    wheel = build_wheel(base)
    # A stand-in for Colab, whose kernels start with `google.colab` imported: the first
    # cell then installs `course`.
    (base / "fake" / "google" / "colab").mkdir(parents=True)
    (base / "fake" / "google" / "colab" / "__init__.py").write_text("")
    (base / "fake" / "sitecustomize.py").write_text("import google.colab  # noqa: F401\n")
    # The MNIST mirror: the raw files gzipped, served on 127.0.0.1.
    mirror = base / "mirror"
    mirror.mkdir()
    resources = []
    for name in MNIST_FILES:
        raw = (DATA_ROOT / "MNIST" / "raw" / name).read_bytes()
        data = gzip.compress(raw, compresslevel=1, mtime=0)
        (mirror / f"{name}.gz").write_bytes(data)
        resources.append((f"{name}.gz", hashlib.md5(data).hexdigest()))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(mirror))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    site = base / "site"
    site.mkdir()
    env = os.environ | {
        # Where the first cell's pip installs (not .venv), found first on the kernel's path.
        "PIP_TARGET": str(site),
        "PIP_NO_INDEX": "1",
        # Its dependencies (torch, ...) are Colab's own; here they are .venv's.
        "PIP_NO_DEPS": "1",
        "COURSE_PIP_SPEC": str(wheel),
        "PYTHONPATH": os.pathsep.join([str(site), str(base / "fake")]),
    }
    env.pop("COURSE_CHECKS", None)
    yield {
        "work": base / "work",
        "site": site,
        "env": env,
        "mirror": f"http://127.0.0.1:{server.server_address[1]}/",
        "resources": resources,
    }
    server.shutdown()


def test_every_page_has_a_notebook(tmp_path):
    written = notebooks.write_all(tmp_path)
    assert len(written) == len(PAGES) >= 15
    for path in written:
        notebook = nbformat.read(path, as_version=4)
        first = notebook.cells[0]
        assert "google.colab" in first.source
        assert "remove-cell" in first.metadata["tags"]
        assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code")


@pytest.mark.parametrize("page", PAGES)
def test_notebook_runs_outside_the_repository(page, colab):
    notebook = notebooks.to_ipynb(page)
    # The test's own cell, after the install cell: MNIST from the local mirror, and proof
    # that `course` came from the wheel, not from this repository.
    notebook.cells.insert(
        1,
        nbformat.v4.new_code_cell(
            "import course, torchvision\n"
            f"torchvision.datasets.MNIST.mirrors = [{colab['mirror']!r}]\n"
            f"torchvision.datasets.MNIST.resources = {colab['resources']!r}\n"
            f"assert course.__file__.startswith({str(colab['site'])!r}), course.__file__"
        ),
    )
    folder = colab["work"] / page.split("/")[0]
    folder.mkdir(parents=True, exist_ok=True)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(folder)}},
    )
    client.execute(env=colab["env"])
    outside = [p for p in colab["work"].rglob("*") if ROOT in p.resolve().parents]
    assert not outside, f"the notebook reached into the repository: {outside}"


def test_every_notebook_page_gets_an_open_in_colab_button():
    sys.path.insert(0, str(ROOT / "_ext"))
    import colab_button

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
