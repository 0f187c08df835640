"""Generate exercises/*.md from solutions/*.md: the solutions are the single source.

Run ``python tools/make_exercises.py`` after editing a solution notebook;
``python tools/make_exercises.py --check`` exits non-zero when a committed exercise
differs from what its solution generates (the test suite runs that check).

Markers in a solution notebook:

- In code cells, the lines between ``# BEGIN SOLUTION <id>`` and ``# END SOLUTION``
  become a ``# TODO Exercise <id>`` comment and a ``raise NotImplementedError(...)``
  stub at the marker's indentation. Regions must sit inside a function body (indented),
  so that an untouched exercise notebook still runs from top to bottom, and only the
  check cells report "not done yet". The ``hide-input`` tag of a cell holding a region
  is dropped, so the stub is visible in the exercise.
- In Markdown, the lines between ``<!-- BEGIN SOLUTION -->`` and ``<!-- END SOLUTION -->``
  are dropped (put the written-out answers there), and a comment opened with
  ``<!-- EXERCISE ONLY`` and closed with ``END EXERCISE ONLY -->`` is unwrapped, so its
  text shows in the exercise and stays hidden in the solution.
- The page label ``(solutions-<name>)=`` and every ``:label: solutions-<name>…`` become
  ``exercises-<name>…``, and the title ``# Solutions: …`` becomes ``# Exercises: …``.
"""

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
EXERCISES = ROOT / "exercises"

BEGIN_CODE = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION (?P<id>\d+\.\d+[a-z]?)\s*$")
END_CODE = re.compile(r"^[ \t]*# END SOLUTION\s*$")
BEGIN_MD = "<!-- BEGIN SOLUTION -->"
END_MD = "<!-- END SOLUTION -->"
OPEN_EXERCISE_ONLY = "<!-- EXERCISE ONLY"
CLOSE_EXERCISE_ONLY = "END EXERCISE ONLY -->"
CODE_CELL = re.compile(r"^```\{code-cell\}")
HEADER_END = "---"


class MarkerError(ValueError):
    """A solution notebook's markers are unbalanced or misplaced."""


def banner(name: str) -> str:
    return (
        f"% Generated from solutions/{name} by tools/make_exercises.py: edit that file, "
        "then run `make exercises`.\n"
    )


def stub(indent: str, task: str) -> list[str]:
    return [
        f"{indent}# TODO Exercise {task}: write your code here (see the exercise above).\n",
        f'{indent}raise NotImplementedError("Exercise {task} is not done yet")\n',
    ]


def generate(source: str, name: str) -> str:
    """The exercise notebook generated from the text of solution notebook ``name``."""
    lines = source.splitlines(keepends=True)
    out: list[str] = []
    page = Path(name).stem
    header_fences = 0
    in_code = in_md_solution = in_region = False
    cell_start = None  # index in `out` of the current code cell's opening fence
    for number, line in enumerate(lines, start=1):
        where = f"solutions/{name}:{number}"
        if header_fences < 2:
            out.append(line)
            if line.rstrip() == HEADER_END:
                header_fences += 1
                if header_fences == 2:
                    out.append(banner(name))
            continue
        if CODE_CELL.match(line):
            in_code, cell_start = True, len(out)
        elif in_code and line.rstrip() == "```":
            if in_region:
                raise MarkerError(f"{where}: code cell ends inside a solution region")
            in_code = False
        if in_code:
            begin = BEGIN_CODE.match(line)
            if begin:
                if in_region:
                    raise MarkerError(f"{where}: nested # BEGIN SOLUTION")
                if not begin["indent"]:
                    raise MarkerError(
                        f"{where}: a solution region must be inside a function body, so "
                        "that the untouched exercise still runs"
                    )
                in_region = True
                out.extend(stub(begin["indent"], begin["id"]))
                _drop_hide_input(out, cell_start)
            elif END_CODE.match(line):
                if not in_region:
                    raise MarkerError(f"{where}: # END SOLUTION without a BEGIN")
                in_region = False
            elif "SOLUTION" in line and line.lstrip().startswith("#"):
                raise MarkerError(f"{where}: malformed marker {line.strip()!r}")
            elif not in_region:
                out.append(line)
            continue
        stripped = line.strip()
        if stripped == BEGIN_MD:
            if in_md_solution:
                raise MarkerError(f"{where}: nested {BEGIN_MD}")
            in_md_solution = True
        elif stripped == END_MD:
            if not in_md_solution:
                raise MarkerError(f"{where}: {END_MD} without a BEGIN")
            in_md_solution = False
        elif in_md_solution:
            continue
        elif stripped in (OPEN_EXERCISE_ONLY, CLOSE_EXERCISE_ONLY):
            continue
        else:
            out.append(_rename(line, page))
    if in_region or in_md_solution:
        raise MarkerError(f"solutions/{name}: a solution region is never closed")
    return "".join(out)


def _rename(line: str, page: str) -> str:
    line = re.sub(rf"^\(solutions-{page}", f"(exercises-{page}", line)
    line = re.sub(rf"^:label: solutions-{page}", f":label: exercises-{page}", line)
    return re.sub(r"^# Solutions: ", "# Exercises: ", line)


def _drop_hide_input(out: list[str], cell_start: int) -> None:
    for i in range(cell_start + 1, len(out)):
        if out[i].startswith(":tags:"):
            tags = [t.strip() for t in out[i].split(":", 2)[2].strip(" []\n").split(",")]
            kept = [t for t in tags if t and t != "hide-input"]
            out[i] = f":tags: [{', '.join(kept)}]\n" if kept else ""
    out[:] = [line for line in out if line != ""]


def expected_exercises() -> dict[Path, str]:
    """Every exercise file, as the solutions generate it."""
    return {
        EXERCISES / path.name: generate(path.read_text(encoding="utf-8"), path.name)
        for path in sorted(SOLUTIONS.glob("*.md"))
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="only report exercises that are out of date"
    )
    args = parser.parse_args(argv)
    expected = expected_exercises()
    stale = [p for p, text in expected.items() if not p.exists() or p.read_text() != text]
    orphans = [p for p in EXERCISES.glob("*.md") if p not in expected]
    if args.check:
        for path in stale:
            print(f"out of date: {path.relative_to(ROOT)} (run `make exercises`)")
        for path in orphans:
            print(f"no solution generates {path.relative_to(ROOT)}: delete it")
        return 1 if stale or orphans else 0
    EXERCISES.mkdir(exist_ok=True)
    for path in stale:
        path.write_text(expected[path], encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    for path in orphans:
        path.unlink()
        print(f"removed {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
