"""The site searched the way a reader searches it, at both widths: the tests of the whole
book (its search index), which `make check` runs whatever page changed.

A test opens a fresh tab at a phone's width (390×844, touch) or a laptop's (1366×900),
searches as a reader does and checks what the reader then sees: the results in a useful
order, and that the result followed lands on its page, its section in view. (Tapping ☰,
Contents, Previous and Next: tests/site/test_navigation.py.)
"""

import re

import pytest

from tests.site.pages import BOOK, CHAPTER_PAGES, SITE, WIDTHS, listing
from tests.site.reader import in_view, visible_one

pytestmark = pytest.mark.site

PAGE = "chapters/tensors"


@pytest.mark.parametrize("width", WIDTHS)
def test_search_dialog_finds_a_section_and_the_result_opens(visits, width):
    context, tab, visit = visits.open(width)
    try:
        tab.goto(visits.url(PAGE), wait_until="load")
        visible_one(tab, ".search-button__button").click()
        field = tab.locator("#pst-search-dialog input[name='q']")
        field.wait_for(state="visible", timeout=3000)
        assert in_view(tab, field), "the search field is not on screen"
        field.fill("broadcasting")
        field.press("Enter")
        tab.wait_for_url("**/search.html?q=broadcasting*", timeout=5000)
        result = tab.locator("#search-results ul.search li a").first
        result.wait_for(state="visible", timeout=15000)
        href = result.get_attribute("href")
        result.click()
        tab.wait_for_url(re.compile(re.escape(href.split("#")[0].split("?")[0])), timeout=5000)
        assert "broadcast" in tab.locator("article").inner_text().lower()
    finally:
        context.close()
    assert not visit.console_errors, listing(visit.console_errors)


# The search page lists its results best first, one a few milliseconds after the other,
# each fetching its page for the summary under it: the first five are all a test reads.
FIRST_RESULTS_SHOWN_JS = """() => document.querySelector('#search-results .search-summary')
  && (document.querySelectorAll('#search-results ul.search li').length >= 5
      || !document.querySelector('#search-results h2')?.textContent.includes('Searching'))"""


def search_results(visits, query: str) -> list[tuple[str, str]]:
    """(title, href) of the first five results of the site's search page for ``query``
    (fewer if it finds fewer), in order."""
    context, tab, _ = visits.open()
    try:
        tab.goto(visits.url("search") + f"?q={query}", wait_until="load")
        tab.wait_for_function(FIRST_RESULTS_SHOWN_JS, timeout=20000)
        return tab.locator("#search-results ul.search li > a").evaluate_all(
            "links => links.slice(0, 5).map((a) => [a.textContent.trim(), a.getAttribute('href')])"
        )
    finally:
        context.close()


# The ranking the search page lists, from the page's own functions: Sphinx's `Search.query`
# ranks with these two calls (the course's scorer reads the query from the address), then
# lists the results from the last one. One tab answers every query of a test process.
RANKED_JS = """(query) => {
  history.replaceState(null, '', '?q=' + encodeURIComponent(query));
  const results = Search._performSearch(...Search._parseQuery(query));
  return results.slice(-5).reverse().map(([docName, title, anchor]) => {
    const link = document.createElement('a');
    link.innerHTML = title;
    return [link.textContent.trim(), docName + DOCUMENTATION_OPTIONS.LINK_SUFFIX + anchor];
  });
}"""


@pytest.fixture(scope="module")
def ranked(visits):
    """``ranked(query)``: (title, href) of the first five results the search page would
    list for ``query``, in order, without loading the page again."""
    context, tab, visit = visits.open()
    tab.goto(visits.url("search"), wait_until="load")
    tab.wait_for_function("() => Search.hasIndex()", timeout=20000)
    yield lambda query: [tuple(result) for result in tab.evaluate(RANKED_JS, query)]
    context.close()
    assert not visit.console_errors, listing(visit.console_errors)


@pytest.mark.parametrize(
    ("query", "page"),
    [("view", "chapters/tensors-views"), ("backward", "chapters/autograd"), ("broadcasting", None)],
)
def test_search_ranks_a_relevant_section_first(visits, ranked, query, page):
    """The first result is a section whose title has the word (not "Overview"), in a
    chapter (the teaching, before exercises that use the word). The page lists what
    `ranked` says it does (the other ranking tests read `ranked`)."""
    results = search_results(visits, query)
    assert [tuple(r) for r in results] == ranked(query), "the page lists another ranking"
    assert results, f"searching {query!r} finds nothing"
    title, href = results[0]
    stem = query[:-3] if query.endswith("ing") else query
    assert re.search(rf"\b{stem}", title, re.IGNORECASE), (
        f"searching {query!r} ranks first {title!r} ({href}); the first five:"
        + listing(results[:5])
    )
    assert href.startswith(page or "chapters/"), f"{query!r}: first result {href}"


def section_titles(page: str) -> dict[str, str]:
    """The id and text of each section heading of a built page (its title's id too)."""
    html = (SITE / f"{page}.html").read_text(encoding="utf-8")
    heading = r'<section[^>]*\bid="([^"]+)"[^>]*>\s*(?:<span id="[^"]*"></span>)*'
    found = re.findall(heading + r"<h[1-6][^>]*>(.*?)</h[1-6]>", html, re.S)
    return {i: re.sub(r"<[^>]+>|#", "", text).strip() for i, text in found}


NAME = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"


def title_identifiers() -> list[tuple[str, str]]:
    """(identifier, chapter) for each name in code in a chapter's section titles
    (`no_sync`, `torch.distributed`) and each acronym (DDP, GPU), from the book's sources."""
    found = {}
    for chapter in CHAPTER_PAGES:
        text = (BOOK / f"{chapter}.md").read_text(encoding="utf-8")
        prose = re.sub(r"^(```|~~~).*?^\1", "", text, flags=re.M | re.S)  # not code cells
        for title in re.findall(r"^#{1,6} (.+)$", prose, re.M):
            names = re.findall(rf"`({NAME})`", title)
            names += re.findall(r"\b[A-Z]{2,}\b", re.sub(r"`[^`]*`", "", title))
            for name in names:
                found.setdefault(name, chapter)
    return sorted(found.items())


@pytest.mark.parametrize(("name", "chapter"), title_identifiers())
def test_searching_a_name_in_a_section_title_ranks_that_section_first(ranked, name, chapter):
    """ "no_sync", "DistributedSampler", "DDP" (short, but a title's word): the first
    result is a section whose title names it, not the top of its chapter."""
    results = ranked(name)
    assert results, f"searching {name!r} finds nothing"
    title, href = results[0]
    page, _, anchor = href.partition("#")
    titles = section_titles(page.removesuffix(".html")) if page.startswith("chapters/") else {}
    first = next(iter(titles), None)
    heading = titles.get(anchor or first, "")
    word = rf"(?<![\w.]){re.escape(name)}(?![\w])"
    assert re.search(word, heading), (
        f"searching {name!r} ranks first {title!r} ({href}), whose title does not name it;"
        " the first five:" + listing(results[:5])
    )


@pytest.mark.parametrize(
    ("query", "page"), [("jvp", "chapters/forward"), ("all_reduce", "chapters/distributed")]
)
def test_a_name_searched_lands_on_the_section_that_names_it_highlighted(visits, query, page):
    """ "jvp" and "all_reduce" are named in a section's text (not its title): the first
    result opens that section, not the top of the chapter, and the page highlights the
    word where the reader lands."""
    context, tab, visit = visits.open()
    try:
        tab.goto(visits.url("search") + f"?q={query}", wait_until="load")
        first = tab.locator("#search-results ul.search li > a").first
        first.wait_for(state="visible", timeout=20000)
        href = first.get_attribute("href")
        assert href.startswith(f"{page}.html#"), f"{query!r}: the first result is {href}"
        anchor = href.split("#", 1)[1]
        first.click()
        tab.wait_for_url(f"**/{page}.html#{anchor}", timeout=5000)
        tab.wait_for_timeout(800)
        section = tab.locator(f"section[id='{anchor}']")
        codes = section.locator("p code").all_inner_texts()
        assert any(re.search(rf"\b{query}\b", code) for code in codes), (
            f"#{anchor} does not name {query!r} in its text"
        )
        marks = tab.evaluate(
            """() => [...document.querySelectorAll('article span.highlighted')].map((s) => {
                const r = s.getBoundingClientRect();
                return [s.textContent, r.top >= 0 && r.bottom <= innerHeight,
                        getComputedStyle(s).backgroundColor];
            })"""
        )
    finally:
        context.close()
    assert marks, f"{query!r} is not highlighted on {page}"
    assert all(text.lower() == query for text, *_ in marks), marks[:5]
    assert any(on_screen for _, on_screen, _ in marks), f"no highlighted {query!r} on screen"
    assert all(colour not in ("rgba(0, 0, 0, 0)", "transparent") for *_, colour in marks)
    assert not visit.console_errors, listing(visit.console_errors)
