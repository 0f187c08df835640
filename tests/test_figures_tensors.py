"""The figures of Chapter 1 are drawn from the tensors' real strides and shapes."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch

from course.figures.tensors import element_offsets, plot_broadcast, plot_storage_views

BASE = torch.arange(24)
VIEWS = {
    "view": BASE.view(4, 6),
    "transpose": BASE.view(4, 6).t(),
    "slice": BASE.view(4, 6)[1:, ::2],
    "permute": BASE.view(2, 3, 4).permute(2, 0, 1),
    "expand": BASE[5:8].view(3, 1).expand(3, 4),
    "scalar": BASE[7],
}


@pytest.mark.parametrize("name", VIEWS)
def test_element_offsets_are_the_positions_each_element_reads(name):
    """Over a storage that holds 0, 1, 2, …, a view's values are its storage positions."""
    view = VIEWS[name]
    assert torch.equal(element_offsets(view), view), f"{name}: offsets differ from positions"


def cell_labels(ax) -> list[str]:
    return [text.get_text() for text in ax.texts]


def test_storage_views_colour_and_label_each_cell_by_its_position():
    x = torch.arange(10, 16)
    y = x.view(2, 3)
    fig = plot_storage_views({"y": y, "y.t()": y.t()})
    storage, _first, second = fig.axes
    assert cell_labels(storage) == [t for v in range(10, 16) for t in (str(v), f"pos {v - 10}")]
    assert cell_labels(second)[1::2] == [f"pos {p}" for p in (0, 3, 1, 4, 2, 5)], "y.t()"
    assert "stride (1, 3)" in second.get_title(), second.get_title()
    storage_colours = [p.get_facecolor() for p in storage.patches]
    transposed_colours = [p.get_facecolor() for p in second.patches]
    assert transposed_colours == [storage_colours[p] for p in (0, 3, 1, 4, 2, 5)]
    plt.close(fig)


def test_storage_views_refuse_tensors_of_different_storages():
    with pytest.raises(ValueError, match="do not share one storage"):
        plot_storage_views({"a": torch.zeros(3), "b": torch.zeros(3)})


def test_broadcast_marks_the_repeated_cells():
    a = torch.tensor([[1, 0, 0], [1, 1, 1], [-1, 1, 1], [2, 3, 4]])
    sums = a.sum(dim=1, keepdim=True)
    fig = plot_broadcast(a, sums, a / sums, "/")
    left, middle, right = fig.axes[:3]  # the two operator axes come last
    assert [p.get_linestyle() for p in left.patches] == ["-"] * 12, "a has no repeats"
    # the column of sums is held once per row (first column) and repeated twice
    assert [p.get_linestyle() == "-" for p in middle.patches] == [True, False, False] * 4
    assert cell_labels(middle) == ["1"] * 3 + ["3"] * 3 + ["1"] * 3 + ["9"] * 3
    assert cell_labels(right)[3:6] == ["0.33"] * 3
    assert cell_labels(right)[-1] == "0.44"
    assert "(4, 3) / (4, 1) → (4, 3)" in fig._suptitle.get_text()
    plt.close(fig)


def test_broadcast_repeats_a_row_down_the_rows():
    col, row = torch.arange(4).view(-1, 1) * 10, torch.arange(3)
    fig = plot_broadcast(col, row, col + row, "+")
    middle = fig.axes[1]
    assert [p.get_linestyle() == "-" for p in middle.patches] == [True] * 3 + [False] * 9
    plt.close(fig)


def test_broadcast_refuses_a_wrong_result():
    a = torch.ones(4, 3)
    with pytest.raises(ValueError, match="cannot draw"):
        plot_broadcast(a, torch.ones(4, 1), torch.ones(4, 1), "/")
