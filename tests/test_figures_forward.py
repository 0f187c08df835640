"""Chapter 5's crossover: the timings measure the two Jacobians, the plot draws them."""

import itertools
import re

import matplotlib

matplotlib.use("Agg")

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text
from torch.func import jacrev

from course import REPO_ROOT
from course.figures import MIN_FONT_PT, smallest_font_pt
from course.figures.forward import JacobianTiming, jacobian_timings, plot_crossover, two_layer


def test_two_layer_has_the_shape_asked_for():
    f = two_layer(5, 3, hidden=4)
    assert jacrev(f)(torch.zeros(5)).shape == (3, 5), "J of f: R^5 -> R^3 must be 3 x 5"


def test_timings_are_positive_and_keep_the_shapes():
    timings = jacobian_timings([(2, 3), (3, 2)], repeats=1)
    assert [(t.n, t.m) for t in timings] == [(2, 3), (3, 2)], "one timing per shape, in order"
    assert all(t.forward > 0 and t.reverse > 0 for t in timings), f"times: {timings}"


def test_make_bench_times_three_of_the_chapters_shapes():
    """Chapter 5: `make bench` times n/m = 1/64, 1 and 64 with the chapter's function."""
    bench = (REPO_ROOT / "tools" / "bench.py").read_text()
    assert "shapes = [(8, 512), (64, 64), (512, 8)]" in bench, "the shapes make bench times"
    assert "jacobian_timings(shapes)" in bench, "make bench times them with jacobian_timings"


def test_plot_draws_the_ratio_against_n_over_m():
    timings = [JacobianTiming(4, 64, 1.0, 8.0), JacobianTiming(64, 4, 6.0, 2.0)]
    figure = plot_crossover(timings)
    (ax,) = figure.axes
    line = ax.lines[0]
    assert np.allclose(line.get_xdata(), [1 / 16, 16]), f"x: {line.get_xdata()}"
    assert np.allclose(line.get_ydata(), [1 / 8, 3]), f"y: {line.get_ydata()}"
    assert ax.get_xscale() == ax.get_yscale() == "log", "both axes on log scales"
    labels = [[t.get_text() for t in shape_labels(figure, n, m)] for n, m in [(4, 64), (64, 4)]]
    assert labels == [["4\n64"], ["64\n4"]], f"point labels: {labels}"
    assert smallest_font_pt(figure) >= MIN_FONT_PT, "text too small to read on a phone"


def shape_labels(figure, n, m):
    """The texts of `figure` that name the point (n, m): n then m, and no other number."""
    return [
        text
        for text in figure.findobj(Text)
        if text.get_visible()
        if [int(k) for k in re.findall(r"\d+", text.get_text())] == [n, m]
    ]


def test_point_labels_stay_clear_of_the_line_and_of_each_other():
    """Fig. 5.1's labels once sat beside the points, where the line crossed them."""
    shapes = [(8, 512), (16, 256), (32, 128), (64, 64), (128, 32), (256, 16), (512, 8)]
    ratios = [0.05, 0.57, 1.3, 1.33, 1.56, 2.42, 4.16]  # a measured run, steep at the left
    timings = [JacobianTiming(n, m, r, 1.0) for (n, m), r in zip(shapes, ratios, strict=True)]
    figure = plot_crossover(timings)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    (ax,) = figure.axes
    plot_area = ax.get_window_extent(renderer)
    labels = [shape_labels(figure, n, m) for n, m in shapes]
    assert all(len(found) == 1 for found in labels), f"one label per point: {labels}"
    boxes = [found.get_window_extent(renderer) for (found,) in labels]
    for box, (n, m) in zip(boxes, shapes, strict=True):
        assert not box.overlaps(plot_area), f"the label of n={n}, m={m} lies where the line runs"
        assert not box.overlaps(ax.title.get_window_extent(renderer)), f"n={n}: on the title"
    for (left, a), (right, b) in itertools.pairwise(zip(shapes, boxes, strict=True)):
        assert a.x1 < b.x0, f"the labels of {left} and {right} overlap"
