"""tools/execute.py: a warm run that finds nothing changed stops before loading jupyter-cache."""

import json
import os
import re
from pathlib import Path

import pytest

from tools import execute


def test_a_changed_notebook_or_setting_means_running_again(tmp_path, monkeypatch):
    monkeypatch.setattr(execute, "ROOT", tmp_path)
    monkeypatch.setattr(execute, "STAMP", tmp_path / "executed-notebooks.json")
    notebook = tmp_path / "chapter.md"
    notebook.write_text("print(1)\n")
    settings = {"timeout": 600}
    stamp = execute.fingerprint([notebook], settings)
    assert not execute.up_to_date(stamp)  # no record yet
    execute.STAMP.write_text("{not json")
    assert not execute.up_to_date(stamp)
    execute.STAMP.write_text(json.dumps(stamp))
    assert execute.up_to_date(stamp)
    assert not execute.up_to_date(execute.fingerprint([notebook], {"timeout": 60}))
    notebook.write_text("print(2)\n")  # same size, later time
    os.utime(notebook, ns=(0, notebook.stat().st_mtime_ns + 1))
    assert not execute.up_to_date(execute.fingerprint([notebook], settings))


def test_the_record_lives_in_the_cache_that_make_clean_cache_removes():
    assert execute.STAMP.parent == execute.CACHE


READING = re.compile(r"read_text|read_bytes|\bopen\(|jupytext\.read|safe_load|torch\.load|np\.load")


def test_every_notebook_or_module_that_reads_files_says_what_it_reads():
    """A notebook or course module that reads files needs an entry in READS (maybe empty,
    when it reads only data/ or what it wrote): otherwise an edit of what it reads would
    leave cached outputs stale."""
    sources = [*execute.book_notebooks(), *sorted((execute.ROOT / "course").rglob("*.py"))]
    readers = [
        path.relative_to(execute.ROOT).as_posix()
        for path in sources
        if READING.search(
            "\n".join(execute.notebook_code(path))
            if path.suffix == ".md"
            else path.read_text(encoding="utf-8")
        )
    ]
    missing = [reader for reader in readers if reader not in execute.READS]
    assert not missing, f"read files but have no entry in tools/execute.py's READS: {missing}"
    stale = [entry for entry in execute.READS if entry not in readers]
    assert not stale, f"READS lists what reads no file (any more): {stale}"


def test_what_the_book_s_notebooks_depend_on():
    def deps(page):
        return {
            f.relative_to(execute.ROOT).as_posix()
            for f in execute.dependencies(execute.ROOT / page)
        }

    forward = deps("solutions/forward.md")
    assert {
        "course/__init__.py",
        "course/checks/__init__.py",
        "course/checks/forward.py",
    } <= forward
    assert "solutions/engine.md" in forward  # through course.notebooks, which reads it
    assert "course/checks/tensors.py" not in forward
    intro = deps("intro.md")
    assert {"_toc.yml", "chapters/tensors.md", "solutions/engine.md"} <= intro  # it reads them


def make_package(root: Path) -> None:
    (root / "course" / "sub").mkdir(parents=True)
    (root / "course" / "__init__.py").write_text("")
    (root / "course" / "sub" / "__init__.py").write_text("")
    (root / "course" / "sub" / "a.py").write_text(
        "import numpy\n\ndef f():\n    from course import b  # imported late, still counted\n"
    )
    (root / "course" / "b.py").write_text("from course.sub.a import f as g\n")
    (root / "course" / "unused.py").write_text("")


def test_dependencies_follow_imports_through_the_package(tmp_path, monkeypatch):
    monkeypatch.setattr(execute, "ROOT", tmp_path)
    execute.module_imports.cache_clear()
    make_package(tmp_path)
    notebook = tmp_path / "page.md"
    notebook.write_text(
        "Prose: import course.unused is not code.\n\n"
        "```{code-cell} ipython3\n:tags: [remove-cell]\n%matplotlib inline\n"
        "from course.sub import (\n    a,\n)\n```\n"
    )
    found = {f.relative_to(tmp_path).as_posix() for f in execute.dependencies(notebook)}
    expected = {"course/__init__.py", "course/sub/__init__.py", "course/sub/a.py", "course/b.py"}
    assert found == expected
    monkeypatch.setitem(execute.READS, "course/b.py", ("notes/*.txt",))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "n.txt").write_text("read by b")
    assert "notes/n.txt" in {
        f.relative_to(tmp_path).as_posix() for f in execute.dependencies(notebook)
    }
    execute.module_imports.cache_clear()


def test_a_cell_that_does_not_compile_imports_nothing():
    """The kernel reports the error when the notebook runs; the tool must not crash first."""
    assert execute.imported_modules("%%bash\necho hi\n") == set()
    assert execute.imported_modules("import course.book\nx = (") == set()
    assert execute.imported_modules("x = 1\nimport course.book") == {"course.book"}


def test_changed_files():
    assert execute.changed_files(None, {"a": "1", "b": "2"}) == ["a", "b"]
    assert execute.changed_files({"a": "1", "b": "2"}, {"a": "1", "b": "2"}) == []
    assert execute.changed_files({"a": "1", "c": "3"}, {"a": "9", "b": "2"}) == ["a", "b", "c"]


def cached_output(page: Path) -> str:
    from jupyter_cache import get_cache

    cache = get_cache(execute.CACHE)
    record = cache.get_cached_project_nb(str(page))
    assert record is not None, f"{page} is not in the cache"
    cells = cache.get_cache_bundle(record.pk).nb.cells
    return "".join(o.get("text", "") for cell in cells for o in cell.get("outputs", []))


@pytest.mark.reads_no_notebook
def test_a_notebook_runs_again_when_a_file_it_reads_changes(tmp_path, monkeypatch, capsys):
    """End to end, with jupyter-cache and a kernel: the page's code is unchanged, the file it
    reads is not, so its cached output must not survive."""
    page = small_book(
        tmp_path,
        monkeypatch,
        "from pathlib import Path\nprint(Path('fact.txt').read_text())",
    )
    fact = tmp_path / "fact.txt"
    fact.write_text("first version")
    monkeypatch.setitem(execute.READS, "page.md", ("fact.txt",))
    assert execute.main(["--serial"]) == 0
    assert "first version" in cached_output(page)
    assert execute.main(["--serial"]) == 0
    assert "unchanged since they were executed" in capsys.readouterr().out
    fact.write_text("second version")
    assert execute.main(["--serial"]) == 0
    assert "page.md: run again, changed since: fact.txt" in capsys.readouterr().out
    assert "second version" in cached_output(page)


def small_book(tmp_path, monkeypatch, code: str) -> Path:
    """tools/execute.py pointed at a one-page book in `tmp_path` whose cell runs `code`."""
    monkeypatch.setattr(execute, "ROOT", tmp_path)
    monkeypatch.setattr(execute, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(execute, "STAMP", tmp_path / "cache" / "executed-notebooks.json")
    monkeypatch.setattr(execute, "DEPENDENCIES", tmp_path / "cache" / "deps.json")
    monkeypatch.setattr(execute, "run_side_by_side", lambda: None)
    page = tmp_path / "page.md"
    page.write_text(
        "---\njupytext:\n  text_representation:\n    extension: .md\n    format_name: myst\n"
        "kernelspec:\n  display_name: Python 3\n  language: python\n  name: python3\n---\n\n"
        f"```{{code-cell}} ipython3\n{code}\n```\n"
    )
    monkeypatch.setattr(execute, "book_notebooks", lambda: [page])
    monkeypatch.setattr(execute, "execution_settings", lambda: {"timeout": 60})
    return page


@pytest.mark.reads_no_notebook
def test_a_damaged_cache_is_reported_in_one_line_and_rebuilt(tmp_path, monkeypatch, capsys):
    page = small_book(tmp_path, monkeypatch, "print('the output')")
    assert execute.main(["--serial"]) == 0
    database = execute.CACHE / "global.db"
    database.write_bytes(database.read_bytes()[:1000])  # a write cut short
    assert execute.damaged_cache(), "a truncated database passed SQLite's check"
    capsys.readouterr()
    assert execute.main(["--serial"]) == 0  # nothing changed: still noticed
    out = capsys.readouterr().out
    assert "the execution cache cache is damaged" in out, out
    assert "the output" in cached_output(page)
    assert execute.damaged_cache() is None
    database.write_bytes(b"not a database at all " * 100)
    page.write_text(page.read_text().replace("the output", "an edit"))
    assert execute.main(["--serial"]) == 0  # after an edit
    assert "is damaged (file is not a database)" in capsys.readouterr().out
    assert "an edit" in cached_output(page)


@pytest.mark.reads_no_notebook
def test_ctrl_c_stops_every_run_at_once_kernels_included(tmp_path):
    """A cold run interrupted: the tool exits within seconds with one line, no traceback,
    and no kernel is left running."""
    import signal
    import subprocess
    import sys
    import time

    import psutil

    pid_file = tmp_path / "kernel.pid"
    script = tmp_path / "run.py"
    code = f"import os, time\nPath({str(pid_file)!r}).write_text(str(os.getpid()))\ntime.sleep(120)"
    code = "from pathlib import Path\n" + code
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(execute.ROOT)!r})\n"
        "from pathlib import Path\n"
        "import pytest\n"
        "from tools import execute\n"
        "from tests.test_execute import small_book\n"
        "with pytest.MonkeyPatch.context() as mp:\n"
        f"    small_book(Path({str(tmp_path / 'book')!r}), mp, {code!r})\n"
        "    sys.exit(execute.main([]))\n"
    )
    (tmp_path / "book").mkdir()
    run = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's job is
        # with Ctrl-C handled, as in a terminal: a shell's background job (`make test &`)
        # starts with it ignored, which the tool would inherit, and the test would hang
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the kernel never started"
        assert run.poll() is None, run.communicate()
        time.sleep(0.2)
    kernel = int(pid_file.read_text())
    os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C sends to the terminal's job
    started = time.monotonic()
    # the pipes close when every process holding them has ended: a worker the pool forked
    # anew, left running after the tool, would make this time out
    out, err = run.communicate(timeout=60)
    assert time.monotonic() - started < 20, "the tool took more than 20 s to stop"
    assert run.returncode == 130, (run.returncode, out, err)
    assert "interrupted: every notebook run stopped" in err, err
    assert "Traceback" not in err, err
    assert not psutil.pid_exists(kernel) or psutil.Process(kernel).status() == "zombie", (
        "the kernel still runs"
    )
