"""Where the vendored MNIST files live, and a check that they are whole.

torchvision looks for `<root>/MNIST/raw/<name>`; when all four files are there,
`torchvision.datasets.MNIST(root, download=True)` uses them and never touches the
network. A missing or damaged file would otherwise surface as a download attempt (a
network error from deep inside torchvision) or as a garbled tensor, so the notebooks call
:func:`check_mnist` first and get a message that names the file and the fix.
"""

import hashlib
from pathlib import Path

from course import REPO_ROOT

DATA_ROOT = REPO_ROOT / "data"
"""The `root` to hand to `torchvision.datasets.MNIST`."""

MNIST_FILES = {
    "train-images-idx3-ubyte": (47_040_016, "6bbc9ace898e44ae57da46a324031adb"),
    "train-labels-idx1-ubyte": (60_008, "a25bea736e30d166cdddb491f175f624"),
    "t10k-images-idx3-ubyte": (7_840_016, "2646ac647ad5339dbf082846283269ea"),
    "t10k-labels-idx1-ubyte": (10_008, "27ae3e4e09519cfbb04c329615203637"),
}
"""Each raw file's size in bytes and md5 sum (of the uncompressed file)."""

RESTORE_HINT = (
    "Restore the vendored copy with `git checkout -- data/MNIST/raw/` from the root of "
    "the course repository. Outside the repository (e.g. on Colab), skip this check: "
    "torchvision.datasets.MNIST(root, download=True) will download the files."
)


class MnistDataError(RuntimeError):
    """A vendored MNIST file is missing or is not the file it should be."""


def md5sum(path: Path) -> str:
    """The hex md5 digest of a file, read in 1 MiB chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_mnist(root: str | Path = DATA_ROOT) -> str:
    """Check the four raw MNIST files under `root`; return `root` as a string.

    Raises :class:`MnistDataError` naming the first file that is missing, has the
    wrong size or the wrong md5 sum, with the command that restores it. Where there is
    no copy at all (a notebook run outside the repository, e.g. on Colab), it says that
    torchvision will download the files and returns `root`.
    """
    raw = Path(root) / "MNIST" / "raw"
    if not any((raw / name).exists() for name in MNIST_FILES):
        print(f"No MNIST copy in {raw}: torchvision.datasets.MNIST downloads it there.")
        return str(root)
    for name, (size, md5) in MNIST_FILES.items():
        path = raw / name
        if not path.is_file():
            raise MnistDataError(f"MNIST file missing: {path}. {RESTORE_HINT}")
        if path.stat().st_size != size:
            raise MnistDataError(
                f"MNIST file {path} has {path.stat().st_size:,} bytes, expected "
                f"{size:,}: it is truncated or is not the uncompressed file. {RESTORE_HINT}"
            )
        if md5sum(path) != md5:
            raise MnistDataError(
                f"MNIST file {path} is corrupt: its md5 is {md5sum(path)}, "
                f"expected {md5}. {RESTORE_HINT}"
            )
    return str(root)
