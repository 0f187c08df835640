"""Every number in a notebook's prose is backed by its code, or explicitly excused.

The course promises that each number in the text is computed in a visible cell or
asserted in a hidden one. This test cannot read meaning, but it catches the common way
that promise breaks: a number typed into the prose (a speed-up measured once, a threshold
quoted from memory) that no cell ever computes or checks. For each notebook it extracts
the numerals of the reader-visible prose (markdown cells, figure captions and alt texts)
outside math, inline code, code blocks, link targets, labels, directive options and
exercise ids, and requires each to occur as a number in the notebook's own code (a cell
source, visible or hidden, asserts included). `98 %` is also backed by `0.98`.

What is left is listed in ALLOWED below, per notebook, with the reason: a number that is
not a quantity (a year, a version), or one that is checked elsewhere. An entry that is no
longer needed fails too, so the list stays as short as the prose allows.
"""

import re
from decimal import Decimal, InvalidOperation
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(
    p for d in ("chapters", "solutions", "exercises") for p in (ROOT / d).glob("*.md")
)

# notebook → {numeral as written in the prose (commas dropped): why it needs no code}
ALLOWED: dict[str, dict[str, str]] = {}

NUMBER = re.compile(r"(?<![\w.\-/])(\d[\d,_]*(?:\.\d+)?(?:[eE][-+]?\d+)?)(?![\w])")
CODE_NUMBER = re.compile(r"(?<![\w.])(\d[\d_]*(?:\.\d+)?(?:[eE][-+]?\d+)?)(?![\w])")

PROSE_NOISE = [
    (re.compile(r"\$\$.*?\$\$", re.S), " "),  # display math
    (re.compile(r"\$[^$\n]+\$"), " "),  # inline math
    (re.compile(r"`[^`\n]*`"), " "),  # inline code and roles' targets
    (re.compile(r"\]\([^)\s]*\)"), "]"),  # link targets
    (re.compile(r"^\([\w-]+\)=\s*$", re.M), " "),  # labels
    (re.compile(r"^:[\w-]+:.*$", re.M), " "),  # directive options (:label:, :class:)
    # the reading time in a chapter's opening box is an estimate, not a measurement
    (re.compile(r"\*\*Time\*\* about \d+ minutes"), " "),
    (re.compile(r"<!--|-->|\b[A-Z]+ SOLUTION\b|\bEXERCISE ONLY\b"), " "),  # markers
    (re.compile(r"^#+\s+[\d.]+\s", re.M), "# "),  # section numbers
    # exercise and chapter ids: "Exercise 1.4", "1.3 — Normalise", "Chapter 2"
    (re.compile(r"\b(?:[Ee]xercises?|[Cc]hapters?|[Ss]ections?|[Pp]arts?)\s+\d+(?:\.\d+)?"), " "),
    (re.compile(r"\b\d+\.\d+\s+[—–-]\s"), " "),
    # "(7)": a reference to the numbered item 7 of a list
    (re.compile(r"\(\d{1,2}\)"), " "),
]


CODE_FENCE = re.compile(r"^(`{3,}|~{3,})\s*(\{(code|code-block|literalinclude|math)\}|[\w-]*\s*$)")
DIRECTIVE_FENCE = re.compile(r"^(`{3,}|~{3,}|:{3,})")


def without_code_blocks(text: str) -> str:
    """`text` without code and math blocks; a directive (exercise, admonition) keeps its
    body, which is prose, and loses only its fence lines."""
    kept, code_closing, directives = [], None, []
    for line in text.splitlines():
        if code_closing is not None:
            if line.strip() == code_closing:
                code_closing = None
        elif directives and line.strip() == directives[-1]:
            directives.pop()
        elif match := CODE_FENCE.match(line):
            code_closing = match.group(1)
        elif match := DIRECTIVE_FENCE.match(line):
            directives.append(match.group(1))
            kept.append(re.sub(r"^[`~:]+\s*\{[\w:-]+\}", "", line))
        else:
            kept.append(line)
    return "\n".join(kept)


def prose(notebook) -> str:
    """The text a reader sees that is not code: markdown cells and figure captions/alt."""
    parts = []
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            parts.append(cell.source)
        elif cell.cell_type == "code":
            mystnb = cell.metadata.get("mystnb", {})
            parts.append(str(mystnb.get("figure", {}).get("caption", "")))
            parts.append(str(mystnb.get("image", {}).get("alt", "")))
    text = without_code_blocks("\n\n".join(parts))
    for pattern, replacement in PROSE_NOISE:
        text = pattern.sub(replacement, text)
    return text


def value(numeral: str) -> Decimal | None:
    try:
        return Decimal(numeral.replace(",", "").replace("_", ""))
    except InvalidOperation:
        return None


SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")
POWER_OF_TEN = re.compile(r"(\d+(?:\.\d+)?)\s?[·×]\s?10([⁻]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+)")


def prose_numbers(text: str) -> dict[str, set[Decimal]]:
    """Each numeral of `text` (commas dropped) → the values code may back it with.
    `1.8·10³⁰⁸` is read as one number, 1.8e308."""
    text = POWER_OF_TEN.sub(lambda m: f"{m[1]}e{m[2].translate(SUPERSCRIPTS)}", text)
    found = {}
    for match in NUMBER.finditer(text):
        numeral = match.group(1).rstrip(",")
        number = value(numeral)
        if number is None:
            continue
        accepted = {number}
        if re.match(r"\s?%", text[match.end() :]):
            accepted.add(number / 100)
        found[numeral.replace(",", "")] = accepted
    return found


def code_numbers(notebook) -> set[Decimal]:
    numbers = set()
    for cell in notebook.cells:
        if cell.cell_type == "code":
            for match in CODE_NUMBER.finditer(cell.source):
                number = value(match.group(1))
                if number is not None:
                    numbers.add(number)
    return numbers


def unbacked(path: Path) -> set[str]:
    """The numerals in `path`'s prose that no code cell of `path` contains. An exercise
    page is generated from its solution page, which keeps the test-only cells the exercise
    leaves out (and runs them under test): their numbers back the exercise's prose too."""
    notebook = jupytext.read(path)
    in_code = code_numbers(notebook)
    if path.parent.name == "exercises":
        in_code |= code_numbers(jupytext.read(path.parent.parent / "solutions" / path.name))
    return {n for n, values in prose_numbers(prose(notebook)).items() if not values & in_code}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[str(p.relative_to(ROOT)) for p in NOTEBOOKS])
def test_every_prose_number_is_backed_by_code(path):
    name = str(path.relative_to(ROOT))
    allowed = ALLOWED.get(name, {})
    missing = sorted(unbacked(path) - allowed.keys(), key=lambda n: value(n))
    assert not missing, (
        f"{name}: these numbers in the prose are neither computed nor asserted in any code "
        f"cell: {missing}. Compute each in a visible cell, assert it in a `remove-cell` "
        "cell, reword the sentence, or (for a year, a version) add it to ALLOWED in "
        "tests/test_prose_numbers.py with the reason."
    )
    stale = sorted(allowed.keys() - unbacked(path))
    assert not stale, f"{name}: ALLOWED lists numbers the prose no longer needs: {stale}"


def test_extraction_ignores_code_math_links_and_ids():
    text = prose(
        jupytext.reads(
            "(tensors)=\n# T\n\nSee Exercise 1.4, `x.view(3, 4)`, $2^{10}$ and "
            "[notes](https://x.org/v2/a#7).\n\n```{exercise} 1.3 — Rows\n:label: s-3\n```\n"
            "It reaches 98 % on 10,000 images, 3.7× faster, 2·10⁴³⁴.\n",
            fmt="md:myst",
        )
    )
    assert prose_numbers(text).keys() == {"98", "10000", "3.7", "2e434"}, prose_numbers(text)
    assert Decimal("0.98") in prose_numbers(text)["98"]
