"""Outputs that are signal: what a reader reads on a page is the course, not noise.

No page shows IPython's "Exception reporting mode" banner, a raw memory address
(``0x7f…``, which differs on every run) or a path of the machine that built it (a
warning or traceback from inside torch prints where torch is installed); docstrings use
Markdown backticks, so no reStructuredText ````double backticks```` show raw; every line
of code fits the column at desktop width, so no code cell scrolls sideways (offending
lines are listed).
"""

import re

import pytest

from tests.site.pages import PAGES, ROOT, listing, probe

pytestmark = pytest.mark.site

ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,}\b")

# Code blocks (inputs) whose content is wider than the block, with their widest line.
WIDE_CODE_JS = """() => [...document.querySelectorAll('article .cell_input pre')]
  .filter((pre) => pre.scrollWidth > pre.clientWidth + 1)
  .map((pre) => {
    const lines = pre.textContent.split('\\n');
    const widest = lines.reduce((a, b) => (b.length > a.length ? b : a), '');
    return `${widest.length} characters, ${pre.scrollWidth} px in ${pre.clientWidth} px: `
      + widest.trim().slice(0, 90);
  })"""
WIDE_CODE = probe("code wider than its block", WIDE_CODE_JS)


@pytest.mark.parametrize("page", PAGES)
def test_no_exception_mode_banner_or_memory_address(visits, page):
    text = visits.desktop(page).facts["text"]
    assert "Exception reporting mode" not in text, f"{page} shows %xmode's banner"
    addresses = sorted(set(ADDRESS.findall(text)))
    assert not addresses, f"{page} shows raw memory addresses:" + listing(addresses)


# What a path of the building machine contains: the repository's place, or an install's.
BUILD_PATHS = (str(ROOT), "site-packages", "dist-packages")


@pytest.mark.parametrize("page", PAGES)
def test_no_path_of_the_building_machine(visits, page):
    lines = [
        line.strip()[:120]
        for line in visits.desktop(page).facts["text"].splitlines()
        if any(path in line for path in BUILD_PATHS)
    ]
    assert not lines, f"{page} shows paths of the machine that built it:" + listing(lines)


@pytest.mark.parametrize("page", PAGES)
def test_every_id_is_unique(visits, page):
    """A link to `#id` goes to the first element with that id; the others cannot be reached."""
    duplicates = sorted(set(visits.desktop(page).facts["duplicate_ids"]))
    assert not duplicates, f"{page} gives the same id to several elements:" + listing(duplicates)


@pytest.mark.parametrize("page", PAGES)
def test_no_restructuredtext_double_backticks(visits, page):
    lines = [line for line in visits.desktop(page).facts["text"].splitlines() if "``" in line]
    assert not lines, (
        f"{page} shows ``double backticks`` (reStructuredText): use `single` ones:"
        + listing(line.strip()[:100] for line in lines)
    )


@pytest.mark.parametrize("page", PAGES)
def test_code_lines_fit_the_column_at_desktop_width(visits, page):
    wide = visits.desktop(page).probes[WIDE_CODE]
    assert not wide, f"{page}: code lines wider than the column at 1366 px:" + listing(wide)
