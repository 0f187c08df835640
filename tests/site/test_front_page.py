"""The front page invites: a figure, a button to start, the path with times, ways to run.

And what it says is true: the pages it says have a launch button have one.
"""

import re

import pytest

from tests.site.pages import CHAPTERS, NOTEBOOKS, PAGES, WIDTHS, listing, probe

pytestmark = pytest.mark.site


def test_front_page_shows_a_figure_from_the_course(visits):
    images = [i for i in visits.desktop("intro").facts["images"] if i["in_output"]]
    assert images, "the front page shows no figure drawn by the course's code"
    assert all(i["complete"] and i["width"] > 0 for i in images)


@pytest.mark.parametrize("width", WIDTHS)
def test_start_button_opens_chapter_one(visits, width):
    context, tab, visit = visits.open(width)
    try:
        tab.goto(visits.url("intro"), wait_until="load")
        button = tab.get_by_role("link", name=re.compile(r"Start with Chapter 1"))
        assert button.count() == 1, "no 'Start with Chapter 1' button on the front page"
        box = button.bounding_box()
        assert box, "the Start button has no box: is it visible?"
        bottom = box["y"] + box["height"]
        assert bottom <= tab.viewport_size["height"], (
            f"the Start button ends {bottom:.0f} px down, below the first screen "
            f"({tab.viewport_size['height']} px): the first screen must offer it"
        )
        button.click()
        tab.wait_for_url(f"**/{CHAPTERS[0]}.html", timeout=5000)
    finally:
        context.close()
    assert not visit.console_errors, listing(visit.console_errors)


def test_front_page_gives_the_path_with_times_and_prerequisites(visits):
    context, tab, _ = visits.open()
    try:
        tab.goto(visits.url("intro"), wait_until="load")
        rows = tab.locator("article table tbody tr").evaluate_all(
            "rows => rows.map((r) => [...r.cells].map((c) => c.innerText.trim()))"
        )
        links = tab.locator("article table tbody tr td:first-child a").evaluate_all(
            "links => links.map((a) => a.getAttribute('href'))"
        )
    finally:
        context.close()
    assert len(rows) == len(CHAPTERS), f"the path lists {len(rows)} chapters:" + listing(rows)
    for chapter, href, row in zip(CHAPTERS, links, rows, strict=True):
        assert href.split("#")[0] == f"{chapter}.html", f"row {row[0]!r} links to {href}"
        assert re.search(r"\d+ (h|min)", row[3]), f"{chapter}: no time estimate in {row}"
        assert row[2], f"{chapter}: no prerequisites"


PATH_ON_SCREEN_JS = """() => {
  const shown = (e) => !!e && e.getClientRects().length > 0;
  const list = document.querySelector('article .path-list');
  const root = document.documentElement;
  return {
    table_shown: shown(document.querySelector('article table')),
    list_shown: shown(list),
    items: shown(list) ? [...list.querySelectorAll(':scope li')].map((li) => ({
      text: li.innerText,
      href: li.querySelector('a') && li.querySelector('a').getAttribute('href'),
      right: li.getBoundingClientRect().right,
      inner_overflow: li.scrollWidth > li.clientWidth + 1,
    })) : [],
    width: root.clientWidth,
  };
}"""


def test_on_a_phone_the_path_is_a_list_that_fits_the_screen(visits):
    """Five columns do not fit 390 px: there the path is a list, each chapter with what it
    teaches, what to read first, its time and its exercises, nothing off the screen."""
    context, tab, _ = visits.open("phone")
    try:
        tab.goto(visits.url("intro"), wait_until="load")
        path = tab.evaluate(PATH_ON_SCREEN_JS)
    finally:
        context.close()
    assert not path["table_shown"], "the five-column table is shown at a phone's width"
    assert path["list_shown"], "no list of the chapters at a phone's width"
    items = path["items"]
    assert len(items) == len(CHAPTERS), "the list has other entries than the chapters:" + (
        listing(i["text"][:60] for i in items)
    )
    for chapter, item in zip(CHAPTERS, items, strict=True):
        assert item["href"].split("#")[0] == f"{chapter}.html", item
        assert re.search(r"Before it: .+", item["text"]), item["text"]
        assert re.search(r"Time: .*\d+ (h|min)", item["text"]), item["text"]
        assert re.search(r"Exercises: (\d+|none)", item["text"]), item["text"]
        assert item["right"] <= path["width"], f"{chapter}'s entry runs off the phone's screen"
        assert not item["inner_overflow"], f"{chapter}'s entry scrolls sideways"


def test_front_page_names_the_ways_to_run_it(visits):
    text = visits.desktop("intro").facts["text"]
    missing = [way for way in ("Binder", "JupyterLab", "Colab", "PDF") if way not in text]
    assert not missing, "the front page does not mention:" + listing(missing)


@pytest.mark.parametrize("page", PAGES)
def test_what_the_front_page_says_of_launch_buttons_is_true(visits, page):
    text = visits.desktop("intro").facts["text"]
    if re.search(r"every page has a launch button", text, re.IGNORECASE):
        promised = True
    else:
        assert re.search(r"every chapter, exercise and solution page", text, re.IGNORECASE)
        promised = page in NOTEBOOKS
    if promised:
        assert visits.desktop(page).facts["binder"], (
            f"{page} has no launch button, which the front page promises"
        )


TITLES = probe(
    "admonition titles",
    "() => [...document.querySelectorAll('article .admonition-title')].map((e) => e.innerText)",
)


@pytest.mark.parametrize("page", [p for p in PAGES if p.startswith("exercises/")])
def test_exercise_titles_read_naturally(visits, page):
    titles = visits.desktop(page).probes[TITLES]
    exercise_titles = [t for t in titles if t.startswith("Exercise")]
    assert exercise_titles, f"{page} has no exercise"
    odd = [t for t in exercise_titles if "(" in t.split("—")[0] or t.endswith(")")]
    assert not odd, f"{page}: exercise titles in brackets:" + listing(odd)
