"""Binder installs the same versions as the root requirements (CPU-only torch)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s#]+)", line)
        if match:
            found[match[1].lower()] = match[2]
    return found


def test_binder_pins_agree_with_root():
    root, binder = pins(ROOT / "requirements.txt"), pins(ROOT / "binder" / "requirements.txt")
    assert {"torch", "torchvision"} <= binder.keys()
    for name, version in binder.items():
        assert name in root, f"binder pins {name}, which requirements.txt does not"
        assert version.split("+")[0] == root[name], (
            f"{name}: binder has {version}, requirements.txt has {root[name]}"
        )


def test_binder_uses_cpu_wheels():
    binder = pins(ROOT / "binder" / "requirements.txt")
    assert binder["torch"].endswith("+cpu") and binder["torchvision"].endswith("+cpu")


def test_binder_runtime_and_post_build():
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"
    post_build = ROOT / "binder" / "postBuild"
    assert post_build.stat().st_mode & 0o111, "postBuild must be executable"
    assert "set-default-viewer" in post_build.read_text()
