"""The shared figures draw what their docstrings promise, from tensors on any device."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.colors import to_hex

from course.figures.mnist import (
    plot_activation_scales,
    plot_confusion,
    plot_digits,
    plot_history,
    plot_loss_curves,
    plot_probabilities,
)


@pytest.fixture
def close_figures():
    yield
    plt.close("all")


def test_plot_digits_titles_each_image_and_hides_spare_axes(close_figures):
    images = torch.rand(10, 1, 28, 28)
    fig = plot_digits(images, [str(i) for i in range(10)], ncols=4, suptitle="ten digits")
    axes = fig.axes
    assert len(axes) == 12, f"10 images in rows of 4 need 3 rows of axes, got {len(axes)}"
    assert [ax.get_title() for ax in axes[:10]] == [str(i) for i in range(10)]
    assert all(not ax.images for ax in axes[10:]), "spare axes must stay empty"
    assert fig.get_suptitle() == "ten digits"


def grid(fig) -> tuple[int, int]:
    """(rows, columns) of a figure of digits."""
    rows, cols = fig.axes[0].get_subplotspec().get_gridspec().get_geometry()
    return rows, cols


@pytest.mark.parametrize(
    ("titles", "ncols", "expected"),
    [
        (["7 → 2 (99%)"] * 16, 8, (8, 2)),  # long titles: 3 fit, one would sit alone
        (["7 → 2\n99%"] * 16, 4, (4, 4)),  # two lines: narrow enough for 4
        (["7"] * 24, 8, (4, 6)),
        (["7"] * 32, 8, (8, 4)),
    ],
)
def test_plot_digits_leaves_no_digit_alone_on_its_last_row(close_figures, titles, ncols, expected):
    fig = plot_digits(torch.rand(len(titles), 28, 28), titles, ncols=ncols)
    rows, cols = grid(fig)
    assert (rows, cols) == expected, (rows, cols)
    last = len(titles) - (rows - 1) * cols
    assert 2 * last >= cols, f"{last} digit(s) on the last row of {cols} columns"
    assert fig.get_figwidth() <= 5.2, "the figure fits a phone's column"


def test_plot_digits_sizes_a_column_by_the_longest_line_of_a_title(close_figures):
    one_line = plot_digits(torch.rand(4, 28, 28), ["7 → 2 (99%)"] * 4, ncols=4)
    two_lines = plot_digits(torch.rand(4, 28, 28), ["7 → 2\n99%"] * 4, ncols=4)
    assert grid(one_line)[1] < grid(two_lines)[1] == 4
    assert [ax.get_title() for ax in two_lines.axes] == ["7 → 2\n99%"] * 4


def test_plot_digits_needs_one_title_per_image(close_figures):
    with pytest.raises(ValueError, match="one title per image: 3 images, 2 titles"):
        plot_digits(torch.rand(3, 28, 28), ["a", "b"])


def bar_colors(ax) -> list[str]:
    return [to_hex(bar.get_facecolor()) for bar in ax.patches]


def test_plot_probabilities_marks_label_and_wrong_guess(close_figures):
    probabilities = torch.full((2, 10), 0.05)
    probabilities[0, 3] = 0.55  # right: label 3
    probabilities[1, 8] = 0.55  # wrong: label 1, guess 8
    fig = plot_probabilities(torch.rand(2, 1, 28, 28), probabilities, torch.tensor([3, 1]))
    (image0, bars0), (image1, bars1) = fig.axes[0:2], fig.axes[2:4]
    green, red, gray = to_hex("tab:green"), to_hex("tab:red"), to_hex("tab:gray")
    assert bar_colors(bars0) == [gray] * 3 + [green] + [gray] * 6
    assert bar_colors(bars1) == [gray] + [green] + [gray] * 6 + [red, gray]
    heights = torch.tensor([b.get_height() for b in bars1.patches], dtype=torch.float32)
    assert torch.equal(heights, probabilities[1]), (
        f"bar heights {heights} are not the probabilities"
    )
    assert image0.get_title() == "label 3"
    assert image1.get_title() == "label 1"
    assert bars1.get_title() == "guess 8 with probability 0.55"


def test_plot_history_plots_every_step_and_epoch(close_figures):
    history = {
        "loss": [2.0 / (1 + i) for i in range(100)],
        "train_accuracy": [0.9, 0.95],
        "test_accuracy": [0.89, 0.93],
    }
    fig = plot_history(history)
    top, bottom = fig.axes
    assert top.get_position().y0 > bottom.get_position().y1, "the loss panel sits above"
    raw, smooth = top.lines
    assert len(raw.get_xdata()) == 100
    assert raw.get_xdata()[-1] == pytest.approx(2.0)
    assert len(smooth.get_xdata()) == 100 - 5 + 1, "a running mean over 5 steps (10 per epoch)"
    assert [list(line.get_ydata()) for line in bottom.lines] == [[90, 95], [89, 93]]
    assert top.get_yscale() == "log"


def test_plot_confusion_writes_every_nonzero_count(close_figures):
    matrix = torch.diag(torch.full((10,), 100))
    matrix[4, 9] = 7
    fig = plot_confusion(matrix)
    texts = {(t.get_position(), t.get_text()) for t in fig.axes[0].texts}
    assert len(texts) == 11, "ten diagonal counts and one mistake"
    assert ((9, 4), "7") in texts, "the count of true 4 read as 9 sits in row 4, column 9"


def test_plot_history_draws_the_validation_curve_when_given(close_figures):
    history = {"loss": [1.0] * 20, "train_accuracy": [0.9, 0.95], "val_accuracy": [0.8, 0.85]}
    right = plot_history(history).axes[1]
    assert [line.get_label() for line in right.lines] == ["training set", "validation set"]
    assert list(right.lines[1].get_ydata()) == [80, 85]


def test_plot_loss_curves_draws_each_running_mean_and_dashes_every_second(close_figures):
    curves = {"a": [float(i) for i in range(1, 31)], "b": [2.0] * 30, "c": [3.0] * 25}
    ax = plot_loss_curves(curves, window=10).axes[0]
    assert [line.get_label() for line in ax.lines] == ["a", "b", "c"]
    a, b, c = ax.lines
    assert list(a.get_xdata()) == list(range(10, 31)), "the mean of steps 1-10 sits at step 10"
    assert a.get_ydata()[0] == pytest.approx(5.5)
    assert a.get_ydata()[-1] == pytest.approx(25.5)
    assert [a.get_linestyle(), b.get_linestyle(), c.get_linestyle()] == ["-", "--", "-"]
    assert len(c.get_xdata()) == 16
    assert ax.get_yscale() == "log"


def test_plot_loss_curves_rejects_a_window_longer_than_a_run(close_figures):
    with pytest.raises(ValueError, match="fewer than window"):
        plot_loss_curves({"short": [1.0, 2.0]}, window=5)


def test_plot_activation_scales_one_line_per_init_on_a_log_axis(close_figures):
    scales = {"small": [0.1, 0.01, 0.001], "large": [10.0, 100.0, 1000.0]}
    ax = plot_activation_scales(scales).axes[0]
    assert [line.get_label() for line in ax.lines] == ["small", "large"]
    assert list(ax.lines[0].get_xdata()) == [1, 2, 3], "layers are numbered from 1"
    assert list(ax.lines[1].get_ydata()) == [10.0, 100.0, 1000.0]
    assert ax.get_yscale() == "log"
