"""Draw computation graphs with matplotlib alone: torch's `grad_fn` graphs and your own.

No graphviz: the pictures must render offline and on Binder without system packages.
The layout is layered: the output at the top, each node one row below the lowest of the
nodes that use it, the leaves at the bottom, arrows pointing from inputs to outputs (the
direction of the forward pass; backward walks them the other way). A node reached by
several paths is drawn once: nodes are identified by identity, not by equality.
"""

from collections.abc import Callable, Hashable, Iterable

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
    goes on `ax`.
    """
    nodes, edges = graph_nodes(root, children)
    rows = layers(root, nodes, edges)
    width = max(len(row) for row in rows)
    if ax is None:
        # at most 5.2 in wide, so that its text stays legible on a phone
        size = (min(5.2, max(3.0, 2.3 * width)), max(2.0, 1.3 * len(rows)))
        ax = new_figure(figsize=size).add_subplot()
    users: dict[int, list] = {}
    for child, parent in edges:
        users.setdefault(id(child), []).append(parent)
    position: dict[Hashable, tuple[float, float]] = {}
    for depth, row in enumerate(rows):
        # fewer crossings: order a row by where the nodes that use it sit
        row = sorted(
            row,
            key=lambda n: (
                sum(position[id(u)][0] for u in users.get(id(n), [])) / len(users[id(n)])
                if id(n) in users
                else 0.0
            ),
        )
        for i, node in enumerate(row):
            position[id(node)] = ((i + 0.5) * width / len(row), -depth)
    # Three layers: the boxes, the arrows (clipped at the boxes' edges, which are placed
    # when the boxes are drawn, hence drawn after them), the labels on top of everything.
    boxes = {}
    for node in nodes:
        x, y = position[id(node)]
        text = label(node)  # called once per node
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
    for child, parent in edges:
        ax.add_patch(
            FancyArrowPatch(
                position[id(child)],
                position[id(parent)],
                arrowstyle="-|>",
                mutation_scale=12,
                patchA=boxes[id(child)].get_bbox_patch(),
                patchB=boxes[id(parent)].get_bbox_patch(),
                shrinkA=1,
                shrinkB=1,
                color="0.35",
                linewidth=1.0,
                zorder=4,
            )
        )
    ax.set_xlim(-0.1, width + 0.1)
    ax.set_ylim(-len(rows) + 0.4, 0.6)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax.figure


def torch_graph_children(fn) -> list:
    """The `grad_fn` nodes that `fn` passes gradients to (`None` entries dropped)."""
    return [next_fn for next_fn, _ in getattr(fn, "next_functions", ()) if next_fn is not None]


def torch_graph_label(fn) -> str:
    """A node's class name; for a leaf's `AccumulateGrad`, also the leaf's shape."""
    name = type(fn).__name__
    variable = getattr(fn, "variable", None)
    if variable is not None:
        return f"{name}\nleaf {tuple(variable.shape)}"
    return name


def draw_torch_graph(tensor, *, ax=None, title: str | None = None) -> Figure:
    """Draw the backward graph recorded for `tensor`, from its `grad_fn` down."""
    if tensor.grad_fn is None:
        raise ValueError(
            "this tensor has no grad_fn, so there is no graph to draw: it is a leaf, or it "
            "was computed from tensors that do not require grad (or under torch.no_grad())"
        )
    return draw_graph(tensor.grad_fn, torch_graph_children, torch_graph_label, ax=ax, title=title)


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
