"""The lock: requirements.txt (the learner's) and requirements-test.txt (what only
`make test` adds) pin every package, and both match their inputs (requirements*.in)."""

import os
import re
import shlex
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from course.book import ROOT

GROUPS = {"requirements.in": "requirements.txt", "requirements-test.in": "requirements-test.txt"}
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s#;]+)", re.MULTILINE)


def pins(text: str) -> dict[str, str]:
    return {canonicalize_name(name): version for name, version in PIN.findall(text)}


def direct(lock: str, source: str) -> set[str]:
    """Packages the lock says come from `-r source` (pip-compile's `# via` notes)."""
    found, current = set(), None
    for line in lock.splitlines():
        match = PIN.match(line)
        if match:
            current = canonicalize_name(match[1])
        elif current and re.search(rf"#\s+(via\s+)?-r {re.escape(source)}$", line):
            found.add(current)
    return found


def left_out() -> set[str]:
    """What `make lock` leaves unpinned on purpose (pip, torch's CUDA runtime)."""
    makefile = (ROOT / "Makefile").read_text()
    block = re.search(r"^CUDA_ONLY := (.*?)\n(?!\t)", makefile, re.MULTILINE | re.DOTALL)
    assert block, "the Makefile defines CUDA_ONLY"
    return {canonicalize_name(n) for n in block[1].replace("\\", " ").split()} | {"pip"}


@pytest.mark.parametrize("source", GROUPS)
def test_lock_pins_exactly_its_input(source):
    wanted = pins((ROOT / source).read_text())
    lock_text = (ROOT / GROUPS[source]).read_text()
    locked = pins(lock_text)
    for name, version in wanted.items():
        assert locked.get(name) == version, (
            f"{source} pins {name}=={version}, {GROUPS[source]} has {locked.get(name)}: "
            "run `make lock`"
        )
    extra = direct(lock_text, source) - wanted.keys()
    assert not extra, f"{GROUPS[source]} still lists {sorted(extra)} from {source}: make lock"


def test_groups_agree():
    learner = pins((ROOT / "requirements.txt").read_text())
    test = pins((ROOT / "requirements-test.txt").read_text())
    shared = learner.keys() & test.keys()
    differ = {n: (learner[n], test[n]) for n in shared if learner[n] != test[n]}
    assert not differ, f"the two groups pin different versions: {differ}"
    assert "pytest" not in learner, "test tools in the learner lock"
    assert "playwright" not in learner, "test tools in the learner lock"


def test_lock_is_complete():
    """Every dependency of every locked package is locked too (read from the installed
    metadata, which `make test` installed from these very files)."""
    locked = {}
    for lock in GROUPS.values():
        locked |= pins((ROOT / lock).read_text())
    allowed = locked.keys() | left_out()
    missing = []
    for name, version in sorted(locked.items()):
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            pytest.fail(f"{name} is locked but not installed: run make")
        # CI installs torch's CPU build: 2.14.1+cpu is the locked 2.14.1.
        installed = dist.version.split("+")[0]
        assert installed == version, f"{name}: installed {dist.version}, locked {version}"
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker and not req.marker.evaluate({"extra": ""}):
                continue
            if canonicalize_name(req.name) not in allowed:
                missing.append(f"{req.name} (needed by {name})")
    assert not missing, f"not in the lock: {missing}"


@pytest.mark.index
def test_make_lock_reproduces_the_lock(tmp_path):
    """`make lock` run now, in a copy, gives the committed files byte for byte.

    It resolves against the package index, so `make test` (offline) skips it and
    `make lock-check` runs it; .ci/run runs both."""
    compile_tool = Path(sys.executable).parent / "pip-compile"
    dry = subprocess.run(
        ["make", "-n", "--no-print-directory", "-o", ".venv/.installed-test", "lock"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    commands = [line for line in dry.stdout.splitlines() if "pip-compile" in line]
    assert len(commands) == len(GROUPS), dry.stdout
    for name in [*GROUPS, *GROUPS.values()]:
        shutil.copy(ROOT / name, tmp_path / name)
    env = os.environ | {"CUSTOM_COMPILE_COMMAND": "make lock"}
    # The lock is resolved against the package index alone; CI's extra CPU-wheel index
    # (torch 2.14.1+cpu) is for installing it, not for resolving it.
    env.pop("PIP_EXTRA_INDEX_URL", None)
    for command in commands:
        argv = shlex.split(command.split("pip-compile", 1)[1])
        subprocess.run([str(compile_tool), *argv], cwd=tmp_path, env=env, check=True)
    for lock in GROUPS.values():
        assert (tmp_path / lock).read_text() == (ROOT / lock).read_text(), (
            f"{lock} is not what `make lock` makes from its input: run make lock"
        )
