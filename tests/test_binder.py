"""Binder installs what the notebooks import, at the versions of the learner's lock
(requirements.txt), with CPU-only torch, and opens the .md files as rendered MyST notebooks."""

import re
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"
# What a learner's JupyterLab needs besides what the notebooks import.
LAB = {"jupyterlab", "jupyterlab-myst", "jupytext", "ipykernel"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s#]+)", line)
        if match:
            found[canonical(match[1])] = match[2]
    return found


def imported_distributions() -> set[str]:
    """Distributions of the modules that course/ and the notebooks import."""
    modules = set()
    sources = [*(ROOT / "course").rglob("*.py")]
    for folder in ("chapters", "exercises", "solutions"):
        sources += (ROOT / folder).glob("*.md")
    for path in sources:
        modules |= set(re.findall(r"^\s*(?:import|from) ([A-Za-z_]\w*)", path.read_text(), re.M))
    owners = metadata.packages_distributions()
    return {canonical(dist) for module in modules for dist in owners.get(module, [])}


def test_binder_pins_agree_with_the_lock():
    lock, binder = pins(ROOT / "requirements.txt"), pins(BINDER / "requirements.txt")
    for name, version in binder.items():
        assert name in lock, f"binder pins {name}, which the lock (requirements.txt) does not"
        assert version.split("+")[0] == lock[name], (
            f"{name}: binder has {version}, requirements.txt has {lock[name]}"
        )


def test_binder_installs_what_the_notebooks_import():
    top_level = set(pins(ROOT / "requirements.in"))
    needed = (imported_distributions() & top_level) | LAB
    assert {"torch", "numpy", "matplotlib"} <= needed
    missing = needed - set(pins(BINDER / "requirements.txt"))
    assert not missing, f"binder/requirements.txt lacks {sorted(missing)}"


def test_binder_uses_cpu_wheels():
    binder = pins(BINDER / "requirements.txt")
    assert binder["torch"].endswith("+cpu")
    assert binder["torchvision"].endswith("+cpu")


def test_binder_runtime_and_post_build():
    assert (BINDER / "runtime.txt").read_text().strip() == "python-3.11"
    post_build = BINDER / "postBuild"
    assert post_build.stat().st_mode & 0o111, "postBuild must be executable"
    assert "set-default-viewer" in post_build.read_text()
