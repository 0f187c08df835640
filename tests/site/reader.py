"""What a reader sees on a page, measured in the browser: is an element on screen, is it
covered by something else, where does a line of a heading break, does a block that
scrolls sideways show it. The site tests of the phone and the desktop share these.
"""

import io

from PIL import Image


def in_view(tab, locator) -> bool:
    """Whether the element is on screen: visible, its top inside the viewport."""
    if not locator.is_visible():
        return False
    box = locator.bounding_box()
    height = tab.viewport_size["height"]
    return box is not None and box["width"] > 0 and 0 <= box["y"] < height


def visible_one(tab, selector: str):
    """The only visible element matching ``selector`` (a reader taps what they see)."""
    found = tab.locator(f"{selector} >> visible=true")
    assert found.count() == 1, f"{found.count()} visible elements match {selector}"
    return found.first


# For each heading or exercise title in the reading area (below the bar that stays at
# the top of the screen, down to the bottom of the screen): the points of its text that
# something else is drawn over (the element found there is not the heading nor inside
# it), and what covers them. A reader cannot read those letters. A heading partly under
# the top bar was scrolled past; it is not counted.
COVERED_HEADINGS_JS = """() => {
  const bar = document.querySelector('.bd-header-article');
  const floor = bar ? bar.getBoundingClientRect().bottom : 0;
  const headings = document.querySelectorAll(
    'article :is(h1, h2, h3, h4, h5, h6), article .admonition-title, article summary');
  const covered = [];
  for (const heading of headings) {
    const range = document.createRange();
    range.selectNodeContents(heading);
    for (const line of range.getClientRects()) {
      if (line.width < 2 || line.top < floor - 1 || line.top >= innerHeight) continue;
      const y = Math.min(line.top + line.height / 2, innerHeight - 1);
      for (const f of [0.05, 0.25, 0.5, 0.75, 0.95]) {
        const x = line.left + f * line.width;
        const top = document.elementFromPoint(x, y);
        if (top && !heading.contains(top) && !top.contains(heading)) {
          const what = top.id ? '#' + top.id : top.tagName.toLowerCase() + '.'
            + [...top.classList].join('.');
          covered.push(`${heading.textContent.trim().slice(0, 60)}: covered by ${what}`
            + ` at (${Math.round(x)}, ${Math.round(y)})`);
          break;
        }
      }
    }
  }
  return [...new Set(covered)];
}"""

# Where the element with this id shows its first line of text after a jump to it,
# against the reading area: [its top, its bottom, the top bar's bottom, the screen's
# height].
JUMP_TARGET_JS = """(id) => {
  const target = document.getElementById(id);
  const title = target.querySelector(':scope > :is(h1, h2, h3, h4, h5, h6, .admonition-title)')
    || target;
  const range = document.createRange();
  range.selectNodeContents(title);
  const line = range.getClientRects()[0] || title.getBoundingClientRect();
  const bar = document.querySelector('.bd-header-article');
  return [line.top, line.bottom, bar ? bar.getBoundingClientRect().bottom : 0, innerHeight];
}"""

# The line breaks inside the code of headings and contents entries that are on screen:
# for each, the text before and after the break (a line break is a character whose box
# starts lower than the previous drawn one's; a space at the end of a line is not drawn
# but kept in the text). `selector` names the elements.
LINE_BREAKS_JS = """(selector) => {
  const breaks = [];
  for (const code of document.querySelectorAll(selector)) {
    if (!code.getClientRects().length) continue;
    let text = '';
    const boxes = [];  // [index in text, top, height] of each character drawn
    const walker = document.createTreeWalker(code, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (let i = 0; i < node.length; i++) {
        const range = document.createRange();
        range.setStart(node, i);
        range.setEnd(node, i + 1);
        const box = range.getClientRects()[0];
        if (box && box.width > 0) boxes.push([text.length, box.top, box.height]);
        text += node.data[i];
      }
    }
    for (let i = 1; i < boxes.length; i++) {
      if (boxes[i][1] > boxes[i - 1][1] + boxes[i - 1][2] / 2) {
        breaks.push([text.slice(0, boxes[i][0]), text.slice(boxes[i][0])]);
      }
    }
  }
  return breaks;
}"""


def bad_break(before: str, after: str) -> bool:
    """Whether a line break between ``before`` and ``after`` splits a word: it may come
    after a dot, an underscore, a hyphen, a slash or a space ("chapters/mnist-|loading"),
    or where a new capitalised word of a CamelCase name starts ("Distributed|DataParallel"),
    nowhere else."""
    last, first = before[-1], after[0]
    if last in "._-/ " or first == " ":
        return False
    return not (last.islower() and first.isupper())


def luminance(image: Image.Image, box: tuple[int, int, int, int]) -> float:
    """Mean grey level (0 black to 255 white) of the pixels of ``image`` inside ``box``."""
    pixels = image.crop(box).convert("L").tobytes()
    return sum(pixels) / len(pixels)


def screenshot_of(tab, element) -> Image.Image:
    """The element as drawn on screen (scrolled into view first)."""
    element.scroll_into_view_if_needed()
    return Image.open(io.BytesIO(element.screenshot())).convert("RGB")


# Where the padding box of an element lies inside its own screenshot, in device pixels,
# and how it scrolls: (left, top, right, bottom) without the borders, and whether there
# is more to see to the left and to the right.
SCROLL_BOX_JS = """(e) => {
  const r = e.getBoundingClientRect(), s = getComputedStyle(e);
  const left = parseFloat(s.borderLeftWidth), top = parseFloat(s.borderTopWidth);
  return {box: [left, top, left + e.clientWidth, top + e.clientHeight],
          scale: devicePixelRatio, width: r.width,
          more_left: e.scrollLeft > 1,
          more_right: e.scrollLeft < e.scrollWidth - e.clientWidth - 1};
}"""


def most_common_grey(image: Image.Image, box) -> int:
    """The grey level most pixels of ``box`` have: the block's background."""
    histogram = image.crop(box).convert("L").histogram()
    return histogram.index(max(histogram))


def blank_rows(image: Image.Image, box, background: float) -> list[int]:
    """Rows of ``box`` (in ``image``) that are plain background across their middle
    60 %: no glyph there, so what is drawn at their ends is the block's own edge."""
    left, top, right, bottom = box
    margin = (right - left) // 5
    rows = []
    for y in range(top + 1, bottom - 1):
        band = image.crop((left + margin, y, right - margin, y + 1)).convert("L")
        if all(abs(p - background) < 6 for p in band.tobytes()):
            rows.append(y)
    return rows


def edge_shading(tab, element) -> dict:
    """How much darker (or, in dark mode, lighter) than the block's background its left
    and right edges are drawn, in grey levels, measured in rows without text; with
    ``more_left`` and ``more_right``: whether there is more to see on that side."""
    facts = element.evaluate(SCROLL_BOX_JS)
    image = screenshot_of(tab, element)
    scale = facts["scale"]
    left, top, right, bottom = (round(v * scale) for v in facts["box"])
    background = most_common_grey(image, (left, top, right, bottom))
    rows = blank_rows(image, (left, top, right, bottom), background)
    if not rows:
        return {**facts, "left": None, "right": None}
    edge = max(3, round(4 * scale))

    def shading(x0, x1):
        values = [luminance(image, (x0, y, x1, y + 1)) for y in rows]
        return abs(background - sum(values) / len(values))

    return {
        **facts,
        "left": shading(left + 1, left + 1 + edge),
        "right": shading(right - 1 - edge, right - 1),
    }
