"""course.figures.graphs: graph walking, layering and drawing, and the drawings' geometry:
no edge runs through a box that is not one of its ends, no two boxes overlap."""

import itertools

import pytest
import torch
from matplotlib.figure import Figure

from course.figures.graphs import (
    draw_graph,
    draw_path_tree,
    draw_torch_graph,
    graph_nodes,
    layers,
    torch_graph_children,
    torch_graph_label,
)


def test_torch_graph_walks_to_accumulate_grad():
    x = torch.tensor([1.0, 4.0], requires_grad=True)
    y = (x**2).exp()
    nodes, _ = graph_nodes(y.grad_fn, torch_graph_children)
    names = [torch_graph_label(n).split("\n")[0] for n in nodes]
    assert names == ["ExpBackward0", "PowBackward0", "AccumulateGrad"]
    assert torch_graph_label(nodes[-1]) == "AccumulateGrad\nleaf (2,)"


def test_a_node_used_twice_is_drawn_once():
    x = torch.tensor(2.0, requires_grad=True)
    y = x * x + x
    nodes, edges = graph_nodes(y.grad_fn, torch_graph_children)
    leaves = [n for n in nodes if type(n).__name__ == "AccumulateGrad"]
    assert len(leaves) == 1, "x is one node, however many paths reach it"
    assert len(edges) == 4, "add<-mul, add<-x, mul<-x twice"
    rows = layers(y.grad_fn, nodes, edges)
    assert [len(r) for r in rows] == [1, 1, 1], "x sits below its lowest user, mul"


def test_deep_graph_does_not_recurse():
    chain = list(range(5000))
    nodes, edges = graph_nodes(0, lambda n: [n + 1] if n + 1 < len(chain) else [])
    assert len(nodes) == 5000
    assert len(edges) == 4999


def test_draw_graph_labels_every_node():
    figure = draw_graph("c", {"c": ["a", "b"], "a": [], "b": []}.get, str.upper, title="t")
    assert isinstance(figure, Figure)
    texts = sorted(t.get_text() for t in figure.axes[0].texts)
    assert texts == ["A", "B", "C"]
    assert figure.axes[0].get_title() == "t"


def test_draw_on_a_given_axis():
    figure = Figure()
    ax = figure.add_subplot()
    x = torch.ones(3, requires_grad=True)
    assert draw_torch_graph((x * 2).sum(), ax=ax) is figure


def test_leaf_has_no_graph():
    with pytest.raises(ValueError, match="no grad_fn"):
        draw_torch_graph(torch.ones(2, requires_grad=True))


def test_path_tree_draws_a_shared_node_once_per_path():
    s = torch.tensor(0.5, requires_grad=True)
    z = s.sin() * s**2
    paths = []
    figure = draw_path_tree(
        z.grad_fn, torch_graph_children, lambda p: paths.append(p) or torch_graph_label(p[-1])
    )
    leaves = [p for p in paths if type(p[-1]).__name__ == "AccumulateGrad"]
    assert len(leaves) == 2, "s is reached through sin and through pow: two paths, two boxes"
    assert leaves[0][-1] is leaves[1][-1], "both boxes stand for the same live node"
    assert all(p[0] is z.grad_fn for p in paths), "every path starts at the root"
    assert len(figure.axes[0].texts) == 5


def boxes_and_segments(figure):
    """Every box (display coordinates) and every edge segment of the graphs on `figure`,
    each segment with the boxes it may touch: the edge's own ends."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    found = []
    for graph in figure.course_graphs:
        to_display = graph["ax"].transData.transform
        boxes = {
            key: text.get_bbox_patch().get_window_extent(renderer)
            for key, text in graph["boxes"].items()
        }
        segments = []
        for child, parent, points in graph["edges"]:
            shown = [tuple(to_display(p)) for p in points]
            pairs = itertools.pairwise(shown)
            segments += [(start, end, {child, parent}) for start, end in pairs]
        found.append((boxes, segments))
    return found


def crossings(figure) -> list[str]:
    """Edge segments that pass through a box that is not one of their ends, and boxes
    that overlap."""
    problems = []
    for boxes, segments in boxes_and_segments(figure):
        for start, end, ends in segments:
            for key, box in boxes.items():
                if key in ends:
                    continue
                inner = box.expanded(0.98, 0.9)  # a touch at the rounded corner is not a crossing
                hits = [
                    inner.contains(
                        start[0] + t * (end[0] - start[0]), start[1] + t * (end[1] - start[1])
                    )
                    for t in (i / 400 for i in range(401))
                ]
                if any(hits):
                    problems.append(f"an edge crosses box {key}")
        keys = list(boxes)
        for i, a in enumerate(keys):
            for b in keys[i + 1 :]:
                if boxes[a].overlaps(boxes[b]):
                    problems.append(f"boxes {a} and {b} overlap")
    return problems


def intro_figure():
    """The front page's figure: the engine's graph of tanh(a * b + c) * a above torch's."""
    from course.figures.graphs import new_figure
    from course.notebooks import engine

    Value = engine().Value

    def expression(a, b, c):
        return (a * b + c).tanh() * a

    ours = [Value(x) for x in (0.5, -1.5, 0.25)]
    out = expression(*ours)
    out.backward()
    theirs = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in (0.5, -1.5, 0.25)]
    names = dict(zip(ours, "abc", strict=True))
    figure = new_figure(figsize=(5.2, 8.6), layout="constrained")
    top, bottom = figure.subplots(2, 1, height_ratios=[1.25, 1])
    draw_graph(
        out,
        lambda v: v._prev,
        lambda v: f"{names.get(v, v._op)}\n{v.data:.3f}\ngrad {v.grad:.3f}",
        ax=top,
    )
    draw_torch_graph(expression(*theirs), names=dict(zip("abc", theirs, strict=True)), ax=bottom)
    return figure


def chapter_graphs():
    """The graphs Chapter 3 draws, and a few harder ones: skips over several rows, a node
    used by many, a wide row."""
    x = torch.tensor([1.0, 4.0], requires_grad=True)
    s = torch.tensor(0.5, requires_grad=True)
    a, b, c = (torch.tensor(v, requires_grad=True) for v in (0.5, -1.5, 0.25))
    w = torch.randn(3, 3, requires_grad=True, generator=torch.Generator().manual_seed(0))
    deep = a
    for _ in range(5):
        deep = (deep * b).sin() + c
    yield "z = (x ** 2).exp()", (x**2).exp().sum()
    yield "sin(s) * s ** 2", s.sin() * s**2
    yield "skip connections", deep * a + b * c + a.exp()
    yield "a wide row", (w @ w + w.t() * w.sin() + w.cos().exp()).sum() * a + c
    generator = torch.Generator().manual_seed(1)
    for number in range(12):  # random expressions of the three leaves
        values = [a, b, c]
        for _ in range(8):
            i, j = torch.randint(len(values), (2,), generator=generator).tolist()
            op = torch.randint(4, (1,), generator=generator).item()
            new = [values[i] * values[j], values[i] + values[j], values[i].tanh(), values[j].exp()]
            values.append(new[op])
        yield f"random expression {number}", values[-1] + values[-2]


def test_the_front_page_figure_has_no_edge_through_a_box_and_named_leaves():
    figure = intro_figure()
    assert crossings(figure) == []
    labels = [t.get_text() for t in figure.axes[1].texts]
    assert sorted(t.split("\n")[1] for t in labels if t.startswith("AccumulateGrad")) == [
        "a",
        "b",
        "c",
    ], labels


@pytest.mark.parametrize(("title", "tensor"), list(chapter_graphs()), ids=lambda v: str(v)[:30])
def test_no_edge_crosses_a_box_it_does_not_end_at(title, tensor):
    figure = draw_torch_graph(tensor, title=title)
    assert crossings(figure) == [], title


def test_the_geometry_test_sees_a_crossing():
    """The old layout drew an edge that skips rows straight, through the boxes between its
    ends (a to the last * on the front page): the test must see such a thing."""
    leaf = torch.tensor(0.5, requires_grad=True)
    chain = leaf.exp().sin().cos().tanh()
    figure = draw_torch_graph(chain * leaf)
    assert crossings(figure) == []
    graph = figure.course_graphs[0]
    child, parent, points = max(graph["edges"], key=lambda e: len(e[2]))  # the skip
    graph["edges"].append((child, parent, [points[0], points[-1]]))  # straight, no bends
    assert crossings(figure), "a straight edge over four rows crossed no box?"
