"""Figures the chapters draw: one module per chapter (`course.figures.<chapter>`), mirroring
`course.checks.<chapter>`, and `course.figures.graphs`, the computation-graph drawing every
chapter can use.

Importing this package (any of its modules) makes a notebook show matplotlib figures as
sharp PNGs: drawn at twice the pixels, with the display size set to the figure's own size
(`sharp_png`), and with the smallest text of the figure, in pixels of the PNG, written into
the file (`SMALLEST_TEXT_KEY`), so that the site tests can compute how tall that text is as
a reader sees it at any width.
"""

import io

import matplotlib
from matplotlib.figure import Figure
from matplotlib.text import Text

# Pixels of the PNG per pixel of the page: sharp on high-density (2×) screens.
PIXEL_RATIO = 2
# PNG text chunk holding the smallest font size of the figure, in the PNG's pixels.
SMALLEST_TEXT_KEY = "course:smallest-text-px"
# The smallest font size any course figure uses, in points (the site tests hold the
# displayed size to at least 9 CSS px on a phone and 11 at desktop width).
MIN_FONT_PT = 11

matplotlib.rcParams.update(
    {
        "font.size": 12,
        "axes.titlesize": 12,
        "axes.labelsize": 12,
        "xtick.labelsize": MIN_FONT_PT,
        "ytick.labelsize": MIN_FONT_PT,
        "legend.fontsize": MIN_FONT_PT,
        "figure.titlesize": 13,
    }
)


def smallest_font_pt(figure: Figure) -> float:
    """The smallest font size, in points, of the visible, non-empty texts of `figure`."""
    sizes = [
        text.get_fontsize()
        for text in figure.findobj(Text)
        if text.get_visible() and text.get_text().strip()
    ]
    return min(sizes) if sizes else float("inf")


def sharp_png(figure: Figure) -> tuple[bytes, dict]:
    """`figure` as a PNG at `PIXEL_RATIO` times its size, and the display metadata.

    The metadata sets the width and height the page shows it at (the figure's size at
    its own dpi); the PNG's text chunk records the smallest text in the PNG's pixels.
    """
    dpi = figure.dpi * PIXEL_RATIO
    smallest = smallest_font_pt(figure) * dpi / 72
    buffer = io.BytesIO()
    figure.canvas.print_figure(
        buffer,
        format="png",
        dpi=dpi,
        bbox_inches="tight",
        facecolor="white",
        metadata={SMALLEST_TEXT_KEY: f"{smallest:.2f}"},
    )
    data = buffer.getvalue()
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return data, {"width": width // PIXEL_RATIO, "height": height // PIXEL_RATIO}


def _show_figures_sharp() -> None:
    """In an IPython kernel, display every matplotlib figure with `sharp_png`."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or not hasattr(shell, "display_formatter"):
        return
    # Load the inline backend first: importing it registers its own PNG formatter,
    # which would otherwise replace this one later.
    import matplotlib.pyplot as plt

    plt.get_backend()
    if "inline" in plt.get_backend():
        import matplotlib_inline.backend_inline  # noqa: F401
    shell.display_formatter.formatters["image/png"].for_type(Figure, sharp_png)


_show_figures_sharp()
