"""The vendored MNIST files: whole, offline, and a clear message when they are not."""

import re
import socket
from pathlib import Path

import pytest
import torchvision

from course.data import DATA_ROOT, MNIST_FILES, MnistDataError, check_mnist, md5sum

RAW = DATA_ROOT / "MNIST" / "raw"


@pytest.mark.parametrize("name", sorted(MNIST_FILES))
def test_md5_matches(name):
    size, md5 = MNIST_FILES[name]
    assert (RAW / name).stat().st_size == size, f"{name}: wrong size"
    assert md5sum(RAW / name) == md5, f"{name}: md5 differs from data/README.md"


def test_readme_lists_the_same_md5s():
    readme = (DATA_ROOT / "README.md").read_text()
    for name, (size, md5) in MNIST_FILES.items():
        assert re.search(rf"`{name}` \| {size:,} \| `{md5}`", readme), f"{name} row in README"
    assert "CC BY-SA 3.0" in readme or "Attribution-Share Alike 3.0" in readme


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize(("train", "count"), [(True, 60_000), (False, 10_000)])
def test_torchvision_loads_offline(no_network, train, count):
    dataset = torchvision.datasets.MNIST(root=check_mnist(), train=train, download=True)
    assert len(dataset) == count
    image, label = dataset[0]
    assert image.size == (28, 28)
    assert 0 <= label <= 9


@pytest.fixture
def raw_copy(tmp_path):
    """A data root whose raw files link to the real ones, to damage one safely."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST_FILES:
        (raw / name).symlink_to(RAW / name)
    return tmp_path


def test_good_copy_passes(raw_copy):
    assert check_mnist(raw_copy) == str(raw_copy)


def test_missing_file_is_named(raw_copy):
    target = raw_copy / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    target.unlink()
    with pytest.raises(MnistDataError, match=r"missing: .*t10k-labels-idx1-ubyte.*git checkout"):
        check_mnist(raw_copy)


def test_truncated_file_is_named(raw_copy):
    target = raw_copy / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    target.unlink()
    target.write_bytes(Path(RAW / "train-labels-idx1-ubyte").read_bytes()[:1000])
    with pytest.raises(MnistDataError, match="train-labels-idx1-ubyte has 1,000 bytes"):
        check_mnist(raw_copy)


def test_corrupt_file_is_named(raw_copy):
    target = raw_copy / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    data = bytearray((RAW / "t10k-labels-idx1-ubyte").read_bytes())
    data[100] ^= 0xFF
    target.unlink()
    target.write_bytes(bytes(data))
    with pytest.raises(MnistDataError, match="t10k-labels-idx1-ubyte is corrupt: its md5"):
        check_mnist(raw_copy)
