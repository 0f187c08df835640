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
  sections and never "Views: one storage, many shapes", and "DDP" none; a word found in
  a page's text leads to the top of the page. Every word of a chapter's section titles,
  every name in code or acronym there, and every name a section's text is the first to
  give in code (`all_reduce`, `torch.func.jvp` and `jvp`) become index entries at
  their section, in the search index only (not the general index). ``search_scorer.js``
  names the section in the result and ranks first a section whose title names the query
  in code, then one whose title has the word, then the section that names it.
- Headings and contents entries break an identifier after a dot, an underscore or
  before a CamelCase word (``torch.<wbr>distributed``, ``Distributed<wbr>Data<wbr>Parallel``),
  so that a browser never breaks one inside a word; the execution statistics break a
  page's name after its folder.
- On a solution page, myst-nb labels each hidden solution cell "Show code cell source":
  it reads "Solution to Exercise 1.1 — Predict the shape", as on the exercise pages.
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
    and rank search results with ``search_scorer.js`` (and its data, `write_search_scorer`)."""
    config.templates_path = [str(TEMPLATES), *config.templates_path]
    config.html_search_scorer = str(Path(app.doctreedir, SCORER_BUILT))


TITLE_WORD = re.compile(r"[A-Za-z][A-Za-z_-]{3,}")
COMMON_WORDS = {"with", "what", "when", "that", "this", "does", "from", "into", "your"}
# A Python name, dotted or not: `all_reduce`, `torch.func.jvp`, `autograd.Function`.
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
ACRONYM = re.compile(r"\b[A-Z]{2,}[0-9]*\b")


def name_and_suffixes(name: str) -> list[str]:
    """``torch.func.jvp`` is searched as itself, as ``func.jvp`` and as ``jvp``."""
    parts = name.lower().split(".")
    return [".".join(parts[i:]) for i in range(len(parts))]


def names_in_title(title: nodes.title) -> list[str]:
    """The names a title gives in code (whole: `no_sync`, not `y.t().view(-1)`) and the
    acronyms it uses (DDP), each with its dotted suffixes, lowercase."""
    names = [
        name
        for literal in title.findall(nodes.literal)
        if NAME.fullmatch(literal.astext())
        for name in name_and_suffixes(literal.astext())
    ]
    plain = "".join(t.astext() for t in title.findall(nodes.Text) if not in_literal(t))
    return list(dict.fromkeys(names + [word.lower() for word in ACRONYM.findall(plain)]))


def in_literal(node) -> bool:
    """Whether ``node`` sits inside inline code."""
    while node is not None:
        if isinstance(node, nodes.literal):
            return True
        node = node.parent
    return False


def names_in_text(section: nodes.section) -> set[str]:
    """The names a section's own text gives in inline code (not its title's, not its
    subsections'), with their dotted suffixes: at least 3 characters long."""
    found = set()
    for child in section.children[1:]:
        if isinstance(child, nodes.section):
            continue
        for literal in child.findall(nodes.literal):
            for name in NAME.findall(literal.astext()):
                found.update(n for n in name_and_suffixes(name) if len(n) >= 3)
    return found


def index_section_titles(app, doctree):
    """Record, for a chapter, the search entries of its sections and the names each
    section title gives: its title's words and names, and the names each section is the
    first to give in its text. The page's own title section has the target "" (the top
    of the page); its text (the chapter's opening) names too much to be a target."""
    if not app.env.docname.startswith("chapters/"):
        return
    sections = [s for s in doctree.findall(nodes.section) if s["ids"]]
    sections = [s for s in sections if s.children and isinstance(s[0], nodes.title)]
    entries, title_names, named = set(), {}, set()
    for position, section in enumerate(sections):
        target = section["ids"][0] if position else ""
        words = [w.lower() for w in TITLE_WORD.findall(section[0].astext())]
        names = names_in_title(section[0])
        if names:
            title_names[target] = names
        entries.update((w, target) for w in words if w not in COMMON_WORDS)
        entries.update((name, target) for name in names)
        if position:
            first = names_in_text(section) - named
            entries.update((name, target) for name in first)
            named |= first
    env = app.env
    env.course_title_index = getattr(env, "course_title_index", {})
    env.course_title_index[env.docname] = {(key, target, "main") for key, target in entries}
    env.course_title_names = getattr(env, "course_title_names", {})
    env.course_title_names[env.docname] = title_names


def forget_title_index(app, env, docname):
    """A page read again gets its title words anew."""
    getattr(env, "course_title_index", {}).pop(docname, None)
    getattr(env, "course_title_names", {}).pop(docname, None)


def merge_title_index(app, env, docnames, other):
    """Pages read in parallel bring their entries back to the main environment."""
    for attribute in ("course_title_index", "course_title_names"):
        mine = getattr(env, attribute, {})
        theirs = getattr(other, attribute, {})
        mine.update({d: theirs[d] for d in docnames if d in theirs})
        setattr(env, attribute, mine)


def keep_title_index_in_search(app):
    """Put every page's title words into the search index, not only the pages written now.

    Sphinx 7.4 gathers a page's index entries when it writes the page, and keeps them in
    memory only: after an incremental build, `searchindex.js` would hold the entries of
    the rewritten pages alone, and search would stop ranking sections. The entries are
    kept in the pickled environment instead, and added here, before the index is dumped
    (they are in no page's doctree, so the general index does not list them).
    """
    indexer = getattr(app.builder, "indexer", None)
    if indexer is None:
        return []
    for docname, entries in getattr(app.env, "course_title_index", {}).items():
        known = indexer._index_entries.get(docname) or []
        indexer._index_entries[docname] = sorted(set(known) | set(entries))
    return []


SCORER = Path(__file__).resolve().parent / "search_scorer.js"
SCORER_BUILT = "course_search_scorer.js"


def write_search_scorer(app, env):
    """``search_scorer.js`` with the names each chapter's section titles give, for the
    search page (Sphinx reads the file when it starts writing, after this event)."""
    names = json.dumps(getattr(env, "course_title_names", {}), sort_keys=True)
    Path(app.doctreedir).mkdir(parents=True, exist_ok=True)
    Path(app.doctreedir, SCORER_BUILT).write_text(
        f"var COURSE_TITLE_NAMES = {names};\n{SCORER.read_text(encoding='utf-8')}",
        encoding="utf-8",
    )


class wbr(nodes.Inline, nodes.Element):
    """A place where a line may break: ``<wbr>`` in HTML, nothing in other formats."""


def visit_wbr_html(self, node):
    """Write ``<wbr>``."""
    self.body.append("<wbr>")
    raise nodes.SkipNode


def skip_node(self, node):
    """Write nothing."""
    raise nodes.SkipNode


# After a dot, an underscore or a slash, and before the capital of a CamelCase word.
BREAK = re.compile(r"(?<=[._/])(?=[^._/)])|(?<=[a-z])(?=[A-Z])")


def add_line_breaks(text_node: nodes.Text, pattern=BREAK) -> None:
    """Split ``text_node`` at each place ``pattern`` matches, a ``wbr`` between pieces."""
    text = str(text_node)
    cuts = [m.start() for m in pattern.finditer(text) if 0 < m.start() < len(text)]
    if not cuts:
        return
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    parent = text_node.parent
    index = parent.index(text_node)
    new = [nodes.Text(pieces[0])]
    for piece in pieces[1:]:
        new += [wbr(), nodes.Text(piece)]
    parent[index : index + 1] = new


def break_identifiers_in_titles(node) -> None:
    """Let the code in the titles under ``node`` break between words only."""
    for title in list(node.findall(nodes.title)):
        for literal in list(title.findall(nodes.literal)):
            if next(literal.findall(wbr), None) is None:
                for text in list(literal.findall(nodes.Text)):
                    add_line_breaks(text)


def break_titles_when_read(app, doctree):
    """Before the contents are gathered from the titles (at the default priority)."""
    break_identifiers_in_titles(doctree)


def keep_words_whole(text_node: nodes.Text) -> None:
    """Each word of ``text_node`` unbroken (a line may break between words only)."""
    words = [nodes.inline(w, w, classes=["course-nowrap"]) for w in text_node.split()]
    spaced = [piece for word in words for piece in (nodes.Text(" "), word)][1:]
    text_node.parent.replace(text_node, spaced)


STATISTICS_HEADER = ["Document", "Modified", "Method", "Run Time (s)", "Status"]


def break_page_names_in_statistics(app, doctree, docname):
    """In the execution statistics, "chapters/<wbr>distributed": a phone breaks the name
    after its folder, not inside a word, and "2026-12-06 07:45" between the day and the
    time, not after a hyphen; the table gets a class for the stylesheet."""
    for table in doctree.findall(nodes.table):
        head, body = next(table.findall(nodes.thead), None), next(table.findall(nodes.tbody), None)
        if head is None or body is None:
            continue
        if [entry.astext() for entry in head.findall(nodes.entry)] != STATISTICS_HEADER:
            continue
        table["classes"].append("execution-statistics")
        for row in body.findall(nodes.row):
            for text in list(row[0].findall(nodes.Text)):
                add_line_breaks(text, re.compile(r"(?<=/)"))
            for text in list(row[1].findall(nodes.Text)):
                keep_words_whole(text)


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
        break_identifiers_in_titles(self.document)


SOLUTION_MARK = re.compile(r"# BEGIN SOLUTION (\d+\.\d+)")


def exercise_number(title: str) -> str | None:
    """ "1.1" of "Exercise 1.1 — Predict the shape"."""
    found = re.match(r"Exercise (\d+\.\d+)", title)
    return found[1] if found else None


def exercise_order(number: str) -> tuple[int, ...]:
    """4.2 before 4.10."""
    return tuple(int(part) for part in number.split("."))


def solution_label(numbers: list[str], titles: dict[str, str]) -> str:
    """ "Solution to Exercise 1.1 — Predict the shape", or "Solution to Exercises 4.1,
    4.2 and 4.3" for a cell that solves several."""
    if len(numbers) == 1:
        return f"Solution to {titles.get(numbers[0], 'Exercise ' + numbers[0])}"
    return f"Solution to Exercises {', '.join(numbers[:-1])} and {numbers[-1]}"


class SolutionCellLabels(SphinxPostTransform):
    """On a solution page, a hidden code cell is labelled with the exercises it solves
    (its `# BEGIN SOLUTION 1.1` marks, or the exercise above it), not "Show code cell
    source"."""

    default_priority = 100  # after the exercise titles (30), before myst-nb hides cells (199)

    def run(self):
        """Set the label of each hidden cell of a solution page."""
        if not self.env.docname.startswith("solutions/"):
            return
        titles, above = {}, None
        for node in self.document.findall(nodes.Element):
            if isinstance(node, nodes.title) and type(node.parent).__name__.startswith("exercise"):
                above = exercise_number(node.astext()) or above
                if above:
                    titles[above] = node.astext()
            elif node.get("nb_element") == "cell_code" and node.get("hide_mode"):
                marks = SOLUTION_MARK.findall(node.astext())
                numbers = sorted(set(marks), key=exercise_order) or ([above] if above else [])
                if numbers:
                    node["prompt_show"] = node["prompt_hide"] = solution_label(numbers, titles)


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
    app.add_post_transform(SolutionCellLabels)
    app.add_node(
        wbr,
        html=(visit_wbr_html, None),
        latex=(skip_node, None),
        text=(skip_node, None),
        man=(skip_node, None),
        texinfo=(skip_node, None),
    )
    app.connect("doctree-read", index_section_titles)
    app.connect("doctree-read", break_titles_when_read, priority=400)
    app.connect("doctree-resolved", break_page_names_in_statistics)
    app.connect("env-purge-doc", forget_title_index)
    app.connect("env-merge-info", merge_title_index)
    app.connect("env-updated", write_search_scorer)
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
