"""Figures a reader can read: sharp, with text tall enough at the width they are shown at.

Every figure of the course is drawn by ``course.figures.sharp_png`` (importing
``course.figures`` installs it in the notebook's kernel): a PNG at twice the pixels of its
display size, whose text chunk records the smallest font of the figure in the PNG's
pixels. Shown ``shown_width`` CSS px wide, that text is ``smallest × shown_width /
natural_width`` CSS px tall. The minimums: 9 px on a phone (390 px wide), 11 px at
desktop width (1366 px).
"""

import struct
import zlib
from urllib.parse import unquote, urljoin, urlsplit

import pytest

from course.figures import PIXEL_RATIO, SMALLEST_TEXT_KEY
from tests.site.pages import MODES, PAGES, listing, probe

pytestmark = pytest.mark.site

MIN_TEXT_PX = {"phone": 9, "desktop": 11}


def png_text(data: bytes) -> dict[str, str]:
    """The tEXt/zTXt chunks of a PNG file, as a dict."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    chunks, at = {}, 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        if kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            chunks[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"zTXt":
            key, _, value = body.partition(b"\0")
            chunks[key.decode("latin-1")] = zlib.decompress(value[1:]).decode("latin-1")
        at += 12 + length
    return chunks


def test_png_text_reads_what_matplotlib_writes(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from course.figures import sharp_png

    figure = Figure(figsize=(2, 1))
    figure.add_subplot().set_title("title", fontsize=18)
    figure.axes[0].set_xticks([0, 1], ["a", "b"], fontsize=7)
    data, metadata = sharp_png(figure)
    assert float(png_text(data)[SMALLEST_TEXT_KEY]) == pytest.approx(7 * 200 / 72, abs=0.01)
    assert metadata["width"] == struct.unpack(">I", data[16:20])[0] // PIXEL_RATIO


def figures_of(visit, site, page: str) -> list[dict]:
    """Each raster figure of the page's article with its smallest text as displayed."""
    found = []
    base = f"http://site/{page}.html"
    for image in visit.facts["images"]:
        src = image["src"] or ""
        if not src.lower().endswith(".png"):
            continue
        path = site / unquote(urlsplit(urljoin(base, src)).path).lstrip("/")
        data = path.read_bytes()
        recorded = png_text(data).get(SMALLEST_TEXT_KEY)
        shown = image["shown_width"]
        natural = image["width"]
        found.append(
            {
                "src": src,
                "recorded": recorded,
                "text_px": float(recorded) * shown / natural if recorded else None,
                "density": natural / shown if shown else 0,
            }
        )
    return found


@pytest.mark.parametrize("width", MIN_TEXT_PX)
@pytest.mark.parametrize("page", PAGES)
def test_figure_text_is_legible_at_the_width_shown(visits, site, page, width):
    figures = figures_of(visits.get(page, width), site, page)
    unknown = [f["src"] for f in figures if f["recorded"] is None]
    assert not unknown, (
        f"{page}: figures without a record of their smallest text (not drawn by "
        "course.figures.sharp_png: import course.figures in the notebook):" + listing(unknown)
    )
    small = [
        f"{f['src']}: {f['text_px']:.1f} px" for f in figures if f["text_px"] < MIN_TEXT_PX[width]
    ]
    assert not small, (
        f"{page} at {width} width: figure text smaller than {MIN_TEXT_PX[width]} CSS px "
        "(draw the figure narrower, or its text larger):" + listing(small)
    )


@pytest.mark.parametrize("width", MIN_TEXT_PX)
@pytest.mark.parametrize("page", PAGES)
def test_figures_keep_their_proportions(visits, page, width):
    distorted = [
        f"{i['src']}: shown {i['shown_width']:.0f}×{i['shown_height']:.0f}, "
        f"drawn {i['width']}×{i['natural_height']}"
        for i in visits.get(page, width).facts["images"]
        if i["width"]
        and i["shown_height"]
        and abs((i["shown_width"] / i["shown_height"]) / (i["width"] / i["natural_height"]) - 1)
        > 0.02
    ]
    assert not distorted, f"{page} at {width} width: figures stretched or squeezed:" + listing(
        distorted
    )


@pytest.mark.parametrize("page", PAGES)
def test_figures_are_sharp_on_high_density_screens(visits, site, page):
    figures = figures_of(visits.get(page, "desktop"), site, page)
    soft = [f"{f['src']}: {f['density']:.2f}×" for f in figures if f["density"] < 1.9]
    assert not soft, f"{page}: figures with under 2 image pixels per CSS px:" + listing(soft)


# In dark mode, what surrounds figures and code: borders and outlines, as the page draws
# them (width in px and the brightness of their colour, 0 to 1).
FRAMES_JS = """() => {
  const brightness = (colour) => {
    const [r, g, b] = (colour.match(/[\\d.]+/g) || [0, 0, 0]).map(Number);
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
  };
  const frames = [];
  const selector = '.cell_output img, .cell_input, .cell_output, div.highlight pre';
  for (const element of document.querySelectorAll('article ' + selector)) {
    const style = getComputedStyle(element);
    for (const side of ['Top', 'Right', 'Bottom', 'Left']) {
      const width = parseFloat(style[`border${side}Width`]);
      if (width > 0 && style[`border${side}Style`] !== 'none') {
        frames.push({what: element.className || element.tagName, kind: 'border ' + side,
                     width, brightness: brightness(style[`border${side}Color`])});
      }
    }
    const outline = parseFloat(style.outlineWidth);
    if (outline > 0 && style.outlineStyle !== 'none') {
      frames.push({what: element.className || element.tagName, kind: 'outline',
                   width: outline, brightness: brightness(style.outlineColor)});
    }
    if (element.tagName === 'IMG') {
      frames.push({what: 'img padding', kind: 'padding', width: parseFloat(style.paddingTop),
                   brightness: brightness(style.backgroundColor)});
    }
  }
  return [document.documentElement.dataset.theme, frames];
}"""
FRAMES = probe("frames in dark mode", FRAMES_JS, "desktop", "dark")


@pytest.mark.parametrize(
    "page", ["chapters/mnist-training", "chapters/tensors-broadcasting", "intro"]
)
def test_figures_and_code_sit_quietly_in_dark_mode(visits, page):
    theme, frames = visits.get(page, "desktop", "dark").probes[FRAMES]
    assert theme == "dark"
    loud = [
        f"{f['what']}: {f['kind']} {f['width']} px, brightness {f['brightness']:.2f}"
        for f in frames
        if (f["kind"] == "padding" and f["width"] > 4 and f["brightness"] > 0.6)
        or (f["kind"] != "padding" and f["width"] > 1 and f["brightness"] > 0.35)
        or (f["kind"] != "padding" and f["brightness"] > 0.6)
    ]
    assert not loud, f"{page} in dark mode: bright or thick frames:" + listing(sorted(set(loud)))
    assert MODES == ("light", "dark")
