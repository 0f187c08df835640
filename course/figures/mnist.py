"""Figures the notebooks share: digits, class probabilities, training curves, confusions.

Each function draws one figure with pyplot and returns it. In a notebook, assign it
(`fig = plot_digits(...)`): the inline backend shows it once at the end of the cell and
closes it. Elsewhere, close it with `plt.close(fig)`.
"""

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import LogNorm

from course.figures import MIN_FONT_PT

CLASSES = range(10)
# The widest a figure is drawn, in inches at 100 dpi (520 CSS px): shown whole in a
# phone's column, its smallest text (MIN_FONT_PT) stays at least 9 CSS px tall.
WIDTH = 5.2


def _image(image) -> np.ndarray:
    """A 28×28 array from an image of shape (28, 28) or (1, 28, 28), on any device."""
    return torch.as_tensor(image).detach().cpu().reshape(28, 28).numpy()


def _columns(n: int, most: int) -> int:
    """How many columns a grid of `n` digits gets: the most, up to `most`, that leave the
    last row at least half full (16 digits in rows of 2, not 3 with one alone at the end).
    """
    most = max(1, min(most, n))
    return next(c for c in range(most, 0, -1) if n % c == 0 or 2 * (n % c) >= c)


def plot_digits(images, titles, ncols: int = 8, suptitle: str = ""):
    """A grid of digits, each with its title (its label, or its label and a guess).

    At most `ncols` per row, fewer when the titles are long: the figure stays
    `WIDTH` inches wide, so that its titles are legible on a phone. A title may hold
    several lines (`"7 → 2\n99%"`); the longest line sets the width of a column. The
    rows are as full as they can be (see `_columns`).
    """
    if len(titles) != len(images):
        raise ValueError(
            f"plot_digits needs one title per image: {len(images)} images, {len(titles)} titles"
        )
    lines = [str(title).split("\n") for title in titles]
    longest = max((len(line) for title in lines for line in title), default=1)
    height = max((len(title) for title in lines), default=1)
    column = max(0.85, 0.11 * longest + 0.2)  # inches: the title at MIN_FONT_PT fits
    ncols = _columns(len(images), min(ncols, int(WIDTH // column)))
    nrows = -(-len(images) // ncols)
    row = column * 0.9 + 0.2 + 0.15 * height  # the image and its lines of title
    fig, axes = plt.subplots(nrows, ncols, figsize=(column * ncols, row * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (image, title) in zip(axes.flat, zip(images, titles, strict=True), strict=False):
        ax.imshow(_image(image), cmap="gray_r")
        ax.set_title(title, fontsize=MIN_FONT_PT)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_probabilities(images, probabilities, labels, suptitle: str = ""):
    """Each image beside a bar chart of its 10 class probabilities, one row per image.

    The bar of the true label is green; the network's guess (the tallest bar) is red when
    it is wrong. `probabilities` has one row of 10 per image, each summing to 1.
    """
    probabilities = torch.as_tensor(probabilities).detach().cpu()
    labels = torch.as_tensor(labels).cpu()
    rows = len(labels)
    fig, axes = plt.subplots(
        rows, 2, figsize=(WIDTH, 1.9 * rows), width_ratios=[1, 2.6], squeeze=False
    )
    for (left, right), image, p, label in zip(axes, images, probabilities, labels, strict=True):
        guess = int(p.argmax())
        left.imshow(_image(image), cmap="gray_r")
        left.set_title(f"label {int(label)}", fontsize=MIN_FONT_PT)
        left.axis("off")
        colors = ["tab:gray"] * 10
        if guess != int(label):
            colors[guess] = "tab:red"
        colors[int(label)] = "tab:green"
        right.bar(CLASSES, p.numpy(), color=colors)
        right.set_xticks(CLASSES)
        right.set_ylim(0, 1)
        right.set_ylabel("probability")
        right.set_title(
            f"guess {guess} with probability {float(p[guess]):.2f}", fontsize=MIN_FONT_PT
        )
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


ACCURACY_CURVES = (
    ("train_accuracy", "training set"),
    ("val_accuracy", "validation set"),
    ("test_accuracy", "test set"),
)


def plot_history(history: dict, suptitle: str = ""):
    """Training loss per step (top panel) and accuracy per epoch (bottom panel).

    `history` holds `"loss"` (one value per step), `"train_accuracy"` and
    `"val_accuracy"` or `"test_accuracy"` or both (fractions, one per epoch).
    """
    loss = np.asarray(history["loss"], dtype=float)
    epochs = len(history["train_accuracy"])
    steps = np.arange(1, len(loss) + 1) * epochs / len(loss)
    window = max(1, len(loss) // (10 * epochs))
    smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(WIDTH, 6.4))
    top.plot(steps, loss, color="tab:blue", alpha=0.3, lw=0.6, label="one minibatch")
    top.plot(steps[window - 1 :], smooth, color="tab:blue", label=f"mean of {window} steps")
    top.set_yscale("log")
    top.set(xlabel="epoch", ylabel="cross-entropy loss", title="training loss")
    top.legend()
    marks = np.arange(1, epochs + 1)
    for key, name in ACCURACY_CURVES:
        if key not in history:
            continue
        bottom.plot(marks, 100 * np.asarray(history[key]), marker="o", label=name)
    bottom.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy after each epoch")
    bottom.set_xticks(marks)
    bottom.grid(alpha=0.3)
    bottom.legend()
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_confusion(matrix, title: str = "confusion matrix"):
    """A 10×10 confusion matrix: row = true digit, column = guess, each count written in.

    The colour scale is logarithmic so that the few mistakes off the diagonal show next
    to the thousand-odd correct answers on it; empty cells stay white.
    """
    counts = torch.as_tensor(matrix).cpu().numpy()
    fig, ax = plt.subplots(figsize=(WIDTH, 4.6))
    shown = np.ma.masked_equal(counts, 0)
    image = ax.imshow(shown, cmap="Blues", norm=LogNorm(vmin=0.5, vmax=max(counts.max(), 2)))
    for (row, col), n in np.ndenumerate(counts):
        if n:
            color = "white" if n > counts.max() ** 0.5 * 3 else "black"
            ax.text(col, row, str(n), ha="center", va="center", fontsize=10, color=color)
    ax.set_xticks(CLASSES)
    ax.set_yticks(CLASSES)
    ax.set(xlabel="guess", ylabel="true digit", title=title)
    fig.colorbar(image, ax=ax, label="images (log scale)")
    fig.tight_layout()
    return fig


def _running_mean(values, window: int) -> np.ndarray:
    """The mean of each `window` consecutive values (`len(values) - window + 1` of them)."""
    values = np.asarray(values, dtype=float)
    return np.convolve(values, np.ones(window) / window, mode="valid")


def plot_loss_curves(curves: dict, window: int = 20, title: str = "training loss"):
    """Several runs' loss per step on one log-scale plot, each as a running mean.

    `curves` maps a label to one loss per step. Every second curve is dashed, so that
    two runs that coincide both stay visible.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    fig, ax = plt.subplots(figsize=(WIDTH, 3.6))
    for i, (label, losses) in enumerate(curves.items()):
        if len(losses) < window:
            raise ValueError(f"{label!r} has {len(losses)} steps, fewer than window={window}")
        smooth = _running_mean(losses, window)
        steps = np.arange(window, len(losses) + 1)
        ax.plot(steps, smooth, label=label, linestyle="--" if i % 2 else "-", lw=1.8)
    ax.set_yscale("log")
    ax.set(xlabel="step", ylabel=f"loss (mean of {window} steps)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_activation_scales(scales: dict, title: str = "activations through a deep network"):
    """The standard deviation of each layer's output, one line per initialisation.

    `scales` maps a label to one standard deviation per layer (layer 1 first); the
    y axis is logarithmic, so a constant factor per layer is a straight line.
    """
    fig, ax = plt.subplots(figsize=(WIDTH, 3.8))
    for label, stds in scales.items():
        layers = np.arange(1, len(stds) + 1)
        ax.plot(layers, np.asarray(stds, dtype=float), marker="o", label=label)
    ax.set_yscale("log")
    ax.set(xlabel="layer", ylabel="standard deviation of its output", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=MIN_FONT_PT)
    fig.tight_layout()
    return fig
