"""Chapter 7's figures: what a training step keeps, against the batch size and the depth,
and the memory and time of checkpointing a deep MLP in segments.

The chapter measures; these functions only draw what they are given.
"""

from collections.abc import Mapping, Sequence

from course.figures import MIN_FONT_PT
from course.figures.graphs import new_figure
from course.memory import CheckpointPoint

# Drawn at most this wide (inches at 100 dpi) so that the text stays legible on a phone.
WIDTH = 5.2
MB = 1e6


def plot_bill(
    by_batch: Mapping[str, Mapping[int, int]],
    fixed: Mapping[str, int],
    by_depth: Mapping[int, tuple[int, int]],
    batch: int,
):
    """Two panels, both in MB on log scales.

    Top: the saved activations of each model against the batch size (`by_batch[model]
    [batch] = bytes`), with each model's parameters, gradients and Adam state
    (`fixed[model]`) as a flat dashed line. Bottom: for MLPs of growing depth at `batch`,
    `by_depth[hidden layers] = (activation bytes, parameter-side bytes)`.
    """
    figure = new_figure(figsize=(WIDTH, 6.4), layout="constrained")
    top, bottom = figure.subplots(2, 1)
    for (model, points), color in zip(by_batch.items(), ("tab:blue", "tab:orange"), strict=True):
        batches = sorted(points)
        top.plot(batches, [points[b] / MB for b in batches], "o-", color=color, label=model)
        top.axhline(fixed[model] / MB, color=color, linestyle="--")
    top.set_xscale("log", base=2)
    top.set_yscale("log")
    top.set_xlabel("batch size")
    top.set_ylabel("MB")
    top.set_title(
        "Activations (solid) grow with the batch;\nweights, gradients, Adam (dashed) do not"
    )
    top.legend(loc="upper left")
    depths = sorted(by_depth)
    bottom.plot(depths, [by_depth[d][0] / MB for d in depths], "o-", color="tab:blue")
    bottom.plot(depths, [by_depth[d][1] / MB for d in depths], "s--", color="tab:blue")
    bottom.set_yscale("log")
    bottom.set_xticks(depths)
    bottom.set_xlabel("hidden layers of 512 units (MLP)")
    bottom.set_ylabel("MB")
    bottom.set_title(f"With depth both grow (batch {batch})")
    bottom.legend(["activations", "weights, gradients, Adam"], loc="center right")
    return figure


def plot_checkpoint_curve(points: Sequence[CheckpointPoint], layer_bytes: int, depth: int):
    """Peak memory (in activations of one layer) against the time of a step relative to
    no checkpointing, one labelled point per number of segments, for an MLP of `depth`
    layers."""
    figure = new_figure(figsize=(WIDTH, 3.8), layout="constrained")
    ax = figure.subplots()
    plain = next(p for p in points if p.segments == 0)
    cut = [p for p in points if p.segments]
    ax.plot(
        [p.seconds / plain.seconds for p in cut],
        [p.peak / layer_bytes for p in cut],
        "o",
        color="tab:blue",
    )
    ax.plot([1.0], [plain.peak / layer_bytes], "s", color="tab:red")
    for p in points:
        ax.annotate(
            str(p.segments) if p.segments else "none",
            (p.seconds / plain.seconds, p.peak / layer_bytes),
            textcoords="offset points",
            xytext=(6, 4),
            fontsize=MIN_FONT_PT,
        )
    ax.set_xlabel("time of a step / time without checkpointing")
    ax.set_ylabel("peak memory (layer activations)")
    ax.set_title(f"Segments of a {depth}-layer MLP: memory against time")
    ax.margins(x=0.2, y=0.15)
    return figure
