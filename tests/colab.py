"""A stand-in for Colab, where the notebook tests run every notebook (tests/nbcollect.py).

On Colab a notebook runs in a folder of its own, far from any clone of the repository,
and its first cell (tools/notebooks.py) installs `course` with pip. Here:

- `course` is a wheel built from this repository's sources and installed by that same
  first cell into a folder of its own (``PIP_TARGET``), found first on the kernel's path;
  its dependencies (torch, ...) are Colab's own there, `.venv`'s here;
- ``google.colab`` is a fake module that every kernel imports at start, as Colab's do, so
  the first cell takes its Colab branch;
- the notebooks run in ``work/<folder>``, outside the repository;
- MNIST is served gzipped on 127.0.0.1, as torchvision's mirrors serve it, for the test
  of the download path (tests/test_colab.py). For the notebook runs a copy already sits
  where the notebooks look (``work/data``, the ``../data`` of their folder, and
  ``data/`` next to the installed package), so nothing is downloaded and their outputs
  are those of the published pages.

Nothing here touches the network: pip runs with ``PIP_NO_INDEX``.
"""

import contextlib
import gzip
import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from course.book import ROOT, serve
from course.data import DATA_ROOT, MNIST_FILES

# In every kernel of the stand-in (its sitecustomize): torchvision's MNIST downloads from
# the local mirror, set as `torchvision.datasets.mnist` is imported (importing torchvision
# at start would cost every notebook a second and a half, and most never use it).
MIRROR_HOOK = """
import importlib.machinery, sys

class _LocalMirror:
    def find_spec(self, name, path, target=None):
        if name != "torchvision.datasets.mnist":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            module.MNIST.mirrors = [{0!r}]
            module.MNIST.resources = {1!r}

        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, _LocalMirror())
"""


def build_wheel(out: Path) -> Path:
    """A wheel of `course`, built from a copy of what a clone holds (nothing is written in
    the repository). Links stay links, as in a clone: `course/engine_reference.md`."""
    source = out / "source"
    (source / "solutions").mkdir(parents=True)
    for name in ("pyproject.toml", "LICENSE", "solutions/engine.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "course", source / "course", symlinks=True, ignore=shutil.ignore_patterns("__py*")
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(out / "dist"), str(source)],
        check=True,
    )  # fmt: skip
    (wheel,) = (out / "dist").glob("course-*.whl")
    return wheel


@dataclass
class Colab:
    """The folders, environment and MNIST mirror of one stand-in for Colab."""

    base: Path
    wheel: Path
    site: Path
    work: Path
    env: dict[str, str]
    mirror: str
    resources: list[tuple[str, str]]
    _serving: contextlib.ExitStack = field(repr=False)

    def kernel_env(self, checks: str | None) -> dict[str, str]:
        """The environment a notebook's kernel starts with, `COURSE_CHECKS` set to `checks`."""
        env = dict(self.env)
        if checks:
            env["COURSE_CHECKS"] = checks
        return env

    def folder(self, page: str) -> Path:
        """The folder the notebook of ``page`` (e.g. ``chapters/mnist``) runs in."""
        folder = self.work / page.split("/")[0]
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def setup_source(self) -> str:
        """Code for the cell after the install cell: `course` came from the wheel, MNIST
        comes from the local mirror, and the kernel runs outside the repository."""
        return (
            "# Test only (not in the Colab notebook): where the kernel runs and what it uses.\n"
            "import pathlib, course\n"
            f"assert course.__file__.startswith({str(self.site)!r}), course.__file__\n"
            f"assert pathlib.Path({str(ROOT)!r}) not in pathlib.Path.cwd().resolve().parents"
        )

    def untouched_source(self) -> str:
        """Code for a last cell: nothing in the work folder leads into the repository."""
        return (
            "# Test only: the notebook did not reach into the repository.\n"
            "import pathlib\n"
            f"_root = pathlib.Path({str(ROOT)!r})\n"
            f"_outside = [p for p in pathlib.Path({str(self.work)!r}).rglob('*')\n"
            "            if _root == p.resolve() or _root in p.resolve().parents]\n"
            "assert not _outside, f'the notebook reached into the repository: {_outside}'"
        )

    def close(self) -> None:
        """Stop the mirror and remove every folder."""
        self._serving.close()
        shutil.rmtree(self.base, ignore_errors=True)


def start(base: Path, *, with_mnist: bool) -> Colab:
    """A stand-in for Colab in ``base``. With ``with_mnist``, a copy of MNIST sits where the
    installed `course` looks for it, so no notebook downloads it."""
    wheel = build_wheel(base)
    # Colab's kernels start with `google.colab` imported: the first cell installs `course`.
    fake = base / "fake"
    (fake / "google" / "colab").mkdir(parents=True)
    (fake / "google" / "colab" / "__init__.py").write_text("")
    mirror = base / "mirror"
    mirror.mkdir()
    resources = []
    for name in MNIST_FILES:
        raw = (DATA_ROOT / "MNIST" / "raw" / name).read_bytes()
        data = gzip.compress(raw, compresslevel=1, mtime=0)
        (mirror / f"{name}.gz").write_bytes(data)
        resources.append((f"{name}.gz", hashlib.md5(data).hexdigest()))
    serving = contextlib.ExitStack()
    mirror_url = serving.enter_context(serve(mirror))
    (fake / "sitecustomize.py").write_text(
        "import google.colab  # noqa: F401\n" + MIRROR_HOOK.format(mirror_url, resources)
    )
    site = base / "site"
    site.mkdir()
    work = base / "work"
    if with_mnist:
        # Where the notebooks look: `../data` from their folder, and `course.data.DATA_ROOT`,
        # `data/` next to the installed package.
        for data in (work / "data", site / "data"):
            shutil.copytree(DATA_ROOT / "MNIST" / "raw", data / "MNIST" / "raw")
    env = os.environ | {
        # Where the first cell's pip installs (not .venv), found first on the kernel's path.
        "PIP_TARGET": str(site),
        "PIP_NO_INDEX": "1",
        "PIP_NO_DEPS": "1",
        "COURSE_PIP_SPEC": str(wheel),
        "PYTHONPATH": os.pathsep.join([str(site), str(fake)]),
    }
    env.pop("COURSE_CHECKS", None)
    return Colab(
        base=base,
        wheel=wheel,
        site=site,
        work=work,
        env=env,
        mirror=mirror_url,
        resources=resources,
        _serving=serving,
    )
