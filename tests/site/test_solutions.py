"""Solutions one click away, and the path through a chapter, as a reader meets them.

On an exercise page, each exercise is followed by a closed "Solution to Exercise 1.1"
box: one click opens it and shows the solution's code, included from the solution
notebook (the exercise notebook itself holds only the stub). From a chapter, Next leads
to that chapter's exercises, then to its solutions, then to the next chapter.
"""

import re

import pytest

from tests.site.pages import CHAPTERS, PAGES, ROOT, SECTIONS, WIDTHS, listing

pytestmark = pytest.mark.site

PAGE = "exercises/tensors"


def solution_lines(name: str, task: str) -> list[str]:
    """The stripped, non-blank lines of solution region ``task`` in solutions/<name>.md."""
    text = (ROOT / "solutions" / f"{name}.md").read_text(encoding="utf-8")
    region = rf"# BEGIN SOLUTION {re.escape(task)}\n(.*?)\n[ \t]*# END SOLUTION"
    body = re.search(region, text, re.S)
    assert body, f"no region {task} in solutions/{name}.md"
    return [line.strip() for line in body[1].splitlines() if line.strip()]


@pytest.mark.parametrize("width", WIDTHS)
def test_one_click_on_an_exercise_page_shows_the_solution(visits, width):
    expected = solution_lines("tensors", "1.1")
    context, tab, visit = visits.open(width)
    try:
        tab.goto(visits.url(PAGE), wait_until="load")
        article = tab.locator("article.bd-article")
        # The code cell shows the stub; the answer is nowhere in sight yet.
        cells = article.locator(".cell_input").all_inner_texts()
        assert any("Exercise 1.1 is not done yet" in text for text in cells)
        assert not any(expected[-1] in text for text in cells), "the answer is in a cell"
        title = article.get_by_text(re.compile(r"^\s*Solution to Exercise 1\.1\b"))
        assert title.count() == 1, f"{title.count()} 'Solution to Exercise 1.1' titles"
        box = title.locator("xpath=ancestor::*[contains(@class, 'solution')][1]")
        code = box.locator("pre").first
        assert code.count() == 1, "the solution box holds no code"
        assert not code.is_visible(), "the solution shows before it is asked for"
        title.scroll_into_view_if_needed()
        title.click()
        code.wait_for(state="visible", timeout=3000)
        shown = code.inner_text()
        missing = [line for line in expected if line not in shown]
        assert not missing, f"lines of the solution the box does not show: {missing}"
        assert "SOLUTION" not in box.inner_text()
    finally:
        context.close()
    assert not visit.console_errors, listing(visit.console_errors)


@pytest.mark.parametrize("page", [p for p in PAGES if p.startswith("exercises/")])
def test_every_exercise_page_has_a_closed_solution_per_exercise(visits, page):
    context, tab, _visit = visits.open()
    try:
        tab.goto(visits.url(page), wait_until="load")
        article = tab.locator("article.bd-article")
        exercises = article.locator(".exercise").count()
        titles = article.get_by_text(re.compile(r"^\s*Solution to Exercise \d+\.\d+"))
        boxes = titles.count()
    finally:
        context.close()
    assert exercises, f"{page}: no exercise"
    assert exercises == boxes, f"{page}: {exercises} exercises, {boxes} solution boxes"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_next_from_a_chapter_leads_to_its_exercises_then_its_solutions(visits, chapter):
    """From the chapter's last page (its last section, where it has sections)."""
    name = chapter.split("/", 1)[1]
    context, tab, visit = visits.open()
    try:
        tab.goto(visits.url([chapter, *SECTIONS[chapter]][-1]), wait_until="load")
        tab.locator("a.right-next").click()
        tab.wait_for_url(f"**/exercises/{name}.html", timeout=5000)
        tab.locator("a.right-next").click()
        tab.wait_for_url(f"**/solutions/{name}.html", timeout=5000)
    finally:
        context.close()
    assert not visit.console_errors, listing(visit.console_errors)


def test_the_sidebar_numbers_the_chapters_in_order_and_not_their_exercises(visits):
    """Chapters read 1., 2., ... even with their exercises and solutions between them;
    exercise and solution pages carry no number (their exercises have ids like 1.3)."""
    context, tab, _visit = visits.open()
    try:
        tab.goto(visits.url(CHAPTERS[0]), wait_until="load")
        links = tab.locator("nav.bd-docs-nav a.reference.internal")
        entries = [(link.get_attribute("href"), link.inner_text().strip()) for link in links.all()]
    finally:
        context.close()
    chapters = [text for href, text in entries if "exercises/" not in href]
    chapters = [text for text in chapters if re.match(r"\d+\. ", text)]
    numbers = [int(text.split(".", 1)[0]) for text in chapters]
    assert numbers == list(range(1, len(CHAPTERS) + 1)), listing(chapters)
    others = [text for href, text in entries if re.search(r"(exercises|solutions)/", href)]
    assert len(others) == 2 * len(CHAPTERS), listing(others)
    numbered = [text for text in others if re.match(r"\d", text)]
    assert not numbered, f"numbered exercise or solution pages: {listing(numbered)}"


@pytest.mark.parametrize("chapter", [c for c in CHAPTERS if SECTIONS[c]])
def test_a_chapters_sections_are_numbered_from_one(site, chapter):
    """Chapter 2's pages read 2.1, 2.2, ... in the order of the book (a heading on the
    landing page would take 2.1 and start them at 2.2)."""
    from bs4 import BeautifulSoup

    number = CHAPTERS.index(chapter) + 1
    titles = []
    for page in SECTIONS[chapter]:
        soup = BeautifulSoup((site / f"{page}.html").read_text(encoding="utf-8"), "html.parser")
        heading = soup.select_one("article h1")
        titles.append(heading.get_text(" ", strip=True).rstrip("#").strip())
    wanted = [f"{number}.{k}. " for k in range(1, len(titles) + 1)]
    pairs = zip(titles, wanted, strict=True)
    wrong = [title for title, start in pairs if not title.startswith(start)]
    assert not wrong, f"{chapter}: sections not numbered {number}.1, {number}.2, ...:" + listing(
        titles
    )
