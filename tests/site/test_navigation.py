"""The site navigated the way a reader moves through it, at both widths: taps ☰, taps
Contents, follows Previous and Next, on the first chapter.

Each test opens a fresh tab at a phone's width (390×844, touch) or a laptop's
(1366×900), does what a reader does and checks what the reader then sees: that the list
opened is visible on the screen, that the link followed lands on its page or scrolls its
section into view. Each names the pages it opens, so `make check` runs it when one of
them changed (the sidebar, the theme and the book's order change every page).
"""

import pytest

from tests.site.pages import BOOK_PAGES, CHAPTERS, WIDTHS, listing
from tests.site.reader import in_view, visible_one

pytestmark = pytest.mark.site

PAGE = CHAPTERS[0]
START = BOOK_PAGES.index(PAGE)
# The first chapter's landing page has no headings of its own (one would take the number
# of its first section): the in-page contents are tried on a section page that has several.
SECTIONED = "chapters/tensors-views"


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("page", [PAGE])
def test_menu_button_shows_the_chapters_and_a_link_navigates(visits, page, width):
    context, tab, visit = visits.open(width)
    try:
        tab.goto(visits.url(page), wait_until="load")
        chapter_link = tab.locator("nav.bd-links a.reference.internal[href='mnist.html']")
        if width == "desktop":
            # the list is shown beside the page; ☰ hides it, and shows it again
            assert in_view(tab, chapter_link), "the chapter list is not shown at desktop width"
            visible_one(tab, ".primary-toggle").click()
            tab.wait_for_timeout(600)  # the sidebar slides out
            assert not chapter_link.is_visible(), "☰ does not hide the chapter list"
            visible_one(tab, ".primary-toggle").click()
            tab.wait_for_timeout(600)
        else:
            assert not chapter_link.is_visible(), "the chapter list covers the phone's page"
            visible_one(tab, ".primary-toggle").click()
        chapter_link.wait_for(state="visible", timeout=3000)
        assert in_view(tab, chapter_link), "☰ does not bring the chapter list on screen"
        chapter_link.click()
        tab.wait_for_url("**/chapters/mnist.html", timeout=5000)
    finally:
        context.close()
    assert not visit.console_errors, listing(visit.console_errors)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("page", [SECTIONED])
def test_contents_lists_the_sections_and_a_link_scrolls_to_one(visits, page, width):
    context, tab, visit = visits.open(width)
    try:
        tab.goto(visits.url(page), wait_until="load")
        toggle = tab.locator(".secondary-toggle >> visible=true")
        if toggle.count():
            toggle.first.click()
        else:  # wide screens show the page's contents beside it, folded under "Contents"
            tab.locator(".bd-sidebar-secondary .onthispage").hover()
        links = tab.locator("nav.page-toc a.nav-link >> visible=true")
        links.first.wait_for(state="visible", timeout=3000)
        assert links.count() >= 3, "the in-page contents list is not shown"
        link = links.nth(links.count() - 2)
        assert in_view(tab, link), "the in-page contents list is not on screen"
        target = link.get_attribute("href").split("#", 1)[1]
        link.click()
        tab.wait_for_timeout(800)  # smooth scrolling
        heading = tab.locator(f"[id='{target}'] >> nth=0")
        assert tab.url.endswith(f"#{target}"), f"the link did not go to #{target}: {tab.url}"
        assert in_view(tab, heading), f"section #{target} is not scrolled into view"
    finally:
        context.close()
    assert not visit.console_errors, listing(visit.console_errors)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("pages", [tuple(BOOK_PAGES[START : START + 2])])
def test_next_and_previous_follow_the_book(visits, pages, width):
    """Next leads from the first chapter to the page after it in the book, Previous back."""
    first, second = pages
    context, tab, visit = visits.open(width)
    try:
        tab.goto(visits.url(first), wait_until="load")
        tab.locator("a.right-next").click()
        tab.wait_for_url(f"**/{second}.html", timeout=5000)
        tab.locator("a.left-prev").click()
        tab.wait_for_url(f"**/{first}.html", timeout=5000)
    finally:
        context.close()
    assert not visit.console_errors, listing(visit.console_errors)
