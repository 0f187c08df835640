"""Draw computation graphs with matplotlib alone: torch's `grad_fn` graphs and your own.

No graphviz: the pictures must render offline and on Binder without system packages.
The layout is layered (Sugiyama's method, `layout`): the output at the top, each node one
row below the lowest of the nodes that use it, the leaves at the bottom, arrows pointing
from inputs to outputs (the direction of the forward pass; backward walks them the other
way); an edge that skips rows bends around the boxes between its ends. A node reached by
several paths is drawn once: nodes are identified by identity, not by equality.
"""

import itertools
from collections.abc import Callable, Iterable

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch
from matplotlib.text import Text

from course.figures import MIN_FONT_PT


def graph_nodes(root, children: Callable[[object], Iterable]) -> tuple[list, list[tuple]]:
    """All nodes reachable from `root` (in discovery order) and the (input, output) edges.

    Iterative, so a graph deeper than Python's recursion limit is fine.
    """
    nodes, edges, seen, stack = [], [], {id(root)}, [root]
    while stack:
        node = stack.pop()
        nodes.append(node)
        for child in children(node):
            edges.append((child, node))
            if id(child) not in seen:
                seen.add(id(child))
                stack.append(child)
    return nodes, edges


def layers(root, nodes: list, edges: list[tuple]) -> list[list]:
    """Rows of nodes: row 0 holds `root`, a node sits one row below its lowest user."""
    depth = {id(root): 0}
    users: dict[int, list] = {}
    for child, parent in edges:
        users.setdefault(id(child), []).append(parent)
    # longest path from the root: relax in passes (graphs in the course are small)
    changed = True
    while changed:
        changed = False
        for child, parent in edges:
            if id(parent) in depth and depth.get(id(child), -1) < depth[id(parent)] + 1:
                depth[id(child)] = depth[id(parent)] + 1
                changed = True
    rows: list[list] = [[] for _ in range(max(depth.values()) + 1)]
    for node in nodes:
        rows[depth[id(node)]].append(node)
    return rows


def new_figure(**kwargs) -> Figure:
    """A figure that a notebook shows once, as the value of the cell that returns it.

    Made through pyplot, which in a notebook's kernel loads the inline backend (that is
    what displays a returned figure as a PNG), then closed, so that pyplot does not show
    it a second time at the end of the cell.
    """
    figure = plt.figure(**kwargs)
    plt.close(figure)
    return figure


class _Bend:
    """A point where an edge that skips rows crosses a row (a dummy node of the layout)."""


GAP = 2.0  # characters between two boxes of a row
BEND_WIDTH = 1.0  # the room an edge takes where it crosses a row, in characters


def layout(root, nodes: list, edges: list[tuple], widths: dict) -> tuple[dict, list[list]]:
    """A layered (Sugiyama) layout: a position per node, and each edge as a polyline.

    Rows as :func:`layers` makes them. An edge that skips rows gets a bend point in every
    row it crosses, which takes a place in that row like a narrow node, so the edge runs
    between the boxes instead of through them. Each row is ordered by the mean place of
    its neighbours, sweeping down and up a few times (fewer crossings); then each node is
    put as near as it can to the mean x of its neighbours, no closer to the next box of its
    row than `GAP`. x is in characters of the labels (`widths`: a box's width by node id),
    y is minus the row. Returns (position by id, per edge the nodes and bends it passes,
    input first).
    """
    rows = [list(row) for row in layers(root, nodes, edges)]
    depth = {id(node): d for d, row in enumerate(rows) for node in row}
    chains = []  # per edge: the nodes and bends it passes, from the user down to the input
    for child, parent in edges:
        chain = [parent]
        for d in range(depth[id(parent)] + 1, depth[id(child)]):
            bend = _Bend()
            rows[d].append(bend)
            chain.append(bend)
        chains.append([*chain, child])
    above: dict[int, list] = {}  # neighbours in the row above / below
    below: dict[int, list] = {}
    for chain in chains:
        for upper, lower in itertools.pairwise(chain):
            above.setdefault(id(lower), []).append(upper)
            below.setdefault(id(upper), []).append(lower)

    def width(node) -> float:
        return widths.get(id(node), BEND_WIDTH)

    def pack(row, wanted: dict) -> None:
        """Place `row` left to right, each node at its wanted x or just right of the last."""
        right = -float("inf")
        for node in row:
            x[id(node)] = max(wanted[id(node)], right + width(node) / 2)
            right = x[id(node)] + width(node) / 2 + GAP
        shift = sum(wanted[id(n)] - x[id(n)] for n in row) / len(row)
        for node in row:  # as near as it can get to where its neighbours want it, on average
            x[id(node)] += shift

    def mean_x(node, neighbours) -> float:
        linked = neighbours.get(id(node), [])
        return sum(x[id(n)] for n in linked) / len(linked) if linked else x[id(node)]

    x: dict[int, float] = {}
    for row in rows:
        pack(row, {id(n): 0.0 for n in row})
    downwards, upwards = range(1, len(rows)), range(len(rows) - 2, -1, -1)
    for _ in range(6):
        for sweep, neighbours in ((downwards, above), (upwards, below)):
            for d in sweep:
                wanted = {id(n): mean_x(n, neighbours) for n in rows[d]}
                rows[d].sort(key=lambda n, w=wanted: w[id(n)])
                pack(rows[d], wanted)
    left = min(x[id(n)] - width(n) / 2 for row in rows for n in row)
    position = {id(n): (x[id(n)] - left, -d) for d, row in enumerate(rows) for n in row}
    return position, [list(reversed(chain)) for chain in chains]


def spread_ports(lines: list[list], chains: list[list], widths: dict) -> None:
    """Where several edges leave or reach one box, spread them along its edge (in the order
    of where they come from), so that each arrow can be followed; the short vertical pieces
    in the box's band move with them."""
    for end, inner in ((-1, -3), (0, 2)):  # arrivals at the user, departures from the input
        by_box: dict[int, list[int]] = {}
        for number, chain in enumerate(chains):
            by_box.setdefault(id(chain[end]), []).append(number)
        for key, numbers in by_box.items():
            if len(numbers) < 2:
                continue
            numbers.sort(key=lambda n: lines[n][inner][0])
            room = max(widths.get(key, BEND_WIDTH) / 2 - PAD_CHARS, 0.0)
            step = min(1.5, 2 * room / (len(numbers) - 1))
            for rank, n in enumerate(numbers):
                shift = (rank - (len(numbers) - 1) / 2) * step
                pair = (-2, -1) if end == -1 else (0, 1)
                for i in pair:
                    x, y = lines[n][i]
                    lines[n][i] = (x + shift, y)


def polyline(chain: list, position: dict, band: dict) -> list[tuple[float, float]]:
    """The points an edge passes, from its input up to its user: it leaves a box and crosses
    a row straight up, within the row's band (`band`: half its height, by row), and runs
    slanted only between bands, where there is no box to run through."""
    points = []
    for number, node in enumerate(chain):
        x, y = position[id(node)]
        half = band[y]
        if number == 0:
            points += [(x, y), (x, y + half)]
        elif number == len(chain) - 1:
            points += [(x, y - half), (x, y)]
        else:
            points += [(x, y - half), (x, y + half)]
    return points


CHAR_IN = 0.602 * MIN_FONT_PT / 72  # the width of a monospace character, in inches
PAD_CHARS = 2 * 0.4 / 0.602  # the box's padding (0.4 em on each side), in characters


def draw_graph(
    root,
    children: Callable[[object], Iterable],
    label: Callable[[object], str],
    *,
    ax=None,
    title: str | None = None,
) -> Figure:
    """Draw the graph below `root` and return the figure it is on.

    `children(node)` gives a node's inputs and `label(node)` its (multi-line) text.
    With `ax=None` a new figure is made with :func:`new_figure`; otherwise the drawing
    goes on `ax`. The layout is :func:`layout`'s; the figure keeps it (`course_graphs`:
    for each graph drawn on it, its boxes and its edges' polylines) for the tests of its
    geometry.
    """
    nodes, edges = graph_nodes(root, children)
    texts = {id(node): label(node) for node in nodes}  # called once per node
    widths = {
        key: max(len(line) for line in text.split("\n")) + PAD_CHARS for key, text in texts.items()
    }
    position, chains = layout(root, nodes, edges, widths)
    rows = -min(y for _, y in position.values()) + 1
    span = max(x + widths.get(key, BEND_WIDTH) / 2 for key, (x, _) in position.items())
    if ax is None:
        # 5.2 in wide where the graph fits, so that its text stays legible on a phone
        size = (max(3.0, span * CHAR_IN / 0.75), max(2.0, 1.3 * rows))
        ax = new_figure(figsize=size).add_subplot()
    # x is in characters: show at least as many as the axes can hold at the labels' size,
    # so that no box is wider than its place in the layout
    axes_in = ax.figure.get_size_inches() * [ax.get_position().width, ax.get_position().height]
    shown = max(span, axes_in[0] / CHAR_IN)
    # each row's band: the half height of its tallest box, in rows (an estimate from the
    # label's lines, on the large side), at most 0.45 of a row
    per_row_in = axes_in[1] / (rows + 0.2)
    band = {-d: 0.0 for d in range(rows)}
    for node in nodes:
        lines = texts[id(node)].count("\n") + 1
        half_in = (lines * 1.25 * MIN_FONT_PT / 2 + 0.5 * MIN_FONT_PT) / 72
        y = position[id(node)][1]
        band[y] = min(0.45, max(band[y], half_in / per_row_in))
    lines = [polyline(chain, position, band) for chain in chains]
    spread_ports(lines, chains, widths)
    # Three layers: the boxes, the arrows (clipped at the boxes' edges, which are placed
    # when the boxes are drawn, hence drawn after them), the labels on top of everything.
    boxes = {}
    for node in nodes:
        x, y = position[id(node)]
        text = texts[id(node)]
        style = {"ha": "center", "va": "center", "fontsize": MIN_FONT_PT, "family": "monospace"}
        boxes[id(node)] = ax.text(
            x,
            y,
            text,
            color="none",
            bbox={"boxstyle": "round,pad=0.4", "facecolor": "#e8f0fb", "edgecolor": "#4a6fa5"},
            zorder=3,
            **style,
        )
        # on the figure, drawn after the axes (arrows included); ax.texts keeps one text
        # per node, its box
        ax.figure.add_artist(Text(x, y, text, transform=ax.transData, zorder=5, **style))
    line_style = {"color": "0.35", "linewidth": 1.0, "zorder": 4}
    for (child, parent), points in zip(edges, lines, strict=True):
        segments = list(itertools.pairwise(points))
        for number, (start, end) in enumerate(segments):
            first, last = number == 0, number == len(segments) - 1
            ax.add_patch(
                FancyArrowPatch(
                    start,
                    end,
                    arrowstyle="-|>" if last else "-",
                    mutation_scale=12,
                    patchA=boxes[id(child)].get_bbox_patch() if first else None,
                    patchB=boxes[id(parent)].get_bbox_patch() if last else None,
                    shrinkA=1 if first else 0,
                    shrinkB=1 if last else 0,
                    **line_style,
                )
            )
    ax.set_xlim(span / 2 - shown / 2, span / 2 + shown / 2)
    ax.set_ylim(-rows + 0.4, 0.6)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    drawn = getattr(ax.figure, "course_graphs", [])
    drawn.append(
        {
            "ax": ax,
            "boxes": {id(n): boxes[id(n)] for n in nodes},
            "edges": [(id(c), id(p), pts) for (c, p), pts in zip(edges, lines, strict=True)],
        }
    )
    ax.figure.course_graphs = drawn
    return ax.figure


def torch_graph_children(fn) -> list:
    """The `grad_fn` nodes that `fn` passes gradients to (`None` entries dropped)."""
    return [next_fn for next_fn, _ in getattr(fn, "next_functions", ()) if next_fn is not None]


def torch_graph_label(fn, names: dict | None = None) -> str:
    """A node's class name; for a leaf's `AccumulateGrad`, the leaf: its name in `names`
    (name -> tensor, matched by identity) or else its shape."""
    name = type(fn).__name__
    variable = getattr(fn, "variable", None)
    if variable is not None:
        called = [key for key, tensor in (names or {}).items() if tensor is variable]
        return f"{name}\n{called[0] if called else f'leaf {tuple(variable.shape)}'}"
    return name


def draw_torch_graph(
    tensor, *, names: dict | None = None, ax=None, title: str | None = None
) -> Figure:
    """Draw the backward graph recorded for `tensor`, from its `grad_fn` down.

    `names` (name -> leaf tensor) labels the leaves with the names the code gave them.
    """
    if tensor.grad_fn is None:
        raise ValueError(
            "this tensor has no grad_fn, so there is no graph to draw: it is a leaf, or it "
            "was computed from tensors that do not require grad (or under torch.no_grad())"
        )
    return draw_graph(
        tensor.grad_fn,
        torch_graph_children,
        lambda fn: torch_graph_label(fn, names),
        ax=ax,
        title=title,
    )


def draw_path_tree(
    root,
    children: Callable[[object], Iterable],
    label: Callable[[tuple], str],
    *,
    ax=None,
    title: str | None = None,
) -> Figure:
    """Draw the graph below `root` unfolded into its tree of paths: the chain rule's picture.

    Every path from `root` down to a node gets its own box, so a node reached by two
    paths is drawn twice (the chain rule sums one product per path). `label(path)`
    receives the path as a tuple of nodes from `root` to the node. The number of paths
    can grow exponentially with depth: meant for small graphs.
    """
    return draw_graph(
        (root,),
        lambda path: [(*path, child) for child in children(path[-1])],
        label,
        ax=ax,
        title=title,
    )
