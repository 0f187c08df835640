"""Generate exercises/*.md from solutions/*.md: the solutions are the single source.

Run ``python tools/make_exercises.py`` after editing a solution notebook;
``python tools/make_exercises.py --check`` exits non-zero when a committed exercise
differs from what its solution generates (the test suite runs that check).

The solution is read with jupytext as a notebook (cells and their metadata, whatever the
fence or the form of the cell options), transformed cell by cell, and the exercise is
written by jupytext in the same MyST format, with the same header. Markers in a solution
notebook:

- In code cells, the lines between ``# BEGIN SOLUTION <id>`` and ``# END SOLUTION``
  become a ``# TODO Exercise <id>`` comment and a ``raise NotImplementedError(...)``
  stub at the marker's indentation. Regions must sit inside a function body (indented),
  so that an untouched exercise notebook still runs from top to bottom, and only the
  check cells report "not done yet". The ``hide-input`` tag of a cell holding a region
  is dropped, so the stub is visible in the exercise.
- In Markdown, the lines between ``<!-- BEGIN SOLUTION -->`` and ``<!-- END SOLUTION -->``
  are dropped (put the written-out answers there), and a comment opened with
  ``<!-- EXERCISE ONLY`` and closed with ``END EXERCISE ONLY -->`` is unwrapped, so its
  text shows in the exercise and stays hidden in the solution. Both open and close in
  the same cell.
- Code cells tagged ``remove-cell`` are test-only (they assert what the solution's text
  says; the solution notebook runs them under test) and are left out of the exercise:
  a learner's notebook holds no cell that is not meant for the learner.
- The page label ``(solutions-<name>)=`` and every ``:label: solutions-<name>…`` become
  ``exercises-<name>…``, and the title ``# Solutions: …`` becomes ``# Exercises: …``.
- After each exercise (before the cell that states the next one, or at the end), the
  exercise page gets a ``{solution}`` dropdown, "Solution to Exercise <id>", whose
  content is included from the solution notebook by line numbers: each code region
  (``{literalinclude}``) and each written answer (``{include}``), after a link to the
  solution notebook (JupyterLab resolves no include: there the link opens the solution).
  The exercise file only names those lines; no solution text is copied into it.
"""

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import jupytext
from nbformat.v4 import new_markdown_cell

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
EXERCISES = ROOT / "exercises"

BEGIN_CODE = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION (?P<id>\d+\.\d+[a-z]?)\s*$")
END_CODE = re.compile(r"^[ \t]*# END SOLUTION\s*$")
BEGIN_MD = "<!-- BEGIN SOLUTION -->"
END_MD = "<!-- END SOLUTION -->"
OPEN_EXERCISE_ONLY = "<!-- EXERCISE ONLY"
CLOSE_EXERCISE_ONLY = "END EXERCISE ONLY -->"
EXERCISE_LABEL = re.compile(r"^:label: solutions-(\S+-\d+)\s*$", re.M)
# An exercise's id (its title starts with it) and its label.
EXERCISE = re.compile(
    r"^(?:`{3,}|:{3,})\{exercise\} (\d+\.\d+[a-z]?)\b.*\n"
    r"(?:[ \t]*:.*\n)*?:label: solutions-(\S+)",
    re.M,
)
HEADER_END = "---"
TEST_ONLY = "remove-cell"
FORMAT = "md:myst"


class MarkerError(ValueError):
    """A solution notebook's markers are unbalanced or misplaced."""


def banner(name: str) -> str:
    """The comment that opens a generated exercise and names its source."""
    return (
        f"% Generated from solutions/{name} by tools/make_exercises.py: edit that file, "
        "then run `make exercises`.\n"
    )


def stub(indent: str, task: str) -> list[str]:
    """The lines that replace a solution region: a TODO and a `NotImplementedError`."""
    return [
        f"{indent}# TODO Exercise {task}: write your code here (see the exercise above).",
        f'{indent}raise NotImplementedError("Exercise {task} is not done yet")',
    ]


@dataclass
class Answer:
    """What the solution notebook holds for one exercise: where its answers are."""

    label: str  # the exercise's label in the exercise notebook
    code: list[str] = field(default_factory=list)  # literalinclude's :lines:, 1-based
    text: list[tuple[int, int]] = field(default_factory=list)  # 1-based, inclusive


class Cells:
    """Where each cell's source starts in the solution file (1-based line numbers)."""

    def __init__(self, source: str, name: str):
        self.source, self.name, self.cursor = source, name, 0
        self.lines = source.splitlines()

    def locate(self, cell_source: str) -> int | None:
        """The line number of `cell_source` in the solution file, searching onwards."""
        if not cell_source:
            return None
        index = self.source.find(cell_source, self.cursor)
        if index < 0:
            return None
        self.cursor = index + len(cell_source)
        return self.source.count("\n", 0, index) + 1

    def where(self, number: int, start: int | None, offset: int = 0) -> str:
        """Where a cell is, for error messages: `solutions/<name>:<line> (cell <n>)`."""
        if start is None:
            return f"solutions/{self.name}, cell {number}"
        return f"solutions/{self.name}:{start + offset} (cell {number})"


def generate(source: str, name: str) -> str:
    """The exercise notebook generated from the text of solution notebook ``name``."""
    notebook = jupytext.reads(source, fmt=FORMAT)
    page = Path(name).stem
    cells = Cells(source, name)
    answers: dict[str, Answer] = {}  # by exercise id, in the order they are stated
    last_cell: dict[str, int] = {}  # exercise id -> index in `out` of its last answer
    stated: dict[int, list[str]] = {}  # index in `out` -> the exercises its cell states
    out = []
    for number, cell in enumerate(notebook.cells, start=1):
        start = cells.locate(cell.source)
        if cell.cell_type == "code":
            if TEST_ONLY in cell.metadata.get("tags", []):
                if "# BEGIN SOLUTION" in cell.source:
                    raise MarkerError(
                        f"{cells.where(number, start)}: a solution region in a cell tagged "
                        f"{TEST_ONLY} would vanish from the exercise"
                    )
                continue
            regions = _code_cell(cell, cells, number, start)
            for task, lines in regions:
                exercise = _exercise_of(task, answers)
                if exercise is None:
                    raise MarkerError(
                        f"{cells.where(number, start)}: solution region {task} matches no "
                        f"{{exercise}} stated before it (titles start with the id, e.g. "
                        f"'{task} — …')"
                    )
                answers[exercise].code.append(lines)
                last_cell[exercise] = len(out)
            out.append(cell)
            continue
        if cell.cell_type != "markdown":
            out.append(cell)
            continue
        text, written, first_label = _markdown_source(cell.source, page, cells, number, start)
        before = [r for i, r in written if first_label is None or i < first_label]
        if before and answers:
            previous = list(answers)[-1]
            answers[previous].text.extend(before)
            last_cell[previous] = len(out) - 0.5  # before this cell's exercise
        new = [(task, label) for task, label in EXERCISE.findall(cell.source)]
        for task, label in new:
            answers[task] = Answer(f"exercises-{label}")
        after = [r for i, r in written if first_label is not None and i > first_label]
        if after:
            answers[new[-1][0]].text.extend(after)
            last_cell[new[-1][0]] = len(out)
        if text.strip():
            cell.source = text
            if new:
                stated[len(out)] = [task for task, _ in new]
            out.append(cell)
    # Each dropdown goes before the first cell after the exercise's answers that states
    # another exercise, or at the end.
    inserts: dict[int, list[str]] = {}
    for task, answer in answers.items():
        if not (answer.code or answer.text):
            continue
        after = last_cell[task]
        at = next((i for i in sorted(stated) if i >= after and task not in stated[i]), len(out))
        inserts.setdefault(at, []).append(task)
    result = []
    for index in range(len(out) + 1):
        for task in inserts.get(index, []):
            result.append(_solution_cell(answers[task], name))
        if index < len(out):
            result.append(out[index])
    first = next((c for c in result if c.cell_type == "markdown"), None)
    if first is None:
        result.insert(0, new_markdown_cell(banner(name).rstrip("\n")))
    else:
        first.source = banner(name) + "\n" + first.source
    notebook.cells = result
    return jupytext.writes(notebook, fmt=FORMAT)


def _exercise_of(task: str, answers: dict) -> str | None:
    """The stated exercise a region id belongs to: the same id, or 4.3 for 4.3a."""
    if task in answers:
        return task
    base = re.match(r"\d+\.\d+", task)[0]
    return base if base in answers else None


def _code_cell(cell, cells: Cells, number: int, start: int | None):
    """Stub the cell's solution regions; returns (id, line spec in the file) per region."""
    kept: list[str] = []
    region = None  # (id, line index in the cell where it begins, indent)
    regions = []
    lines = cell.source.split("\n")
    for index, line in enumerate(lines):
        where = cells.where(number, start, index)
        begin = BEGIN_CODE.match(line)
        if begin:
            if region is not None:
                raise MarkerError(
                    f"{where}: nested # BEGIN SOLUTION (region {region[0]} is still open)"
                )
            if not begin["indent"]:
                raise MarkerError(
                    f"{where}: a solution region must be inside a function body, so "
                    "that the untouched exercise still runs"
                )
            region = (begin["id"], index, begin["indent"])
            kept.extend(stub(begin["indent"], begin["id"]))
        elif END_CODE.match(line):
            if region is None:
                raise MarkerError(f"{where}: # END SOLUTION without a BEGIN")
            if start is None:
                raise MarkerError(f"{where}: cannot find this cell in the file")
            regions.append((region[0], _line_spec(lines, region, index, start)))
            region = None
        elif "SOLUTION" in line and line.lstrip().startswith("#"):
            raise MarkerError(f"{where}: malformed marker {line.strip()!r}")
        elif region is None:
            kept.append(line)
    if region is not None:
        raise MarkerError(
            f"{cells.where(number, start, region[1])}: code cell ends inside a solution "
            f"region: # BEGIN SOLUTION {region[0]} is never closed"
        )
    if regions:
        cell.source = "\n".join(kept)
        tags = [tag for tag in cell.metadata.get("tags", []) if tag != "hide-input"]
        if tags:
            cell.metadata["tags"] = tags
        else:
            cell.metadata.pop("tags", None)
    return regions


def _line_spec(lines, region, end, start) -> str:
    """The file lines of a region's answer, after its function's signature and docstring."""
    _, begin, indent = region
    body = f"{start + begin + 1}-{start + end - 1}" if end > begin + 1 else None
    header = None
    for index in range(begin - 1, -1, -1):
        line = lines[index]
        if "SOLUTION" in line:
            break
        stripped = line.lstrip()
        if stripped and len(line) - len(stripped) < len(indent):
            if re.match(r"(async\s+)?def ", stripped):
                header = f"{start + index}-{start + begin - 1}"
            break
    return ",".join(part for part in (header, body) if part)


def _markdown_source(text, page, cells, number, start):
    """The exercise's text of a Markdown cell, and the line ranges of its written answers."""
    kept: list[str] = []
    written: list[tuple[int, tuple[int, int]]] = []  # (line index, 1-based range)
    first_label = None
    opened = exercise_only = None  # line index where a region was opened
    for index, line in enumerate(text.split("\n")):
        where = cells.where(number, start, index)
        stripped = line.strip()
        if BEGIN_CODE.match(line) or END_CODE.match(line):
            raise MarkerError(
                f"{where}: a code marker {stripped!r} in a Markdown cell would leave the "
                "solution in the exercise (put the code in a code-cell)"
            )
        if stripped == BEGIN_MD:
            if opened is not None:
                raise MarkerError(f"{where}: nested {BEGIN_MD}")
            opened = index
        elif stripped == END_MD:
            if opened is None:
                raise MarkerError(f"{where}: {END_MD} without a BEGIN")
            if start is not None and index > opened + 1:
                written.append((opened, (start + opened + 1, start + index - 1)))
            opened = None
        elif opened is not None:
            continue
        elif stripped == OPEN_EXERCISE_ONLY:
            if exercise_only is not None:
                raise MarkerError(f"{where}: nested {OPEN_EXERCISE_ONLY}")
            exercise_only = index
        elif stripped == CLOSE_EXERCISE_ONLY:
            if exercise_only is None:
                raise MarkerError(f"{where}: {CLOSE_EXERCISE_ONLY} without an opening")
            exercise_only = None
        else:
            if first_label is None and EXERCISE_LABEL.match(line):
                first_label = index
            kept.append(_rename(line, page))
    if opened is not None:
        raise MarkerError(
            f"{cells.where(number, start, opened)}: {BEGIN_MD} is never closed in its cell"
        )
    if exercise_only is not None:
        raise MarkerError(
            f"{cells.where(number, start, exercise_only)}: {OPEN_EXERCISE_ONLY} is never "
            "closed in its cell"
        )
    return "\n".join(kept).strip("\n"), written, first_label


def _solution_cell(answer: Answer, name: str):
    """A dropdown with an exercise's answers, included from the solution notebook, after a
    link to that notebook: JupyterLab (jupyterlab-myst) resolves no include, and there the
    link is what opens the solution."""
    parts = [f"````{{solution}} {answer.label}", ":class: dropdown", ""]
    parts += [f"From [the worked solutions](../solutions/{name}):", ""]
    for lines in answer.code:
        parts += [
            f"```{{literalinclude}} ../solutions/{name}",
            ":language: python",
            f":lines: {lines}",
            ":dedent:",
            "```",
            "",
        ]
    for first, last in answer.text:
        parts += [
            f"```{{include}} ../solutions/{name}",
            f":start-line: {first - 1}",
            f":end-line: {last}",
            "```",
            "",
        ]
    parts[-1] = "````"
    return new_markdown_cell("\n".join(parts))


def _rename(line: str, page: str) -> str:
    line = re.sub(rf"^\(solutions-{page}", f"(exercises-{page}", line)
    line = re.sub(rf"^:label: solutions-{page}", f":label: exercises-{page}", line)
    return re.sub(r"^# Solutions: ", "# Exercises: ", line)


def expected_exercises() -> dict[Path, str]:
    """Every exercise file, as the solutions generate it."""
    return {
        EXERCISES / path.name: generate(path.read_text(encoding="utf-8"), path.name)
        for path in sorted(SOLUTIONS.glob("*.md"))
    }


def main(argv: list[str] | None = None) -> int:
    """Write exercises/ from solutions/, or with `--check` report any difference."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="only report exercises that are out of date"
    )
    args = parser.parse_args(argv)
    try:
        expected = expected_exercises()
    except MarkerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
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
