"""The site on a phone (390×844, touch), used as a reader uses it.

A section tapped in the Contents drawer closes the drawer; headings break identifiers
after a dot or an underscore, never inside a word; the comments and docstrings of the
exercise stubs fit the screen; a code block or an equation wider than the screen shows
that it scrolls; the "Back to top" button covers no heading; the execution statistics
show all their columns.
"""

import re

import pytest

from tests.site.pages import PAGES, PHONE, listing, probe
from tests.site.reader import (
    COVERED_HEADINGS_JS,
    JUMP_TARGET_JS,
    LINE_BREAKS_JS,
    bad_break,
    edge_shading,
    in_view,
    visible_one,
)

pytestmark = pytest.mark.site

EXERCISES = [page for page in PAGES if page.startswith("exercises/")]
DISTRIBUTED = "chapters/distributed"


def test_a_section_tapped_in_the_contents_drawer_closes_it(visits):
    """As on d2l's and QuantEcon's sites: the drawer goes, the section is on screen, and
    the drawer opens again for the next section."""
    context, tab, visit = visits.open("phone")
    try:
        tab.goto(visits.url(DISTRIBUTED), wait_until="load")
        for nth in (3, -2):
            visible_one(tab, ".secondary-toggle").click()
            links = tab.locator("nav.page-toc a.nav-link >> visible=true")
            links.first.wait_for(state="visible", timeout=3000)
            link = links.nth(nth % links.count())
            target = link.get_attribute("href").split("#", 1)[1]
            link.click()
            tab.wait_for_timeout(800)  # smooth scrolling
            assert tab.evaluate("() => !document.querySelector('dialog[open]')"), (
                f"the contents drawer stays open after tapping #{target}"
            )
            assert not link.is_visible(), f"the contents still show after tapping #{target}"
            heading = tab.locator(f"[id='{target}'] >> nth=0")
            assert in_view(tab, heading), f"#{target} is not on screen after the tap"
            covered = tab.evaluate(COVERED_HEADINGS_JS)
            assert not covered, listing(covered)
    finally:
        context.close()
    assert not visit.console_errors, listing(visit.console_errors)


HEADING_CODE = "article :is(h1, h2, h3, h4, h5, h6, .admonition-title) code"
HEADING_BREAKS = probe("heading line breaks", LINE_BREAKS_JS, "phone", arg=HEADING_CODE)


@pytest.mark.parametrize("page", PAGES)
def test_headings_break_identifiers_between_words(visits, page):
    """ "torch.distribut|ed" and "DistributedDataPara|llel" are wrong; "torch.|distributed"
    and "Distributed|DataParallel" are right."""
    breaks = visits.phone(page).probes[HEADING_BREAKS]
    wrong = [f"{before}|{after}" for before, after in breaks if bad_break(before, after)]
    assert not wrong, f"{page}: identifiers broken inside a word:" + listing(wrong)


# Each comment or docstring of a code cell that is shown and starts within its block's
# width: the part of it past the right edge of the block (scrolled to the start), which
# a reader does not see. (A comment after a line of code that is already wider than a
# phone is reached by scrolling, as that code is: the block shows that it scrolls.)
CUT_COMMENTS_JS = """() => {
  const cut = [];
  for (const pre of document.querySelectorAll('article .cell_input pre')) {
    if (!pre.getClientRects().length) continue;
    pre.scrollLeft = 0;
    const box = pre.getBoundingClientRect();
    const edge = box.left + pre.clientLeft + pre.clientWidth
      - parseFloat(getComputedStyle(pre).paddingRight) + 1;
    for (const span of pre.querySelectorAll('.c, .c1, .ch, .cm, .sd')) {
      const range = document.createRange();
      range.selectNodeContents(span);
      const text = span.textContent;
      if (range.getClientRects()[0]?.left >= edge) continue;
      const walker = document.createTreeWalker(span, NodeFilter.SHOW_TEXT);
      let hidden = '';
      for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        for (let i = 0; i < node.length; i++) {
          range.setStart(node, i);
          range.setEnd(node, i + 1);
          const r = range.getClientRects()[0];
          if (r && r.width > 0 && r.right > edge && node.data[i].trim()) hidden += node.data[i];
        }
      }
      if (hidden) cut.push(`${text.trim().slice(0, 70)}  (unseen: ${hidden.slice(0, 30)})`);
    }
  }
  return cut;
}"""
CUT_COMMENTS = probe("comments cut at the edge", CUT_COMMENTS_JS, "phone")


@pytest.mark.parametrize("page", EXERCISES)
def test_the_comments_of_exercise_stubs_fit_the_screen(visits, page):
    """ "# TODO Exercise 1.1: write your code he…" must read to its end without scrolling:
    comments and docstrings wrap within the block."""
    cut = visits.phone(page).probes[CUT_COMMENTS]
    assert not cut, f"{page}: comments cut at the phone's edge:" + listing(cut)


# The visible code blocks and display equations of a page that scroll sideways, and one
# that does not: their indices among `selector`'s elements.
SCROLLING_JS = """(selector) => {
  const all = [...document.querySelectorAll(selector)];
  const shown = all.map((e, i) => [e, i]).filter(([e]) => e.getClientRects().length);
  return {
    scrolling: shown.filter(([e]) => e.scrollWidth > e.clientWidth + 1).map(([, i]) => i),
    fitting: shown.filter(([e]) => e.scrollWidth <= e.clientWidth).map(([, i]) => i),
  };
}"""

CODE = "article .cell_input pre"
MATH = "article mjx-container[display='true']"
WAIT_FOR_MATH_JS = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
}"""
SHADE = 12  # grey levels (of 255) an edge must differ from the background to be seen


@pytest.mark.parametrize("mode", ["light", "dark"])
@pytest.mark.parametrize(
    ("page", "selector"),
    [
        ("chapters/tensors-basics", CODE),
        ("chapters/mnist-optimizers", MATH),
        ("chapters/forward", MATH),
    ],
)
def test_a_block_wider_than_the_phone_shows_that_it_scrolls(visits, page, selector, mode):
    """A shade on the side where more is hidden: on the right at first, on the left
    once scrolled to the end; none on a block that fits. Measured in the screenshot, on
    rows of the block without text."""
    context, tab, _ = visits.open("phone", mode)
    found = {}
    try:
        tab.goto(visits.url(page), wait_until="load")
        tab.evaluate(WAIT_FOR_MATH_JS)
        blocks = tab.evaluate(SCROLLING_JS, selector)
        assert blocks["scrolling"], f"{page}: no {selector} wider than the phone"
        for index in blocks["scrolling"][:3]:
            block = tab.locator(selector).nth(index)
            found[f"{index} at the start"] = edge_shading(tab, block)
            block.evaluate("(e) => { e.scrollLeft = e.scrollWidth; }")
            tab.wait_for_timeout(100)
            found[f"{index} at the end"] = edge_shading(tab, block)
        for index in blocks["fitting"][:1]:
            found[f"{index} (fits)"] = edge_shading(tab, tab.locator(selector).nth(index))
    finally:
        context.close()
    wrong = []
    for name, facts in found.items():
        if facts["right"] is None:
            wrong.append(f"{name}: no row without text to measure")
            continue
        for side in ("left", "right"):
            shown = facts[side] >= SHADE
            if shown != facts[f"more_{side}"]:
                wrong.append(
                    f"{name}: {side} edge shaded {facts[side]:.0f} grey levels, "
                    f"more to see on that side: {facts['more_' + side]}"
                )
    assert not wrong, f"{page} ({mode}), {selector}:" + listing(wrong)


JUMP_JS = """(id) => {
  window.scrollTo(0, document.documentElement.scrollHeight);
  return new Promise((done) => setTimeout(() => { location.hash = id; done(); }, 100));
}"""
# Resolves once the page has stopped scrolling (the same position for eight frames in a
# row, at least 200 ms after the jump) or after 2 s.
SETTLED_JS = """async () => {
  const frame = () => new Promise((done) => requestAnimationFrame(done));
  const start = performance.now();
  let last = -1, still = 0;
  while ((still < 8 || performance.now() - start < 200) && performance.now() - start < 2000) {
    await frame();
    still = scrollY === last ? still + 1 : 0;
    last = scrollY;
  }
}"""


@pytest.mark.parametrize("page", [*EXERCISES[:2], DISTRIBUTED])
def test_back_to_top_covers_no_heading_after_a_jump(visits, page):
    """After a jump up the page (to each exercise, or each section) the "Back to top"
    button shows; no heading on screen is drawn under it or under anything else."""
    context, tab, visit = visits.open("phone")
    covered, shown = [], 0
    try:
        tab.goto(visits.url(page), wait_until="load")
        targets = tab.evaluate(
            "() => [...document.querySelectorAll('article .exercise[id], article section[id]')]"
            ".map((e) => e.id)"
        )
        for target in targets:
            tab.evaluate(JUMP_JS, target)
            tab.evaluate(SETTLED_JS)
            shown += tab.locator("#pst-back-to-top").is_visible()
            covered += [f"#{target}: {c}" for c in tab.evaluate(COVERED_HEADINGS_JS)]
            top, bottom, floor, height = tab.evaluate(JUMP_TARGET_JS, target)
            if not floor - 1 <= top < bottom <= height:
                covered.append(
                    f"#{target}: its title is at {top:.0f}–{bottom:.0f} px, "
                    f"the reading area {floor:.0f}–{height} px"
                )
    finally:
        context.close()
    assert shown, f"{page}: the Back to top button never showed"
    assert not covered, f"{page}: headings drawn over after a jump:" + listing(sorted(set(covered)))
    assert not visit.console_errors, listing(visit.console_errors)


def test_execution_statistics_show_every_column_on_a_phone(visits):
    """Document, Modified, Method, Run Time and Status, all within the screen, without a
    name broken inside a word."""
    context, tab, _ = visits.open("phone")
    try:
        tab.goto(visits.url("reference/execution"), wait_until="load")
        table = tab.locator("article table").first
        cells = table.evaluate(
            """(t) => [...t.querySelectorAll('th, td')].map((c) => {
                const r = c.getBoundingClientRect();
                return [c.textContent.trim(), r.left, r.right, r.width];
            })"""
        )
        breaks = tab.evaluate(LINE_BREAKS_JS, "article table td a, article table td p")
        scroller = table.evaluate(
            "(t) => { const s = t.parentElement; return [s.scrollWidth, s.clientWidth]; }"
        )
    finally:
        context.close()
    width = PHONE["width"]
    outside = [
        f"{text!r} at {left:.0f}–{right:.0f} px"
        for text, left, right, _ in cells
        if right > width or left < 0
    ]
    assert not outside, f"cells outside the {width} px screen:" + listing(outside[:8])
    assert scroller[0] <= scroller[1], f"the table scrolls: {scroller[0]} px in {scroller[1]}"
    headers = " ".join(text for text, *_ in cells[:5])
    assert re.search(r"Run\s*Time", headers), headers
    assert "Status" in headers, headers
    wrong = [f"{before}|{after}" for before, after in breaks if bad_break(before, after)]
    assert not wrong, "words broken in the table:" + listing(wrong)
