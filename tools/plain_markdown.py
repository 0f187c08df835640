"""MyST Markdown as plain Jupyter Markdown: what Colab and plain Jupyter render.

The pages are MyST notebooks; Colab and plain Jupyter render CommonMark with `$…$` math
and simple HTML, not MyST. `convert` rewrites a Markdown cell from the tree that MyST's
own parser (myst-parser's markdown-it, the one the site is built with) makes of it:

- an exercise becomes a heading, "Exercise 1.1 — Predict the shape";
- a solution becomes a closed `<details>` box, "Solution to Exercise 1.1", holding the
  code and the written answer that its `literalinclude` and `include` name, read from the
  solution notebook (by Sphinx's own reader of `literalinclude` options); a solution is
  never a code cell, so "Run All" cannot overwrite the learner's function;
- an admonition becomes a blockquote with its title in bold, a `literalinclude` a code
  block (shown, not run);
- a `{ref}` becomes a link to its anchor on the published site (`html.baseurl` in
  `_config.yml`), and so does a link to another page's `.md`;
- `(label)=` targets and `%` comments are dropped.

Blocks without MyST keep their lines as written. Any other directive or role is an error
naming the page: no MyST reaches a learner unconverted.
"""

import functools
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import yaml
from docutils.parsers.rst.directives.admonitions import Admonition
from docutils.parsers.rst.directives.misc import Include
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from myst_parser.config.main import MdParserConfig
from myst_parser.parsers.directives import parse_directive_text
from myst_parser.parsers.mdit import create_md_parser
from sphinx.directives.code import LiteralInclude, LiteralIncludeReader
from sphinx_exercise.directive import ExerciseDirective, SolutionDirective

from course.book import toc_pages

ROOT = Path(__file__).resolve().parent.parent
"""The book's folder: the one these tools belong to."""

ADMONITIONS = ("note", "tip", "hint", "important", "warning", "caution", "attention", "danger")
DIRECTIVES = {
    "exercise": ExerciseDirective,
    "solution": SolutionDirective,
    "admonition": Admonition,
    "literalinclude": LiteralInclude,
    "include": Include,
    **dict.fromkeys(ADMONITIONS, Admonition),
}
"""The directives the pages use, with the class whose options MyST parses them by."""
DROPPED = {"myst_target", "myst_line_comment"}
"""Block tokens a learner's notebook leaves out: `(label)=` and `% comment` lines."""
UNSUPPORTED = {"dl_open", "myst_block_break", "front_matter"}
"""Block tokens that have no plain-Markdown form here: definition lists, `+++` breaks
inside a cell, front matter."""


class ConversionError(ValueError):
    """A page holds MyST that has no plain-Markdown form here."""


@functools.cache
def parser():
    """myst-parser's markdown-it, with the extensions the book enables (_config.yml)."""
    extensions = set(config()["parse"]["myst_enable_extensions"])
    return create_md_parser(MdParserConfig(enable_extensions=extensions), RendererHTML)


@functools.cache
def config() -> dict:
    """The book's `_config.yml`."""
    return yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))


def site_url() -> str:
    """Where the book is published, without a trailing slash."""
    return config()["html"]["baseurl"].rstrip("/")


def repository_url() -> str:
    """The repository's address, from `_config.yml`."""
    return config()["repository"]["url"].rstrip("/")


@dataclass
class Target:
    """Where a `{ref}` leads: a page, an anchor on it, and the text of its title."""

    page: str
    anchor: str
    title: str


@functools.cache
def targets() -> dict[str, Target]:
    """Every label of the book's pages: `(label)=` before a heading, an exercise's
    `:label:`."""
    found = {}
    for page in toc_pages(ROOT):
        path = ROOT / f"{page}.md"
        if not path.is_file():
            continue
        tokens = parser().parse(path.read_text(encoding="utf-8"))
        for index, token in enumerate(tokens):
            if token.type == "myst_target":
                heading = next((t for t in tokens[index + 1 :] if t.type == "inline"), None)
                title = heading.content if heading is not None else token.content
                found[token.content] = Target(page, token.content, title)
            elif directive_name(token) == "exercise":
                parsed = parse(token, page)
                label = parsed.options.get("label")
                if label:
                    found[label] = Target(page, label, f"Exercise {parsed.arguments[0]}")
    return found


def directive_name(token: Token) -> str | None:
    """The name of the directive a fence opens (`{exercise} 1.1 …` → exercise), or None."""
    if token.type not in ("fence", "colon_fence") or not token.info.startswith("{"):
        return None
    return token.info[1:].partition("}")[0]


def parse(token: Token, where: str):
    """A directive's arguments, options and body, as MyST parses them."""
    name = directive_name(token)
    if name not in DIRECTIVES:
        raise ConversionError(f"{where}: no plain-Markdown form for the {{{name}}} directive")
    first_line = token.info[1:].partition("}")[2].strip()
    parsed = parse_directive_text(DIRECTIVES[name], first_line, token.content)
    if parsed.warnings:
        raise ConversionError(f"{where}: {{{name}}}: {parsed.warnings[0].msg}")
    return parsed


@dataclass
class Page:
    """What converting one page's Markdown needs to know as it goes."""

    name: str  # e.g. "exercises/tensors"
    folder: str  # the folder relative links start from, e.g. "exercises"
    level: int = 1  # the level of the last heading seen
    exercises: dict[str, str] = field(default_factory=dict)  # label -> "1.1"

    def resolve(self, path: str) -> Path:
        """A path written in the page, from the repository's root."""
        return ROOT / posixpath.normpath(posixpath.join(self.folder, path))


def convert(text: str, page: Page) -> str:
    """A Markdown cell's MyST source as plain Jupyter Markdown."""
    lines = text.split("\n")
    tokens = parser().parse(text)
    out: list[str] = []
    done = 0  # lines[:done] are in `out`
    for block in top_level_blocks(tokens):
        start, end = block[0].map
        out += lines[done:start]
        out += convert_block(block, lines[start:end], page)
        done = end
    out += lines[done:]
    return "\n".join(out).strip("\n")


def top_level_blocks(tokens: list[Token]) -> list[list[Token]]:
    """The tokens of each block at the top of the tree (a paragraph, a list, a fence …)."""
    blocks, depth = [], 0
    for token in tokens:
        if depth == 0:
            blocks.append([])
        blocks[-1].append(token)
        depth += token.nesting
    return blocks


def convert_block(block: list[Token], lines: list[str], page: Page) -> list[str]:
    """The plain-Markdown lines of one top-level block."""
    first = block[0]
    if first.type in DROPPED:
        return []
    if directive_name(first):
        return convert_directive(first, page)
    for token in block:
        if token.type in UNSUPPORTED or token.type in DROPPED or directive_name(token):
            kind = directive_name(token) or token.type
            raise ConversionError(f"{page.name}: no plain-Markdown form for {kind} here")
    if first.type == "heading_open":
        page.level = int(first.tag[1])
    inlines = [t for t in block if t.type == "inline"]
    return convert_inline("\n".join(lines), inlines, page).split("\n")


def convert_inline(text: str, inlines: list[Token], page: Page) -> str:
    """`text` with each role and each link to a page's `.md` that the parser found in it
    replaced, in order, by a plain link (or `$…$` for `{math}`)."""
    out, cursor = [], 0
    for token in (child for inline in inlines for child in inline.children or []):
        if token.type == "myst_role":
            name = token.meta["name"]
            raw = next(
                (
                    f"{{{name}}}{ticks}{token.content}{ticks}"
                    for ticks in ("`", "``", "```")
                    if f"{{{name}}}{ticks}{token.content}{ticks}" in text[cursor:]
                ),
                None,
            )
            new = role(name, token.content, page)
        elif token.type == "link_open" and is_page_link(token.attrs["href"]):
            href = token.attrs["href"]
            raw, new = f"]({href})", f"]({page_link(href, page)})"
        else:
            continue
        at = text.find(raw, cursor) if raw else -1
        if at < 0:
            raise ConversionError(f"{page.name}: cannot find {raw or token.content!r} in its text")
        out += [text[cursor:at], new]
        cursor = at + len(raw)
    return "".join(out) + text[cursor:]


def role(name: str, content: str, page: Page) -> str:
    """The plain Markdown of a role: a link for `{ref}` and `{doc}`, math for `{math}`."""
    explicit = re.fullmatch(r"(?s)(.*?)\s*<([^<>]+)>", content)
    text, target = (explicit[1], explicit[2]) if explicit else (None, content)
    if name == "ref":
        if target not in targets():
            raise ConversionError(f"{page.name}: {{ref}}`{content}` names no label")
        found = targets()[target]
        return f"[{text or found.title}]({site_url()}/{found.page}.html#{found.anchor})"
    if name == "doc":
        return f"[{text or target}]({page_link(target + '.md', page)})"
    if name == "math":
        return f"${content}$"
    raise ConversionError(f"{page.name}: no plain-Markdown form for the {{{name}}} role")


def is_page_link(href: str) -> bool:
    """Whether a link points at a page's `.md` source (relative, not a URL)."""
    return "://" not in href and href.split("#")[0].endswith(".md")


def page_link(href: str, page: Page) -> str:
    """The published page of a link to a page's `.md`, anchor kept."""
    path, _, anchor = href.partition("#")
    source = page.resolve(path).relative_to(ROOT).with_suffix("")
    return f"{site_url()}/{source.as_posix()}.html" + (f"#{anchor}" if anchor else "")


def convert_directive(token: Token, page: Page) -> list[str]:
    """The plain Markdown of a directive's fence."""
    name = directive_name(token)
    parsed = parse(token, page.name)
    body = "\n".join(parsed.body)
    if name == "exercise":
        title = parsed.arguments[0]
        if "label" in parsed.options:
            page.exercises[parsed.options["label"]] = title.split()[0]
        heading = "#" * min(page.level + 1, 6)
        return [f"{heading} Exercise {title}", "", convert(body, page)]
    if name == "solution":
        label = parsed.arguments[0]
        if label not in page.exercises:
            raise ConversionError(f"{page.name}: a solution to {label}, stated nowhere above")
        summary = f"Solution to Exercise {page.exercises[label]}"
        inner = convert(body, page)
        return ["<details>", f"<summary>{summary}</summary>", "", inner, "", "</details>"]
    if name == "literalinclude":
        return literal_include(parsed, page)
    if name == "include":
        return included(parsed, page)
    title = f"**{parsed.arguments[0] if parsed.arguments else name.title()}**"
    inner = convert(body, page).split("\n")
    return [f"> {title}", ">", *(f"> {line}".rstrip() for line in inner)]


def literal_include(parsed, page: Page) -> list[str]:
    """A code block with what a `literalinclude` shows, read as Sphinx reads it."""
    path = page.resolve(parsed.arguments[0])
    reader = LiteralIncludeReader(
        str(path), parsed.options, SimpleNamespace(source_encoding="utf-8")
    )
    code, _ = reader.read()
    language = parsed.options.get("language", "python" if path.suffix == ".py" else "")
    return [f"```{language}", code.rstrip("\n"), "```"]


def included(parsed, page: Page) -> list[str]:
    """The Markdown an `include` brings in (its `start-line` to `end-line`), converted as
    part of the file it comes from."""
    path = page.resolve(parsed.arguments[0])
    lines = path.read_text(encoding="utf-8").split("\n")
    start, end = parsed.options.get("start-line", 0), parsed.options.get("end-line")
    source = Page(page.name, path.parent.relative_to(ROOT).as_posix(), page.level)
    try:
        return [convert("\n".join(lines[start:end]), source)]
    except ConversionError as error:
        raise ConversionError(
            f"{error} (in the lines {start + 1}-{end} of {parsed.arguments[0]} that it "
            "includes: are the exercises in sync with the solutions? `make exercises`)"
        ) from error
