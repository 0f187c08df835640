"""The site on a laptop (1366×900), read as a reader reads it.

The page's contents beside it fit their column (no entry cut, no sideways scrollbar) and
break identifiers between words; on the solution pages each hidden solution is labelled
with the exercise it solves, as on the exercise pages.
"""

import re

import pytest

from tests.site.pages import PAGES, SOLUTIONS, listing, probe
from tests.site.reader import LINE_BREAKS_JS, bad_break

pytestmark = pytest.mark.site

# The page's contents (right) and the book's (left): how wide their content is against
# their column, and the entries that stick out of it.
SIDEBARS_JS = """() => [...document.querySelectorAll('.bd-sidebar-secondary, .bd-sidebar-primary')]
  .filter((bar) => bar.getClientRects().length)
  .map((bar) => {
    const edge = bar.getBoundingClientRect().left + bar.clientLeft + bar.clientWidth + 1;
    const textRight = (a) => {
      const range = document.createRange();
      range.selectNodeContents(a);
      return Math.max(...[...range.getClientRects()].map((r) => r.right));
    };
    return {
      name: bar.classList.contains('bd-sidebar-secondary') ? 'contents' : 'book',
      scroll_width: bar.scrollWidth, client_width: bar.clientWidth,
      sticking_out: [...bar.querySelectorAll('a')]
        .filter((a) => a.getClientRects().length && textRight(a) > edge)
        .map((a) => `${a.textContent.trim().slice(0, 50)}: ends ${Math.round(
          textRight(a) - edge)} px past the column`),
    };
  })"""

SIDEBAR_CODE = ".bd-sidebar-secondary code, .bd-sidebar-primary code"
SIDEBARS = probe("sidebars", SIDEBARS_JS)
SIDEBAR_BREAKS = probe("sidebar line breaks", LINE_BREAKS_JS, arg=SIDEBAR_CODE)
# The titles of the exercises and the labels of the hidden cells shown (closed).
SOLUTION_LABELS = probe(
    "solution labels",
    """() => ({
  exercises: [...document.querySelectorAll('article .exercise > .admonition-title')]
    .map((e) => e.innerText),
  labels: [...document.querySelectorAll('article details.hide > summary')]
    .filter((e) => e.getClientRects().length).map((e) => e.innerText),
})""",
)


@pytest.mark.parametrize("page", PAGES)
def test_sidebars_fit_their_columns(visits, page):
    """Chapter 6's `DistributedDataParallel` made the contents 233 px wide in 208 px."""
    probes = visits.desktop(page).probes
    bars, breaks = probes[SIDEBARS], probes[SIDEBAR_BREAKS]
    assert bars, f"{page}: no sidebar found (.bd-sidebar-primary, .bd-sidebar-secondary)"
    for bar in bars:
        assert bar["scroll_width"] <= bar["client_width"], (
            f"{page}: the {bar['name']} sidebar is {bar['scroll_width']} px wide in "
            f"{bar['client_width']} px (a sideways scrollbar):" + listing(bar["sticking_out"])
        )
        assert not bar["sticking_out"], f"{page}, {bar['name']}:" + listing(bar["sticking_out"])
    wrong = [f"{before}|{after}" for before, after in breaks if bad_break(before, after)]
    assert not wrong, f"{page}: contents entries broken inside a word:" + listing(wrong)


@pytest.mark.parametrize("page", SOLUTIONS)
def test_each_solution_is_labelled_with_its_exercise(visits, page):
    """Not "Show code cell source": "Solution to Exercise 1.1 — Predict the shape" (or
    "Solution to Exercises 4.1, 4.2 and 4.3" for a cell that solves several)."""
    shown = visits.desktop(page).probes[SOLUTION_LABELS]
    exercises, labels = shown["exercises"], shown["labels"]
    numbers = {re.search(r"\d+\.\d+", title)[0] for title in exercises}
    assert labels, f"{page}: no hidden solution"
    wrong = [label for label in labels if not label.strip().startswith("Solution to Exercise")]
    assert not wrong, f"{page}: hidden cells labelled" + listing(wrong)
    labelled = {n for label in labels for n in re.findall(r"\d+\.\d+", label)}
    assert labelled <= numbers, f"{page}: labels name exercises not on the page: {labelled}"
    assert numbers <= labelled, f"{page}: exercises without a labelled solution: " + str(
        sorted(numbers - labelled)
    )
