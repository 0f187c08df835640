"""A Sphinx extension for the course site: offline math, clean scripts, full downloads, alt text.

- MathJax is served from ``_static/mathjax`` (``mathjax_path`` in ``_config.yml``). Jupyter
  Book adds every ``.js`` file under ``_static`` to every page; MathJax must instead load
  only on pages with math, through Sphinx's own mathjax extension, so it is taken out of
  that list here.
- sphinx-thebe and sphinx-togglebutton register their inline settings twice, so each
  page declared ``const THEBE_JS_URL`` twice, a JavaScript error on every page; each
  script now appears once.
- myst-nb writes ``jupyter_execute/<page>.ipynb``, the notebook that the download menu
  offers, from the notebook it read; when the outputs come from the jupyter-cache they
  go to a copy, and that file has no outputs. They are merged into it from the cache.
- The theme's header bar is not drawn (``templates/sections/header.html``): its hidden
  buttons took the clicks meant for the visible ☰ and Contents buttons.
- Search ranks the chapters' sections: Sphinx's search only matches a section title when
  the query is at least half as long as the title, so "view" found four "Overview"
  sections and never "Views: one storage, many shapes". Every word of a chapter's
  section titles becomes a (main) index entry pointing at its section, and
  ``search_scorer.js`` names the section in the result and ranks a section whose title
  starts with the word first.
- sphinx-exercise titles an unnumbered exercise "Exercise (1.1 — Predict the shape)"
  and its solution "Solution to Exercise (1.1 — ...)": the brackets go, so that they
  read "Exercise 1.1 — Predict the shape".
- sphinx-exercise gives every exercise's body one id, and every solution's body another;
  those ids become classes, so that each id on a page is unique.
- A page whose notebook was executed again (a module of ``course`` it imports
  changed) is read again, though its source is unchanged.
- An image in a cell's output has no alt text unless its cell says so (``mystnb: image:
  alt:``), and the HTML writer then falls back to the file name. Such an image gets its
  figure's caption as alt text, or failing that a sentence naming where it comes from.
"""

import json
import re
from pathlib import Path

import nbformat
from docutils import nodes
from jupyter_cache import get_cache
from sphinx import addnodes
from sphinx.transforms.post_transforms import SphinxPostTransform

from course.book import EXECUTION_RECORD

MATHJAX_DIR = "mathjax/"
TEMPLATES = Path(__file__).resolve().parent / "templates"


def keep_mathjax_off_pages_without_math(app, config):
    """Drop the MathJax files that Jupyter Book put into ``html_js_files``."""
    config.html_js_files = [
        entry
        for entry in config.html_js_files
        if not (entry if isinstance(entry, str) else entry[0]).startswith(MATHJAX_DIR)
    ]


def write_executed_notebook(app, doctree):
    """Put the cached outputs into the page's notebook in ``jupyter_execute``."""
    config = app.env.mystnb_config
    path = Path(config.output_folder, *f"{app.env.docname}.ipynb".split("/"))
    if config.execution_mode != "cache" or not path.is_file():
        return
    try:
        _, executed = get_cache(config.execution_cache_path).merge_match_into_notebook(
            nbformat.read(path, as_version=4)
        )
    except KeyError:  # not in the cache: it failed, or was not executed
        return
    nbformat.write(executed, path)


def drop_duplicate_scripts(app, pagename, templatename, context, doctree):
    """Keep the first of identical ``<script>`` entries of a page."""
    seen, unique = set(), []
    for script in context.get("script_files", []):
        # the same inline script comes once with filename None, once with ""
        key = (script.filename or "", repr(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"][:] = unique  # the builder's own list: keep it, edit it


def in_cell_output(node) -> bool:
    """Whether ``node`` sits in the output of a notebook cell."""
    while node is not None:
        if "cell_output" in node.get("classes", []):
            return True
        node = node.parent
    return False


def caption_of(node) -> str:
    """The caption of the figure around ``node``, or ``""``."""
    while node is not None and not isinstance(node, nodes.figure):
        node = node.parent
    if node is None:
        return ""
    captions = list(node.findall(nodes.caption))
    return captions[0].astext().strip() if captions else ""


def give_output_images_alt_text(app, doctree, docname):
    """Set an alt text on every cell-output image that has none."""
    title = next(iter(doctree.findall(nodes.title)), None)
    page = title.astext() if title is not None else docname
    for image in doctree.findall(nodes.image):
        if image.get("alt", "").strip() or not (in_cell_output(image) or caption_of(image)):
            continue
        image["alt"] = caption_of(image) or f"Figure drawn by the code cell above, on page {page}"


def use_course_templates(app, config):
    """Put ``_ext/templates`` first on the template path (see ``sections/header.html``),
    and rank search results with ``search_scorer.js``."""
    config.templates_path = [str(TEMPLATES), *config.templates_path]
    config.html_search_scorer = str(Path(__file__).resolve().parent / "search_scorer.js")


TITLE_WORD = re.compile(r"[A-Za-z][A-Za-z_-]{3,}")
COMMON_WORDS = {"with", "what", "when", "that", "this", "does", "from", "into", "your"}


def index_section_titles(app, doctree):
    """An index entry for each word of each section title of a chapter, at its section."""
    if not app.env.docname.startswith("chapters/"):
        return
    for section in doctree.findall(nodes.section):
        if not section["ids"] or not isinstance(section[0], nodes.title):
            continue
        words = dict.fromkeys(
            word.lower()
            for word in TITLE_WORD.findall(section[0].astext())
            if word.lower() not in COMMON_WORDS
        )
        entries = [("single", word, section["ids"][0], "main", None) for word in words]
        if entries:
            section.insert(1, addnodes.index(entries=entries, inline=False))
            index = app.env.course_title_index = getattr(app.env, "course_title_index", {})
            index.setdefault(app.env.docname, set()).update(
                (word, target, main) for _, word, target, main, _ in entries
            )


def forget_title_index(app, env, docname):
    """A page read again gets its title words anew."""
    getattr(env, "course_title_index", {}).pop(docname, None)


def keep_title_index_in_search(app):
    """Put every page's title words into the search index, not only the pages written now.

    Sphinx 7.4 gathers a page's index entries when it writes the page, and keeps them in
    memory only: after an incremental build, `searchindex.js` would hold the entries of
    the rewritten pages alone, and search would stop ranking sections. The entries are
    kept in the pickled environment instead, and restored here, before the index is dumped.
    """
    indexer = getattr(app.builder, "indexer", None)
    if indexer is None:
        return []
    for docname, entries in getattr(app.env, "course_title_index", {}).items():
        if not indexer._index_entries.get(docname):
            indexer._index_entries[docname] = sorted(entries)
    return []


class ExerciseTitlesWithoutBrackets(SphinxPostTransform):
    """ "Exercise (1.1 — Title)" becomes "Exercise 1.1 — Title" (after sphinx-exercise)."""

    default_priority = 30  # sphinx-exercise builds its titles at 20 to 22

    def run(self):
        """Rewrite the titles of exercise and solution boxes in place."""
        for title in self.document.findall(nodes.title):
            owner = type(title.parent).__name__
            if not owner.startswith(("exercise", "solution")):
                continue
            if owner.startswith("solution"):
                # A click on a dropdown's title opens it: no link in the title to jump away.
                for link in list(title.findall(nodes.reference)):
                    link.parent.replace(link, list(link.children))
            texts = [t for t in title.findall(nodes.Text)]
            opening = next((t for t in texts if str(t) == " ("), None)
            closing = next((t for t in reversed(texts) if str(t) == ")"), None)
            if opening is None or closing is None:
                continue
            opening.parent.replace(opening, nodes.Text(" "))
            closing.parent.remove(closing)


def newest_change(folder: Path) -> float:
    """The latest modification time of a file under `folder` (0 if it holds none)."""
    return max((f.stat().st_mtime for f in folder.rglob("*") if f.is_file()), default=0.0)


def rebuild_when_assets_change(app, env, added, changed, removed):
    """Re-read the front page when a file under `_static` has changed, every page when
    a file under `_ext` has.

    With no page out of date Sphinx stops before copying `_static`: an edited stylesheet
    would not reach the site until some page changed. One page read again (its notebook
    comes from the cache) lets the build finish and copy the assets. An extension (this
    file, the templates) shapes every page, so all are read and written again.
    """
    static, ext = (
        newest_change(Path(app.srcdir, "_static")),
        newest_change(Path(app.srcdir, "_ext")),
    )
    seen_static = getattr(env, "course_assets_mtime", 0.0)
    seen_ext = getattr(env, "course_ext_mtime", 0.0)
    env.course_assets_mtime, env.course_ext_mtime = static, ext
    if ext > seen_ext:
        return sorted(env.found_docs)
    return [app.config.root_doc] if static > seen_static else []


def reread_pages_executed_since(app, env, added, changed, removed):
    """Re-read the pages whose notebook `tools/execute.py` ran again after Sphinx read them.

    Sphinx reads a page again when its source changes. A notebook is also run again when a
    module of `course` it imports, or a file it reads, has changed: same source, new
    outputs, which would otherwise never reach the page.
    """
    record = Path(env.mystnb_config.execution_cache_path, EXECUTION_RECORD)
    try:
        executed = json.loads(record.read_text())
    except (OSError, ValueError):
        return []
    pages = []
    for notebook, entry in executed.items():
        page = str(Path(notebook).with_suffix("").as_posix())
        if page in env.all_docs and entry.get("executed", 0) > env.all_docs[page]:
            pages.append(page)
    return pages


SHARED_IDS = ("exercise-content", "solution-content")


def unique_exercise_ids(app, doctree, docname):
    """sphinx-exercise gives the body of every exercise the id "exercise-content" and of
    every solution "solution-content": one id on many elements of a page. Nothing links
    to them, so each becomes a class instead."""
    for section in doctree.findall(nodes.section):
        for shared in SHARED_IDS:
            if shared in section["ids"]:
                section["ids"].remove(shared)
                section["classes"].append(shared)


def setup(app):
    """Register the course's handlers and transform with Sphinx."""
    app.add_post_transform(ExerciseTitlesWithoutBrackets)
    app.connect("doctree-read", index_section_titles)
    app.connect("env-purge-doc", forget_title_index)
    app.connect("env-get-outdated", rebuild_when_assets_change)
    app.connect("env-get-outdated", reread_pages_executed_since)
    app.connect("html-collect-pages", keep_title_index_in_search)
    app.connect("config-inited", keep_mathjax_off_pages_without_math)
    app.connect("config-inited", use_course_templates)
    app.connect("doctree-read", write_executed_notebook)
    app.connect("doctree-resolved", give_output_images_alt_text)
    app.connect("doctree-resolved", unique_exercise_ids)
    # early: Sphinx stops calling handlers of this event at the first that returns a value
    app.connect("html-page-context", drop_duplicate_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
