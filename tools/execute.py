"""Execute the book's notebooks in parallel into the jupyter-cache that `make book` reads.

Jupyter Book executes notebooks one after another. The notebooks are independent, so this
tool runs them side by side (a pool of one process per core) into the same cache
(`_build/.jupyter_cache`, `execute_notebooks: cache` in `_config.yml`); the build that
follows finds every notebook there and executes nothing. A notebook whose code has not
changed is a cache hit and is not run again.

    python tools/execute.py            # every notebook of the book
    python tools/execute.py --serial   # one at a time

Notebooks run in their own folder (relative paths such as `../data` work), with the
per-cell timeout of `_config.yml`, so the outputs are those the build would produce.
A notebook that fails is reported with its cell and traceback, and the tool exits 1.
Ctrl-C stops every run at once, kernels included, and says what the cache kept (exit 130).
A damaged cache (a database truncated by a full disk or a killed write) is detected before
anything else, reported in one line and rebuilt: it holds only outputs that can be made
again.

jupyter-cache knows a notebook by its code alone, so a change to the `course` package, or
to a file a notebook reads (the front page reads every chapter), would leave its cached
outputs stale. So the tool also records, for each notebook in the cache, a hash of every
file its run depends on (`dependencies`: the modules of `course` it imports, directly or
not, and the files in `READS`); a notebook one of whose files changed is run again, and
the tool says which file it was.

After a run in which every notebook succeeded, the tool records each notebook's size and
modification time and those hashes (`executed-notebooks.json`, inside the cache, so
`make clean-cache` removes it too). When nothing has changed since, it stops at once,
without loading jupyter-cache (whose imports alone take about 3 s): a warm `make book` is
then the build alone. Were the cache changed by other means, the build still executes
what it lacks.
"""

import argparse
import ast
import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import sqlite3
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import yaml

from course.book import (
    EXECUTION_RECORD,
    ROOT,
    execution_settings,
    run_side_by_side,
    toc_pages,
)

CACHE = ROOT / "_build" / ".jupyter_cache"
STAMP = CACHE / "executed-notebooks.json"
DEPENDENCIES = CACHE / EXECUTION_RECORD

# Files of the repository that code reads while a notebook runs, other than the modules of
# `course` it imports (`dependencies` finds those): globs from the root, keyed by the
# notebook or module whose code reads them. An empty entry says its reads need no record:
# the vendored data/ (never edited) or files the notebook wrote itself. tests/test_execute.py
# fails when a notebook or module that reads files has no entry.
READS = {
    "intro.md": ("_toc.yml", "chapters/*.md", "solutions/*.md"),
    "chapters/mnist-training.md": (),  # the model it saved itself
    "course/book.py": ("_toc.yml", "_config.yml"),
    "course/notebooks.py": ("solutions/engine.md",),
    "course/data.py": (),  # the MNIST files in data/
    "course/distributed.py": (),  # torch.load of results sent in memory
}
MYST_READER = {"name": "myst_nb_md", "type": "plugin"}


def is_notebook(path: Path) -> bool:
    """Whether myst-nb treats `path` as a notebook: a text file with a kernelspec header."""
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        return False
    header = yaml.safe_load(text.split("\n---\n", 1)[0][4:]) or {}
    return "kernelspec" in header


def book_notebooks() -> list[Path]:
    """The book's pages that are notebooks, in reading order."""
    paths = [ROOT / f"{page}.md" for page in toc_pages()]
    return [path for path in paths if path.is_file() and is_notebook(path)]


def imported_modules(source: str) -> set[str]:
    """The dotted names that the Python `source` imports, `from a import b` giving `a` and
    `a.b` (b may be a module). Lines of IPython magics (`%`, `!`) are skipped. Source that
    does not parse imports nothing (a cell that does not compile runs none of its lines);
    the kernel reports its error when the notebook runs."""
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@functools.cache
def module_imports(module: Path) -> frozenset[str]:
    """What the module at `module` imports (read once per run of the tool)."""
    return frozenset(imported_modules(module.read_text(encoding="utf-8")))


def module_files(name: str) -> list[Path]:
    """The files that importing module `name` of the course package runs: its own and its
    packages' `__init__.py`; none if `name` is not a module of the package."""
    parts = name.split(".")
    if parts[0] != "course":
        return []
    files = [ROOT.joinpath(*parts[:i], "__init__.py") for i in range(1, len(parts))]
    package, module = ROOT.joinpath(*parts, "__init__.py"), ROOT.joinpath(*parts).with_suffix(".py")
    own = package if package.is_file() else module
    return [f for f in [*files, own] if f.is_file()] if own.is_file() else []


CODE_CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
CELL_OPTIONS = re.compile(r"\A(?:---\n.*?^---\n|(?::[^\n]*\n)+)", re.M | re.S)


def notebook_code(notebook: Path) -> list[str]:
    """The source of each code cell of a MyST notebook, without its options (`:tags:` lines
    or a `---` block). Read with two regular expressions: jupytext's import alone takes
    about a second, which a warm `make book` would pay on every call."""
    text = notebook.read_text(encoding="utf-8")
    return [CELL_OPTIONS.sub("", cell) for cell in CODE_CELL.findall(text)]


def reads(path: Path) -> set[Path]:
    """The files listed in `READS` for the notebook or module at `path`."""
    globs = READS.get(path.relative_to(ROOT).as_posix(), ())
    return {f for pattern in globs for f in ROOT.glob(pattern) if f.is_file()}


def dependencies(notebook: Path) -> set[Path]:
    """Every file a run of `notebook` depends on, besides the notebook: the modules of the
    course package that it imports, directly or through other modules, and what `READS`
    lists for it and for them."""
    names = set().union(*(imported_modules(code) for code in notebook_code(notebook)))
    modules, todo = set(), [f for name in names for f in module_files(name)]
    while todo:
        module = todo.pop()
        if module not in modules:
            modules.add(module)
            imported = module_imports(module)
            todo.extend(f for name in imported for f in module_files(name))
    return modules | reads(notebook) | set().union(*(reads(m) for m in modules))


def dependency_hashes(notebook: Path) -> dict[str, str]:
    """A hash of the content of each file `notebook` depends on, by path from the root."""
    return {
        f.relative_to(ROOT).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()[:16]
        for f in sorted(dependencies(notebook))
    }


def changed_files(recorded: dict | None, now: dict[str, str]) -> list[str]:
    """The files whose hash differs from the one recorded when the cached run was made (all
    of them when nothing was recorded), added and removed ones included."""
    if recorded is None:
        return sorted(now)
    return sorted(f for f in recorded.keys() | now.keys() if recorded.get(f) != now.get(f))


def execution_record(recorded: dict, hashes: dict, result) -> dict:
    """For each notebook now in the cache: the hashes of the files its outputs came from,
    and when it was executed (microseconds since the epoch, as Sphinx times its reads:
    `_ext/course_site.py` reads again a page executed after Sphinx last read it, whose
    source has not changed). A notebook that failed has no entry."""

    def relative(uri):
        return str(Path(uri).resolve().relative_to(ROOT))

    errored = {relative(uri) for uri in result.errored}
    executed = {relative(uri) for uri in result.succeeded}
    now = time.time_ns() // 1_000
    return {
        uri: {
            "files": files,
            "executed": now if uri in executed else recorded.get(uri, {}).get("executed", 0),
        }
        for uri, files in hashes.items()
        if uri not in errored
    }


def fingerprint(notebooks: list[Path], settings: dict, hashes: dict | None = None) -> dict:
    """What a finished run depended on: each notebook's size and modification time, the
    hashes of the files each depends on, and the execution settings."""
    files = {str(p.relative_to(ROOT)): [p.stat().st_size, p.stat().st_mtime_ns] for p in notebooks}
    return {"notebooks": files, "dependencies": hashes or {}, "settings": settings}


def read_json(path: Path) -> dict:
    """The object in the JSON file `path`; empty when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def up_to_date(stamp: dict) -> bool:
    """Whether the last run that succeeded had exactly `stamp`."""
    try:
        return json.loads(STAMP.read_text()) == stamp
    except (OSError, ValueError):
        return False


def damaged_cache() -> str | None:
    """Why the execution cache's database cannot be read (truncated, overwritten), or None
    when it is sound or absent. SQLite's own quick check, a few milliseconds."""
    database = CACHE / "global.db"
    if not database.exists():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
            verdict = db.execute("PRAGMA quick_check").fetchone()
    except sqlite3.DatabaseError as error:
        return str(error)
    return None if verdict and verdict[0] == "ok" else f"quick check: {verdict}"


def repair_cache() -> None:
    """Remove a damaged cache, saying so in one line: every notebook then runs again."""
    problem = damaged_cache()
    if problem:
        print(
            f"the execution cache {CACHE.relative_to(ROOT)} is damaged ({problem}): "
            "removed it; every notebook runs again"
        )
        shutil.rmtree(CACHE)


def run_apart_from_ctrl_c(run):
    """`run()`, in a thread whose processes never see Ctrl-C, while this thread waits for it.

    Ctrl-C reaches every process of the terminal's job. The pool's workers and their
    kernels are started from that thread, with SIGINT blocked, which they inherit: they go
    on instead of printing nbclient's tracebacks, and this thread, which alone receives the
    KeyboardInterrupt, stops them all (`stop_children`).
    """
    box = {}

    def target():
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            box["result"] = run()
        except BaseException as error:  # handed to the waiting thread
            box["error"] = error

    thread = threading.Thread(target=target, name="execute", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.2)
    if "error" in box:
        raise box["error"]
    return box["result"]


def stop_children() -> None:
    """Kill every process this one started, the kernels its workers started included.

    The pool would replace a killed worker at once (its handler thread polls every 0.1 s),
    and a new worker would outlive this process: first the pools are told to make no more.
    """
    import gc
    import multiprocessing.pool

    import psutil

    for pool in [o for o in gc.get_objects() if isinstance(o, multiprocessing.pool.Pool)]:
        handler = getattr(pool, "_worker_handler", None)
        if handler is not None:
            handler._state = multiprocessing.pool.TERMINATE
    time.sleep(0.3)  # a handler in its poll sees the state before it forks again
    for _ in range(5):
        children = psutil.Process().children(recursive=True)  # before the workers die
        if not children:
            return
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        psutil.wait_procs(children, timeout=5)


def main(argv: list[str] | None = None) -> int:
    """Execute every notebook of the book into the cache; 1 if any failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serial", action="store_true", help="one notebook at a time")
    args = parser.parse_args(argv)
    settings = execution_settings()
    repair_cache()
    notebooks = book_notebooks()
    hashes = {str(p.relative_to(ROOT)): dependency_hashes(p) for p in notebooks}
    stamp = fingerprint(notebooks, settings, hashes)
    if up_to_date(stamp):
        print(f"{len(notebooks)} notebooks unchanged since they were executed into the cache")
        return 0
    from jupyter_cache import get_cache
    from jupyter_cache.executors import load_executor

    if not args.serial:
        run_side_by_side()
    cache = get_cache(CACHE)
    recorded = read_json(DEPENDENCIES)
    for path in notebooks:
        cache.add_nb_to_project(str(path), read_data=MYST_READER)
        uri = str(path.relative_to(ROOT))
        cached = cache.get_cached_project_nb(str(path))
        changed = changed_files(recorded.get(uri, {}).get("files"), hashes[uri])
        if cached is not None and changed:
            cache.remove_cache(cached.pk)  # its outputs came from other versions of these
            if uri not in recorded:
                print(f"{uri}: run again, no record of the files its outputs came from")
            else:
                more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
                print(f"{uri}: run again, changed since: {', '.join(changed[:3])}{more}")
    logger = logging.getLogger("execute")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    executor = load_executor("local-serial" if args.serial else "local-parallel", cache, logger)
    before = {str(p) for p in notebooks if cache.get_cached_project_nb(str(p)) is not None}
    try:
        result = run_apart_from_ctrl_c(
            lambda: executor.run_and_cache(
                timeout=settings["timeout"], allow_errors=settings.get("allow_errors", False)
            )
        )
    except KeyboardInterrupt:
        stop_children()
        done = [
            str(p)
            for p in notebooks
            if str(p) not in before and cache.get_cached_project_nb(str(p)) is not None
        ]
        partial = SimpleNamespace(succeeded=done, errored=[])
        DEPENDENCIES.write_text(json.dumps(execution_record(recorded, hashes, partial), indent=1))
        STAMP.unlink(missing_ok=True)
        print(
            f"\ninterrupted: every notebook run stopped; the cache keeps {len(done)} notebook(s) "
            "executed in this run, and the next run starts from there",
            file=sys.stderr,
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)  # the pool's thread is stuck on workers that are gone: don't join it
    for uri in result.errored:
        record = cache.get_project_record(uri)
        print(f"\n{uri} failed:\n{record.traceback}", file=sys.stderr)
    print(f"executed {len(result.succeeded)} notebook(s), {len(result.errored)} failed")
    DEPENDENCIES.write_text(json.dumps(execution_record(recorded, hashes, result), indent=1))
    if result.errored:
        STAMP.unlink(missing_ok=True)
        return 1
    STAMP.write_text(json.dumps(stamp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
