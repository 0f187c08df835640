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

After a run in which every notebook succeeded, the tool records each notebook's size and
modification time (`executed-notebooks.json`, inside the cache, so `make clean-cache`
removes it too). When nothing has changed since, it stops at once, without loading
jupyter-cache (whose imports alone take about 3 s): a warm `make book` is then the build
alone. Were the cache changed by other means, the build still executes what it lacks.
"""

import argparse
import json
import logging
import sys
from pathlib import Path

import yaml

from course.book import ROOT, execution_settings, run_side_by_side, toc_pages

CACHE = ROOT / "_build" / ".jupyter_cache"
STAMP = CACHE / "executed-notebooks.json"
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


def fingerprint(notebooks: list[Path], settings: dict) -> dict:
    """What a finished run depended on: each notebook's size and modification time, and
    the execution settings."""
    files = {str(p.relative_to(ROOT)): [p.stat().st_size, p.stat().st_mtime_ns] for p in notebooks}
    return {"notebooks": files, "settings": settings}


def up_to_date(stamp: dict) -> bool:
    """Whether the last run that succeeded had exactly `stamp`."""
    try:
        return json.loads(STAMP.read_text()) == stamp
    except (OSError, ValueError):
        return False


def main(argv: list[str] | None = None) -> int:
    """Execute every notebook of the book into the cache; 1 if any failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serial", action="store_true", help="one notebook at a time")
    args = parser.parse_args(argv)
    settings = execution_settings()
    notebooks = book_notebooks()
    stamp = fingerprint(notebooks, settings)
    if up_to_date(stamp):
        print(f"{len(notebooks)} notebooks unchanged since they were executed into the cache")
        return 0
    from jupyter_cache import get_cache
    from jupyter_cache.executors import load_executor

    if not args.serial:
        run_side_by_side()
    cache = get_cache(CACHE)
    for path in notebooks:
        cache.add_nb_to_project(str(path), read_data=MYST_READER)
    logger = logging.getLogger("execute")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    executor = load_executor("local-serial" if args.serial else "local-parallel", cache, logger)
    result = executor.run_and_cache(
        timeout=settings["timeout"], allow_errors=settings.get("allow_errors", False)
    )
    for uri in result.errored:
        record = cache.get_project_record(uri)
        print(f"\n{uri} failed:\n{record.traceback}", file=sys.stderr)
    print(f"executed {len(result.succeeded)} notebook(s), {len(result.errored)} failed")
    if result.errored:
        STAMP.unlink(missing_ok=True)
        return 1
    STAMP.write_text(json.dumps(stamp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
