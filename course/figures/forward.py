"""Chapter 5's crossover: how long `jacfwd` and `jacrev` take for f: ℝⁿ → ℝᵐ, and its plot.

`jacobian_timings` measures (the chapter and `tools/bench.py` both call it, so the two
always time the same thing); `plot_crossover` draws what it measured. Timings vary from
run to run and from machine to machine: nothing here asserts a time.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator
from torch.func import jacfwd, jacrev

from course.figures import MIN_FONT_PT
from course.figures.graphs import new_figure
from course.threads import same_threads

# Drawn at most this wide (inches at 100 dpi) so that the text stays legible on a phone.
WIDTH = 5.2


@dataclass(frozen=True)
class JacobianTiming:
    """The best of several timings of `jacfwd(f)(x)` and `jacrev(f)(x)`, in seconds."""

    n: int
    m: int
    forward: float
    reverse: float

    @property
    def ratio(self) -> float:
        """`jacfwd` time over `jacrev` time: above 1, reverse mode is faster."""
        return self.forward / self.reverse


def two_layer(n: int, m: int, hidden: int = 256, seed: int = 0) -> Callable:
    """f: ℝⁿ → ℝᵐ, `x ↦ W₂ tanh(W₁ x)`: every pass through it costs about the same."""
    generator = torch.Generator().manual_seed(seed)
    W1 = torch.randn(hidden, n, generator=generator) / n**0.5
    W2 = torch.randn(m, hidden, generator=generator) / hidden**0.5
    return lambda x: W2 @ torch.tanh(W1 @ x)


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """The fastest of `repeats` calls after one warm-up: the least disturbed by noise."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def jacobian_timings(
    shapes: Sequence[tuple[int, int]], repeats: int = 3, threads: int = 1
) -> list[JacobianTiming]:
    """Time `jacfwd` and `jacrev` on `two_layer(n, m)` for each `(n, m)`.

    Both run on `threads` threads (one by default: on a shared machine, a second thread
    mostly measures the neighbours).
    """
    timings = []
    with same_threads(threads):
        for n, m in shapes:
            f = two_layer(n, m)
            x = torch.randn(n, generator=torch.Generator().manual_seed(1))
            forward = best_time(lambda f=f, x=x: jacfwd(f)(x), repeats)
            reverse = best_time(lambda f=f, x=x: jacrev(f)(x), repeats)
            timings.append(JacobianTiming(n, m, forward, reverse))
    return timings


def _fraction(value: float, _position=None) -> str:
    """A tick label: `4` or `1/4`, never `2⁻²`."""
    return f"{value:g}" if value >= 1 else f"1/{1 / value:g}"


def plot_crossover(timings: Sequence[JacobianTiming]):
    """`jacfwd` time / `jacrev` time against n / m, both on log scales."""
    figure = new_figure(figsize=(WIDTH, 3.6), layout="constrained")
    ax = figure.subplots()
    shape_ratio = [t.n / t.m for t in timings]
    ax.plot(shape_ratio, [t.ratio for t in timings], "o-", color="tab:blue")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.axhline(1, color="gray", linestyle="--")
    ax.axvline(1, color="gray", linestyle=":")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(LogLocator(base=4))
        axis.set_minor_locator(NullLocator())
        axis.set_major_formatter(FuncFormatter(_fraction))
    ax.set_xlabel("n / m  (inputs per output)")
    ax.set_ylabel("jacfwd time / jacrev time")
    ax.margins(x=0.15, y=0.3)
    _label_shapes(ax, timings, shape_ratio)
    ax.set_title("Above the dashed line, reverse mode is faster")
    return figure


def _label_shapes(ax, timings: Sequence[JacobianTiming], shape_ratio: list[float]) -> None:
    """Name each point's n and m on an axis above the plot, where no line can cross them.

    (Labels beside the points were crossed by the line whenever it rose steeply.)
    """
    top = ax.secondary_xaxis("top")
    top.set_xticks(shape_ratio, labels=[f"{t.n}\n{t.m}" for t in timings])
    top.xaxis.set_minor_locator(NullLocator())
    top.tick_params(labelsize=MIN_FONT_PT, length=3)
    top.set_xlabel("n inputs (upper number) and m outputs (lower)", fontsize=MIN_FONT_PT)
