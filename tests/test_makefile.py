"""The Makefile: every target says what it does in `make help`."""

import re
import subprocess

from course.book import ROOT

MAKEFILE = (ROOT / "Makefile").read_text(encoding="utf-8")


def phony_targets() -> list[str]:
    line = next(line for line in MAKEFILE.splitlines() if line.startswith(".PHONY:"))
    return line.split(":", 1)[1].split()


def test_every_phony_target_is_described():
    described = set(re.findall(r"^([a-z-]+):.*## ", MAKEFILE, flags=re.MULTILINE))
    missing = sorted(set(phony_targets()) - described)
    assert not missing, f"targets without a '## description' for make help: {missing}"


def test_make_help_lists_every_target():
    out = subprocess.run(
        ["make", "--no-print-directory", "help"], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    listed = set(re.findall(r"^\s+make (\S+)", out.stdout, flags=re.MULTILINE))
    missing = sorted(set(phony_targets()) - listed)
    assert not missing, f"make help does not list: {missing}\n{out.stdout}"
