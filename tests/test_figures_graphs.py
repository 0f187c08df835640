"""course.figures.graphs: graph walking, layering and drawing."""

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
