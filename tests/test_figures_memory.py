"""Chapter 7's figures draw exactly what they are given, legibly."""

import matplotlib

matplotlib.use("Agg")

import numpy as np

from course.figures import MIN_FONT_PT, smallest_font_pt
from course.figures.memory import MB, plot_bill, plot_checkpoint_curve
from course.memory import CheckpointPoint


def test_the_bill_draws_activations_against_batch_and_depth():
    by_batch = {"MLP": {8: 1e6, 32: 4e6}, "CNN": {8: 2e6, 32: 8e6}}
    fixed = {"MLP": 6e6, "CNN": 3e5}
    by_depth = {1: (1e6, 6e6), 2: (2e6, 10e6)}
    figure = plot_bill(by_batch, fixed, by_depth, batch=128)
    top, bottom = figure.axes
    solid = [line for line in top.lines if line.get_linestyle() == "-"]
    dashed = [line for line in top.lines if line.get_linestyle() == "--"]
    assert [list(line.get_ydata()) for line in solid] == [[1.0, 4.0], [2.0, 8.0]]
    assert [line.get_ydata()[0] for line in dashed] == [6e6 / MB, 3e5 / MB]
    assert np.allclose(bottom.lines[0].get_ydata(), [1, 2])
    assert np.allclose(bottom.lines[1].get_ydata(), [6, 10])
    assert "batch 128" in bottom.get_title()
    assert smallest_font_pt(figure) >= MIN_FONT_PT, "text too small to read on a phone"


def test_the_checkpoint_curve_puts_time_against_memory_with_labels():
    points = [
        CheckpointPoint(0, peak=400, flops=10, seconds=2.0),
        CheckpointPoint(2, peak=200, flops=12, seconds=3.0),
        CheckpointPoint(4, peak=100, flops=13, seconds=2.5),
    ]
    figure = plot_checkpoint_curve(points, layer_bytes=100, depth=4)
    (ax,) = figure.axes
    cut, plain = ax.lines
    assert np.allclose(cut.get_xdata(), [1.5, 1.25])
    assert np.allclose(cut.get_ydata(), [2, 1])
    assert list(plain.get_xdata()) == [1.0]
    assert list(plain.get_ydata()) == [4.0]
    assert [t.get_text() for t in ax.texts] == ["none", "2", "4"]
    assert "4-layer" in ax.get_title()
    assert smallest_font_pt(figure) >= MIN_FONT_PT, "text too small to read on a phone"
