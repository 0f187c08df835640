"""Chapter 5's crossover: the timings measure the two Jacobians, the plot draws them."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import torch
from torch.func import jacrev

from course.figures import MIN_FONT_PT, smallest_font_pt
from course.figures.forward import JacobianTiming, jacobian_timings, plot_crossover, two_layer


def test_two_layer_has_the_shape_asked_for():
    f = two_layer(5, 3, hidden=4)
    assert jacrev(f)(torch.zeros(5)).shape == (3, 5), "J of f: R^5 -> R^3 must be 3 x 5"


def test_timings_are_positive_and_keep_the_shapes():
    timings = jacobian_timings([(2, 3), (3, 2)], repeats=1)
    assert [(t.n, t.m) for t in timings] == [(2, 3), (3, 2)], "one timing per shape, in order"
    assert all(t.forward > 0 and t.reverse > 0 for t in timings), f"times: {timings}"


def test_plot_draws_the_ratio_against_n_over_m():
    timings = [JacobianTiming(4, 64, 1.0, 8.0), JacobianTiming(64, 4, 6.0, 2.0)]
    figure = plot_crossover(timings)
    (ax,) = figure.axes
    line = ax.lines[0]
    assert np.allclose(line.get_xdata(), [1 / 16, 16]), f"x: {line.get_xdata()}"
    assert np.allclose(line.get_ydata(), [1 / 8, 3]), f"y: {line.get_ydata()}"
    assert ax.get_xscale() == ax.get_yscale() == "log", "both axes on log scales"
    labels = [t.get_text() for t in ax.texts]
    assert labels == ["n=4\nm=64", "n=64\nm=4"], f"point labels: {labels}"
    assert smallest_font_pt(figure) >= MIN_FONT_PT, "text too small to read on a phone"
