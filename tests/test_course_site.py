"""_ext/course_site.py: the search index keeps every page's title words across builds."""

import importlib.util
import json
from types import SimpleNamespace

from course.book import ROOT

spec = importlib.util.spec_from_file_location("course_site", ROOT / "_ext" / "course_site.py")
course_site = importlib.util.module_from_spec(spec)
spec.loader.exec_module(course_site)


def test_title_words_of_pages_not_rewritten_reach_the_search_index():
    # An incremental build: the environment remembers both pages' title words, but only
    # chapters/b was written now, so Sphinx's indexer only has b's entries.
    env = SimpleNamespace(
        course_title_index={
            "chapters/a": {("views", "views-one-storage", "main")},
            "chapters/b": {("backward", "backward-pass", "main")},
        }
    )
    indexer = SimpleNamespace(
        _index_entries={"chapters/b": [("backward", "backward-pass", "main")]}
    )
    app = SimpleNamespace(env=env, builder=SimpleNamespace(indexer=indexer))
    assert course_site.keep_title_index_in_search(app) == []
    assert indexer._index_entries["chapters/a"] == [("views", "views-one-storage", "main")], (
        "a page that was not rewritten lost its section entries from the search index"
    )
    assert indexer._index_entries["chapters/b"] == [("backward", "backward-pass", "main")]


def test_a_page_read_again_forgets_its_old_title_words():
    env = SimpleNamespace(course_title_index={"chapters/a": {("old", "x", "main")}})
    course_site.forget_title_index(None, env, "chapters/a")
    assert "chapters/a" not in env.course_title_index


def test_an_edited_stylesheet_makes_the_build_copy_the_assets(tmp_path):
    (tmp_path / "_static").mkdir()
    (tmp_path / "_ext").mkdir()
    css = tmp_path / "_static" / "course.css"
    css.write_text("a {}")
    app = SimpleNamespace(srcdir=str(tmp_path), config=SimpleNamespace(root_doc="intro"))
    env = SimpleNamespace(found_docs={"intro", "chapters/a"})
    assert course_site.rebuild_when_assets_change(app, env, set(), set(), set()) == ["intro"]
    assert course_site.rebuild_when_assets_change(app, env, set(), set(), set()) == [], (
        "nothing changed since the last build, yet a page is read again"
    )
    css.write_text("a { color: red }")
    later = env.course_assets_mtime + 10
    import os

    os.utime(css, (later, later))
    assert course_site.rebuild_when_assets_change(app, env, set(), set(), set()) == ["intro"], (
        "an edited stylesheet does not make the build copy _static again"
    )
    extension = tmp_path / "_ext" / "course_site.py"
    extension.write_text("# shapes every page")
    os.utime(extension, (later + 10, later + 10))
    assert course_site.rebuild_when_assets_change(app, env, set(), set(), set()) == [
        "chapters/a",
        "intro",
    ], "an edited extension must reach every page"
    assert course_site.rebuild_when_assets_change(app, env, set(), set(), set()) == []


def test_a_page_executed_again_after_sphinx_read_it_is_read_again(tmp_path, monkeypatch):
    """tools/execute.py runs a notebook again when a module it imports changed; its source
    did not change, so only this handler makes Sphinx read the new outputs."""
    from tools import execute

    monkeypatch.setattr(execute, "ROOT", tmp_path)
    result = SimpleNamespace(succeeded=[str(tmp_path / "chapters/a.md")], errored=[])
    earlier = {"chapters/b.md": {"files": {}, "executed": 5}}
    hashes = {"chapters/a.md": {}, "chapters/b.md": {}}
    record = execute.execution_record(earlier, hashes, result)
    (tmp_path / execute.EXECUTION_RECORD).write_text(json.dumps(record))
    read_at = record["chapters/a.md"]["executed"] - 1  # read just before the new run
    env = SimpleNamespace(
        mystnb_config=SimpleNamespace(execution_cache_path=str(tmp_path)),
        all_docs={"chapters/a": read_at, "chapters/b": read_at, "intro": 0},
    )
    assert course_site.reread_pages_executed_since(None, env, set(), set(), set()) == ["chapters/a"]
    env.all_docs["chapters/a"] = read_at + 2  # read after it ran
    assert course_site.reread_pages_executed_since(None, env, set(), set(), set()) == []
    (tmp_path / execute.EXECUTION_RECORD).write_text("{broken")
    assert course_site.reread_pages_executed_since(None, env, set(), set(), set()) == []
