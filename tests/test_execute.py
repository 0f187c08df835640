"""tools/execute.py: a warm run that finds nothing changed stops before loading jupyter-cache."""

import json
import os

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
