"""Figures of Chapter 1: one storage read through several views, and broadcast shapes.

Both figures are drawn from the tensors' real metadata (strides, storage offsets,
broadcast shapes), never from a hand-made picture, so they cannot drift from torch.
"""

import matplotlib.pyplot as plt
import torch
from matplotlib.colors import Normalize
from matplotlib.patches import Rectangle

from course.figures import MIN_FONT_PT

# The widest a figure is drawn, in inches at 100 dpi (520 CSS px): shown whole in a
# phone's column, its smallest text (MIN_FONT_PT) stays at least 9 CSS px tall.
WIDTH = 5.2

CMAP = plt.get_cmap("Set3")


def element_offsets(t: torch.Tensor) -> torch.Tensor:
    """The storage position (in elements) of every element of `t`, shaped like `t`.

    An `arange` over the storage, read through `t`'s own shape, strides and storage
    offset, holds at each index exactly the position that index reads.
    """
    size = t.untyped_storage().nbytes() // t.element_size()
    return torch.arange(size).as_strided(t.shape, t.stride(), t.storage_offset())


def _format(value: float) -> str:
    """A short label: `3` for whole numbers, `0.33` otherwise."""
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"


def _draw_grid(ax, values, colors, faded=None, notes=None, subtitle="", size=13):
    """Draw a 2-D grid of labelled, coloured cells; `faded` cells are pale and dashed.

    `notes`, when given, holds a small second label for each cell (its storage position).
    """
    rows, cols = values.shape
    for i in range(rows):
        for j in range(cols):
            pale = faded is not None and bool(faded[i, j])
            ax.add_patch(
                Rectangle(
                    (j, rows - 1 - i),
                    1,
                    1,
                    facecolor=colors[i][j],
                    edgecolor="black",
                    alpha=0.35 if pale else 1.0,
                    linestyle="--" if pale else "-",
                )
            )
            y = rows - 0.5 - i + (0.12 if notes is not None else 0)
            ax.text(j + 0.5, y, _format(values[i, j]), ha="center", va="center", fontsize=size)
            if notes is not None:
                ax.text(
                    j + 0.5, y - 0.32, notes[i][j], ha="center", va="center", fontsize=MIN_FONT_PT
                )
    ax.set_xlim(-0.1, cols + 0.1)
    ax.set_ylim(-0.1, rows + 0.1)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_frame_on(False)
    ax.set_title(subtitle, fontsize=MIN_FONT_PT)


def plot_storage_views(views: dict[str, torch.Tensor], title: str = ""):
    """One storage (top row) and each view of it as a grid, coloured by storage position.

    `views` maps a label (e.g. `"y = x.view(2, 3)"`) to a tensor of at most two
    dimensions; all must share one storage. A cell's colour is the storage position it
    reads, computed from the view's strides, so equal colours mean the same memory.
    """
    tensors = list(views.values())
    pointers = {t.untyped_storage().data_ptr() for t in tensors}
    if len(pointers) != 1:
        raise ValueError("the views do not share one storage")
    if any(t.dim() > 2 for t in tensors):
        raise ValueError("only views of one or two dimensions can be drawn")
    first = tensors[0]
    size = first.untyped_storage().nbytes() // first.element_size()
    storage = first.as_strided((size,), (1,), 0)
    norm = Normalize(0, max(size - 1, 1))

    def colours(offsets):
        return [[CMAP(norm(int(o))) for o in row] for row in offsets]

    # one panel a row (the storage on top), so the figure fits a phone's width
    fig = plt.figure(figsize=(WIDTH, 1.6 + 2.6 * len(views)), layout="constrained")
    grid = fig.add_gridspec(1 + len(views), 1, height_ratios=[1] + [2.2] * len(views))
    top = fig.add_subplot(grid[0, 0])
    positions = torch.arange(size).view(1, -1)
    _draw_grid(
        top,
        storage.view(1, -1),
        colours(positions),
        notes=[[f"pos {p}" for p in row] for row in positions.tolist()],
        subtitle="the storage: one row of memory",
    )
    for column, (label, view) in enumerate(views.items()):
        ax = fig.add_subplot(grid[1 + column, 0])
        as_2d = view.reshape(1, -1) if view.dim() < 2 else view
        offsets = element_offsets(view).reshape(as_2d.shape)
        _draw_grid(
            ax,
            as_2d,
            colours(offsets),
            notes=[[f"pos {p}" for p in row] for row in offsets.tolist()],
            subtitle=f"{label}\nshape {tuple(view.shape)}, stride {view.stride()}",
        )
    if title:
        fig.suptitle(title)
    return fig


def plot_broadcast(a: torch.Tensor, b: torch.Tensor, result: torch.Tensor, symbol: str):
    """`a`, `b` stretched to their broadcast shape, and `result = a <symbol> b`.

    Each operand is drawn as `expand` reads it: the cells it really holds are solid,
    the repeats that broadcasting reads through a stride of 0 are pale and dashed.
    Tensors of one or two dimensions only.
    """
    shape = torch.broadcast_shapes(a.shape, b.shape)
    if len(shape) > 2 or tuple(result.shape) != tuple(shape):
        raise ValueError(f"cannot draw the broadcast of {tuple(a.shape)} and {tuple(b.shape)}")
    shape_2d = (1, *shape) if len(shape) == 1 else tuple(shape)
    panels = []
    for name, t in (("a", a), ("b", b)):
        stretched = t.expand(shape).reshape(shape_2d)
        held = t.reshape((1,) * (2 - t.dim()) + tuple(t.shape))
        # a cell is a repeat when it lies beyond the tensor's own size along some axis
        rows = torch.arange(shape_2d[0]).view(-1, 1) >= held.shape[0]
        cols = torch.arange(shape_2d[1]).view(1, -1) >= held.shape[1]
        panels.append((f"{name}: {tuple(t.shape)}", stretched, rows | cols))
    panels.append((f"{tuple(shape)}", result.reshape(shape_2d), None))
    colours = ["#a6cee3", "#fdbf6f", "#b2df8a"]
    fig = plt.figure(figsize=(WIDTH, 1.5 + 0.45 * shape_2d[0]), layout="constrained")
    grid = fig.add_gridspec(1, 5, width_ratios=[shape_2d[1], 0.6, shape_2d[1], 0.6, shape_2d[1]])
    for column, colour, (label, values, faded) in zip((0, 2, 4), colours, panels, strict=True):
        cells = [[colour] * shape_2d[1] for _ in range(shape_2d[0])]
        ax = fig.add_subplot(grid[0, column])
        _draw_grid(ax, values, cells, faded=faded, subtitle=label, size=MIN_FONT_PT)
    for column, text in ((1, symbol), (3, "=")):
        ax = fig.add_subplot(grid[0, column])
        ax.text(0.5, 0.5, text, fontsize=18, ha="center", va="center")
        ax.set_axis_off()
    fig.suptitle(
        f"broadcasting {tuple(a.shape)} {symbol} {tuple(b.shape)} → {tuple(shape)}\n"
        "pale cells are repeats, read through a stride of 0",
        fontsize=MIN_FONT_PT,
    )
    return fig
