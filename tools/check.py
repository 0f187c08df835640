"""`make check`: the tests an edit can affect, in seconds; `make test` stays the whole suite.

    python tools/check.py            # what changed since the last green `make check`
    python tools/check.py --dry-run  # only say what it would run, and why

It runs what `make test` runs, restricted to what the files changed since its last green
run can affect, and says what it left out and why:

1. the exercise-sync check, the parallel execution (which runs only the notebooks whose
   code or dependencies changed, `tools/execute.py`) and the strict build (which writes
   only the pages that changed);
2. nbval for each notebook that changed or was executed again in step 1;
3. the unit and property tests whose file changed or imports, directly or not, a changed
   module of `course`, `tools` or `tests`; the tests that read the notebooks when a
   notebook changed; the tests that name a changed file (the README, a workflow);
4. the site tests for the pages whose HTML changed (`COURSE_SITE_PAGES`), and the PDF
   printed again (in Chromium, while the tests run; its tests wait for it) and read.

A change it cannot follow (the Makefile, the locks, `_config.yml`, `_toc.yml`, `_ext/`,
`_static/`, `data/`, the test plugins and fixtures) runs the whole suite, as does a first
run (no record yet). The record of the last green run, a hash per file, is
`_build/check-state.json`; a red run leaves it as it was, so the next run tries again
everything the failed one selected.
"""

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from course.book import ROOT
from tests.conftest import WHOLE_BOOK
from tools import execute, pdf

STATE = ROOT / "_build" / "check-state.json"
SITE = ROOT / "_build" / "html"
NOTEBOOK_FOLDERS = ("chapters/", "exercises/", "solutions/")
PACKAGES = ("course", "tools", "tests")
# Changes whose effects the selection cannot follow: they run everything.
WHOLE_SUITE = re.compile(
    r"^(Makefile|pyproject\.toml|requirements[^/]*|_config\.yml|_toc\.yml|\.ci/.*|_ext/.*"
    r"|_static/.*|data/.*|tests/(__init__|conftest|nbcollect|colab)\.py|tests/sanitize\.cfg"
    r"|tests/site/(__init__|conftest|pages)\.py)$"
)
# What every test runs through: a module these import changes every test.
PLUGINS = ("tests/conftest.py", "tests/nbcollect.py", "tests/colab.py", "tests/site/conftest.py")
# A test that finds modules at run time (walking a package, importing by name) depends on
# every module of the course and the tools.
DYNAMIC_IMPORTS = re.compile(r"walk_packages|import_module|iter_modules|rglob\(")
# A test file that reads notebooks says so in its source: by naming one
# ("solutions/engine.md", or ROOT / "solutions" / "engine.md"), it reads that one; through
# the book's order or a notebook folder ("chapters", NOTEBOOK_DIRS, toc_pages), all of them.
NAMED_NOTEBOOK = re.compile(
    r"\b(chapters|exercises|solutions)/([a-z][\w-]*)(?:\.md)?\b"
    r"|[\"'](chapters|exercises|solutions)[\"']\s*/\s*[\"']([a-z][\w-]*)\.md[\"']"
)
READS_EVERY_NOTEBOOK = re.compile(
    r"toc_pages|toc_chapters|book_notebooks|\bpages\(\)|BOOK_PAGES|write_all\("
    r"|NOTEBOOK_(?:FOLDERS|DIRS)|[\"'](?:chapters|exercises|solutions)/?[\"']"
)
# Pages the build makes from the others (the execution statistics, written again whenever
# a notebook runs again; the index; the search page): the tests of the whole book and the
# PDF read none of them, so a change to these alone runs only their own page's tests.
MADE_FROM_THE_BUILD = ("reference/execution", "genindex", "search")
PDF_TEST = "tests/site/test_pdf.py"  # `make check` prints the PDF again for it
# The record also holds each notebook's code_fingerprint, under this prefix.
CODE = "code:"
BUILD = ["build", ".", "-W", "-n", "--keep-going"]
# As `make test` runs pytest (the Makefile says how many workers).
WORKERS = os.environ.get("COURSE_TEST_WORKERS", "auto")
PYTEST = [sys.executable, "-m", "pytest", "-n", WORKERS, "--dist", "loadfile"]


def files_now() -> dict[str, str]:
    """A hash of every file of the working tree that git tracks or would track."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    return {
        name: hashlib.sha256((ROOT / name).read_bytes()).hexdigest()[:16]
        for name in listed
        if name and (ROOT / name).is_file()
    }


def changed(recorded: dict[str, str], now: dict[str, str]) -> list[str]:
    """Files added, removed or edited since the record (its `CODE` entries aside)."""
    return sorted(
        f
        for f in recorded.keys() | now.keys()
        if recorded.get(f) != now.get(f) and not f.startswith(CODE)
    )


def module_paths(name: str) -> list[str]:
    """The repository files that importing the dotted module `name` runs (its packages'
    `__init__.py` and its own file); none for a module outside course, tools and tests."""
    parts = name.split(".")
    if parts[0] not in PACKAGES:
        return []
    found = []
    for end in range(1, len(parts) + 1):
        base = "/".join(parts[:end])
        for candidate in (f"{base}/__init__.py", f"{base}.py"):
            if (ROOT / candidate).is_file():
                found.append(candidate)
    return found


def imports(path: str) -> set[str]:
    """Every repository module that the Python file `path` imports, directly or not."""
    seen: set[str] = set()
    todo = [path]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        if current.endswith(".py"):
            source = (ROOT / current).read_text(encoding="utf-8")
        else:  # a notebook: its code cells
            source = "\n".join(execute.notebook_code(ROOT / current))
        for name in execute.imported_modules(source):
            todo.extend(module_paths(name))
    return seen - {path}


# A test file may say that it reads the book's notebooks only in a copy of the repository
# that it makes itself (tests/test_check.py): an edit of a notebook does not select it.
READS_ONLY_A_COPY = "# make check: reads notebooks only in a copy of the repository"


def notebooks_read(source: str) -> set[str] | None:
    """The notebooks a test file's `source` reads: None for every one of them, else the
    set it names (perhaps empty)."""
    if READS_ONLY_A_COPY in source:
        return set()
    named = {f"{m[1] or m[3]}/{m[2] or m[4]}.md" for m in NAMED_NOTEBOOK.finditer(source)}
    if READS_EVERY_NOTEBOOK.search(NAMED_NOTEBOOK.sub("", source)):
        return None
    return named


def code_fingerprint(notebook: str) -> str:
    """A hash of a notebook's code cells with their options (tags included): what nbval
    runs. An edit of the text alone leaves it as it was."""
    path = ROOT / notebook
    if not path.is_file():
        return "(none)"
    cells = execute.CODE_CELL.findall(path.read_text(encoding="utf-8"))
    return hashlib.sha256("\0".join(cells).encode()).hexdigest()[:16]


def test_files() -> list[str]:
    """The unit, property and site test files."""
    return sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").rglob("test_*.py"))


@dataclass
class Plan:
    """What to run, and why, for a set of changed files."""

    whole: list[str] = field(default_factory=list)  # files that ask for the whole suite
    notebooks: dict[str, str] = field(default_factory=dict)  # notebook -> why
    tests: dict[str, str] = field(default_factory=dict)  # test file -> why
    pages: list[str] = field(default_factory=list)  # pages whose HTML changed
    # Test files that read every notebook: only their tests of `read` run (the others
    # read notebooks that did not change); pytest is told through COURSE_NOTEBOOKS.
    per_notebook: list[str] = field(default_factory=list)
    read: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # what is left out -> why

    def describe(self) -> list[str]:
        """One line per thing selected, with its reason."""
        if self.whole:
            return [f"the whole suite: {', '.join(self.whole[:3])} changed"]
        lines = [f"nbval {nb}: {why}" for nb, why in sorted(self.notebooks.items())]
        lines += [f"{test}: {why}" for test, why in sorted(self.tests.items())]
        if self.pages:
            pdf = " and the PDF" if PDF_TEST in self.tests else ""
            lines.append(f"site tests{pdf}, for the pages {', '.join(self.pages)}")
        return lines

    def environment(self) -> dict[str, str]:
        """What the test processes are told of the selection (tests/conftest.py and
        tests/site/pages.py read it)."""
        return {
            "COURSE_SITE_PAGES": ",".join(self.pages),
            "COURSE_NOTEBOOKS": ",".join(self.read),
            "COURSE_NOTEBOOK_TESTS": ",".join(self.per_notebook),
        }


def plan(
    changes: list[str],
    executed: list[str],
    pages: list[str],
    text_only: frozenset[str] = frozenset(),
) -> Plan:
    """What `make check` runs for `changes` (files), the notebooks `executed` again by the
    build, and the `pages` whose HTML changed; `text_only` holds the changed notebooks
    whose code cells (and their tags) are as they were."""
    result = Plan(pages=sorted(pages))
    plumbing = set().union(*(imports(plugin) for plugin in PLUGINS))
    result.whole = [f for f in changes if WHOLE_SUITE.match(f) or f in plumbing]
    if result.whole:
        return result
    notebooks = [f for f in changes if f.startswith(NOTEBOOK_FOLDERS) and f.endswith(".md")]
    for notebook in notebooks:
        if notebook in text_only and notebook not in executed:
            result.skipped[f"nbval {notebook}"] = (
                "only its text changed: nbval runs its code cells, which are as they were"
            )
        elif (ROOT / notebook).is_file():
            result.notebooks[notebook] = "changed"
    for notebook in executed:  # the front page is no nbval test: the build runs it
        if notebook.startswith(NOTEBOOK_FOLDERS):
            result.notebooks.setdefault(notebook, "executed again (a file it depends on changed)")
    result.read = sorted(notebooks)
    changed_code = {f for f in changes if f.endswith(".py")}
    others = [f for f in changes if not f.endswith(".py") and f not in notebooks]
    for test in test_files():
        if test.startswith("tests/site/"):
            continue  # chosen by page below
        source = (ROOT / test).read_text(encoding="utf-8")
        reads = notebooks_read(source) if notebooks else set()
        if test in changed_code:
            result.tests[test] = "changed"
        elif DYNAMIC_IMPORTS.search(source) and (
            hit := sorted(f for f in changed_code if f.startswith(("course/", "tools/")))
        ):
            result.tests[test] = f"finds modules at run time, {hit[0]} among them"
        elif hit := sorted(imports(test) & changed_code):
            result.tests[test] = f"imports {hit[0]}" + (
                f" and {len(hit) - 1} more" if hit[1:] else ""
            )
        elif reads is None:
            result.tests[test] = "reads every notebook: only its tests of the changed ones"
            result.per_notebook.append(test)
        elif hit := sorted(reads & set(notebooks)):
            result.tests[test] = f"reads {hit[0]}"
        elif named := [f for f in others if f in source or Path(f).name in source]:
            result.tests[test] = f"names {named[0]}"
    site_changed = [f for f in changes if f.startswith("tests/site/")]
    book_changed = [p for p in pages if p not in MADE_FROM_THE_BUILD]
    if pages or site_changed:
        for test in test_files():
            if test in site_changed:
                result.tests[test] = "changed"
            elif test in WHOLE_BOOK and not book_changed:
                result.skipped[test] = (
                    f"it reads the whole book, and only {', '.join(pages)} changed"
                    " (made from the build; neither it nor the PDF reads them)"
                )
            elif test.startswith("tests/site/"):
                result.tests[test] = "pages changed"
    return result


def html_hashes() -> dict[str, str]:
    """A hash of each built page, by page name."""
    return {
        p.relative_to(SITE).with_suffix("").as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in SITE.rglob("*.html")
        if "_print" not in p.parts
    }


def executed_since(start_us: int) -> list[str]:
    """The notebooks tools/execute.py ran after `start_us` (microseconds since the epoch)."""
    record = execute.read_json(execute.DEPENDENCIES)
    return sorted(uri for uri, entry in record.items() if entry.get("executed", 0) >= start_us)


def print_pdf() -> tuple[subprocess.Popen, str]:
    """Start tools/pdf.py; the process, and the file where its exit status will be written
    when it ends (written whole, by a rename, for the PDF's tests to wait on)."""
    status = ROOT / "_build" / "pdf-printing.status"
    status.unlink(missing_ok=True)
    printing = subprocess.Popen([sys.executable, "tools/pdf.py"], cwd=ROOT)

    def record():
        code = printing.wait()
        written = status.with_suffix(".tmp")
        written.write_text(str(code))
        written.replace(status)

    threading.Thread(target=record, daemon=True).start()
    return printing, str(status)


def run(command: list[str], env: dict | None = None) -> None:
    """Run a step; stop `make check` with its exit status if it fails."""
    print("$ " + " ".join(command), flush=True)
    status = subprocess.run(command, cwd=ROOT, env=env).returncode
    if status:
        print(f"make check: red ({' '.join(command[:3])}… exited {status})")
        sys.exit(status)


def main(argv: list[str] | None = None) -> int:
    """Run what the changes since the last green run can affect; record a green run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="say what would run, run nothing")
    args = parser.parse_args(argv)
    recorded = execute.read_json(STATE)
    now = files_now()
    changes = changed(recorded, now)
    now |= {CODE + f: code_fingerprint(f) for f in now if f.startswith(NOTEBOOK_FOLDERS)}
    text_only = frozenset(f for f in changes if recorded.get(CODE + f, "") == now.get(CODE + f))
    if args.dry_run:
        selection = plan(changes, [], [], text_only) if recorded else Plan(whole=["(no record)"])
        print("\n".join(selection.describe()) or "nothing changed since the last green run")
        for what, why in selection.skipped.items():
            print(f"left out {what}: {why}")
        return 0
    started, start_us = time.monotonic(), time.time_ns() // 1000
    before = html_hashes() if SITE.is_dir() else {}
    run([sys.executable, "tools/make_exercises.py", "--check"])
    run([sys.executable, "tools/execute.py"])
    run(
        [
            str(Path(sys.executable).parent / "jupyter-book"),
            "build",
            ".",
            "-W",
            "-n",
            "--keep-going",
        ]
    )
    after = html_hashes()
    pages = sorted(p for p in after if before.get(p) != after[p])
    if not recorded:
        selection = Plan(whole=["(no record of a green run)"])
    else:
        selection = plan(changes, executed_since(start_us), pages, text_only)
    for line in selection.describe():
        print(f"make check runs {line}")
    for what, why in selection.skipped.items():
        print(f"make check leaves out {what}: {why}")
    if selection.whole:
        run([sys.executable, "tools/pdf.py"])
        run(PYTEST)
    else:
        targets = [*selection.notebooks, *selection.tests]
        env = os.environ | selection.environment()
        printing = None
        if PDF_TEST in targets:  # the PDF prints while the tests run; its tests wait for it
            printing, env[pdf.PRINTING] = print_pdf()
        try:
            if targets:
                run([*PYTEST, *targets], env=env)
        except BaseException:  # the tests failed (or Ctrl-C): the print is not needed
            if printing is not None:
                printing.terminate()
            raise
        if printing is not None and printing.wait():
            print("make check: red (tools/pdf.py failed)")
            return printing.returncode
        if not targets:
            print("make check: nothing changed since the last green run that a test could see")
    STATE.parent.mkdir(parents=True, exist_ok=True)
    STATE.write_text(json.dumps(now))
    print(f"make check: green in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
