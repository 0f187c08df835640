"""The built site as a reader sees it, in a real browser (Chromium through Playwright).

Every page of the toc is loaded from a local server with every request that leaves
127.0.0.1 blocked: it must load without console errors or failed requests, typeset its
math, render its figures with alt text, show its code cells and outputs, pass axe-core
with no serious or critical violation, and fit a phone's width. Screenshots of each
page, desktop and phone width, land in ``_build/screenshots/``. The interactions a
reader relies on are tried too: a hidden solution opens, search finds a chapter, the
download menu offers the executed notebook, the launch button opens the page's source
on Binder.
"""

import json
import re

import pytest
import yaml

from tests.site.pages import (
    BOOK,
    BOOK_PAGES,
    NOTEBOOK_FOLDERS,
    NOTEBOOKS,
    PAGES,
    SOLUTIONS,
    WIDTHS,
    listing,
)

pytestmark = pytest.mark.site

IMAGE_FILE = re.compile(r"\.(png|jpe?g|svg|gif|webp)$", re.IGNORECASE)


@pytest.mark.parametrize("page", PAGES)
def test_page_loads_offline_without_errors(visits, page):
    visit = visits.desktop(page)
    assert not visit.offsite_requests, (
        f"{page} requests files from outside the site (it must work offline):"
        + listing(visit.offsite_requests)
    )
    assert not visit.failed_requests, f"{page}: failed requests:" + listing(visit.failed_requests)
    assert not visit.console_errors, f"{page}: console errors:" + listing(visit.console_errors)
    assert visit.facts["has_article"], f"{page} has no article: is it a page of the book?"


@pytest.mark.parametrize("page", PAGES)
def test_math_is_typeset(visits, page):
    math = visits.desktop(page).facts["math"]
    raw = [m["text"] for m in math if not m["typeset"]]
    assert not raw, f"{page}: math left untypeset by MathJax:" + listing(raw)
    broken = [m["text"] for m in math if m["error"]]
    assert not broken, f"{page}: MathJax could not typeset:" + listing(broken)


@pytest.mark.parametrize("page", PAGES)
def test_figures_render_with_alt_text(visits, page):
    images = visits.desktop(page).facts["images"]
    blank = [i["src"] for i in images if not (i["complete"] and i["width"] > 0)]
    assert not blank, f"{page}: images that did not render:" + listing(blank)
    no_alt = [i["src"] for i in images if not (i["alt"] or "").strip()]
    assert not no_alt, f"{page}: images without alt text:" + listing(no_alt)
    file_alt = [f"{i['src']}: alt={i['alt']!r}" for i in images if IMAGE_FILE.search(i["alt"])]
    assert not file_alt, f"{page}: images whose alt text is a file name:" + listing(file_alt)


def shown_cells(page: str, site) -> tuple[int, int]:
    """How many code inputs and outputs the executed notebook says the page shows."""
    notebook = json.loads((site / "_sources" / f"{page}.ipynb").read_text())
    inputs = outputs = 0
    for cell in notebook["cells"]:
        tags = set(cell.get("metadata", {}).get("tags", []))
        if cell["cell_type"] != "code" or "remove-cell" in tags:
            continue
        inputs += "remove-input" not in tags
        outputs += bool(cell.get("outputs")) and "remove-output" not in tags
    return inputs, outputs


@pytest.mark.parametrize("page", NOTEBOOKS)
def test_code_cells_and_outputs_are_shown(visits, site, page):
    facts = visits.desktop(page).facts
    inputs, outputs = shown_cells(page, site)
    assert len(facts["inputs"]) == inputs, (
        f"{page}: the executed notebook shows {inputs} code cells, the page {len(facts['inputs'])}"
    )
    assert facts["outputs"] == outputs, (
        f"{page}: the executed notebook has {outputs} cells with outputs, "
        f"the page shows {facts['outputs']}"
    )
    empty = [i for i, cell in enumerate(facts["inputs"]) if not cell["text"]]
    assert not empty, f"{page}: code cells without code (numbers {empty})"
    invisible = [
        i
        for i, cell in enumerate(facts["inputs"])
        if not (cell["visible"] or cell["hidden_by_toggle"])
    ]
    assert not invisible, f"{page}: code cells that are not visible (numbers {invisible})"


@pytest.mark.parametrize("page", PAGES)
def test_page_is_accessible(visits, page):
    violations = visits.desktop(page).facts["axe"]
    assert not violations, f"{page}: axe-core finds:" + listing(violations)


@pytest.mark.parametrize("page", PAGES)
def test_phone_width_needs_no_horizontal_scrolling(visits, page):
    visit = visits.phone(page)
    facts = visit.facts
    assert facts["scroll_width"] <= facts["client_width"], (
        f"{page} is {facts['scroll_width']} px wide on a {facts['client_width']} px phone; "
        "too wide:" + listing(facts["too_wide"])
    )
    assert not visit.console_errors, f"{page}: console errors:" + listing(visit.console_errors)


@pytest.mark.parametrize("page", SOLUTIONS)
def test_hidden_solutions_open_on_click(visits, page):
    toggles = 0
    context, tab, visit = visits.open()
    try:
        tab.goto(visits.url(page), wait_until="load")
        hidden = tab.locator("article details.hide")
        for index in range(hidden.count()):
            toggle = hidden.nth(index)
            content = toggle.locator(":scope > summary ~ *").first
            assert not content.is_visible(), f"{page}: hidden cell {index} shows before a click"
            toggle.locator(":scope > summary").click()
            content.wait_for(state="visible", timeout=2000)
            toggles += 1
    finally:
        context.close()
    assert not visit.console_errors, f"{page}: console errors:" + listing(visit.console_errors)
    assert toggles, f"{page}: no hidden solution (a hide-input cell)"


def test_search_for_backward_lists_the_autograd_chapter(visits):
    context, tab, visit = visits.open()
    try:
        tab.goto(visits.url("search") + "?q=backward", wait_until="load")
        summary = tab.locator("#search-results .search-summary")
        summary.wait_for(state="visible", timeout=15000)
        tab.wait_for_function(
            "() => !document.querySelector('#search-results h2')"
            "?.textContent.includes('Searching')",
            timeout=15000,
        )
        found = tab.locator("#search-results ul.search li a").evaluate_all(
            "links => links.map((a) => a.getAttribute('href'))"
        )
    finally:
        context.close()
    assert any("chapters/autograd.html" in href for href in found), (
        "searching 'backward' does not list chapters/autograd:" + listing(found)
    )
    assert not visit.console_errors, "search: console errors:" + listing(visit.console_errors)


@pytest.mark.parametrize("page", NOTEBOOKS)
def test_download_menu_offers_the_executed_notebook(visits, site, page):
    hrefs = visits.desktop(page).facts["notebook_download"]
    expected = "../" * page.count("/") + f"_sources/{page}.ipynb"
    assert hrefs == [expected], f"{page}: the download menu offers {hrefs}, not {expected}"
    shown = visits.desktop(page).facts["outputs"]
    assert shown_cells(page, site)[1] == shown, (
        f"{page}: the page shows {shown} cell outputs, its downloadable notebook has "
        f"{shown_cells(page, site)[1]}: it is not the executed notebook"
    )


def test_download_menu_opens_on_click(visits):
    page = next(p for p in BOOK_PAGES if p.startswith(NOTEBOOK_FOLDERS))  # whatever changed
    context, tab, _ = visits.open()
    try:
        tab.goto(visits.url(page), wait_until="load")
        item = tab.locator("a.btn-download-notebook-button")
        assert not item.is_visible(), "the download menu is open before a click"
        tab.get_by_role("button", name="Download this page").click()
        item.wait_for(state="visible", timeout=2000)
        assert item.inner_text().strip() == ".ipynb"
    finally:
        context.close()


@pytest.mark.parametrize("page", NOTEBOOKS)
def test_launch_button_opens_the_source_on_binder(visits, page):
    config = yaml.safe_load((BOOK / "_config.yml").read_text())
    repo = config["repository"]
    owner_name = repo["url"].removeprefix("https://github.com/")
    expected = (
        f"{config['launch_buttons']['binderhub_url']}/v2/gh/{owner_name}/{repo['branch']}"
        f"?urlpath=lab/tree/{page}.md"
    )
    assert (BOOK / f"{page}.md").is_file()
    assert visits.desktop(page).facts["binder"] == [expected], (
        f"{page}: launch link is not {expected}"
    )


def test_execution_statistics_list_every_notebook(site):
    page = site / "reference" / "execution.html"
    assert page.is_file(), "no reference/execution page: is it in _toc.yml?"
    rows = re.findall(r"<tr.*?</tr>", page.read_text(encoding="utf-8"), re.DOTALL)
    cells = [re.findall(r"<td><p>(.*?)</p></td>", row, re.DOTALL) for row in rows]
    listed = {re.sub(r"<.*?>", "", row[0]): row for row in cells if row}
    for notebook in NOTEBOOKS:
        assert notebook in listed, f"the execution statistics do not list {notebook}"
        run_time, status = listed[notebook][3], listed[notebook][4]
        assert re.fullmatch(r"\d+\.\d+", run_time), f"{notebook}: run time {run_time!r}"
        assert status == "✅", f"{notebook} failed to execute: status {status!r}"


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("page", PAGES)
def test_page_reads_in_dark_mode(visits, page, width):
    """Each page in the dark colour scheme, at both widths (screenshots for review)."""
    visit = visits.get(page, width, "dark")
    facts = visit.facts
    assert not visit.console_errors, f"{page}: console errors:" + listing(visit.console_errors)
    assert facts["scroll_width"] <= facts["client_width"], (
        f"{page} in dark mode is {facts['scroll_width']} px wide at {width} width:"
        + listing(facts["too_wide"])
    )
