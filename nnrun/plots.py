"""Matplotlib figures from a training history and from predictions.

Figures are built as bare `matplotlib.figure.Figure` objects, never through
pyplot's global figure list, so no display is needed (Agg) and nothing is left
open after a figure is saved.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from mpl_toolkits.axes_grid1 import make_axes_locatable

from nnrun import atomic

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

# scikit-learn's ConfusionMatrixDisplay imports pyplot; Agg keeps it headless
# whatever MPLBACKEND says.
matplotlib.use("Agg")

# Keys Keras adds to the history that are not metrics to plot against train/val.
_NOT_METRICS = {"learning_rate", "lr"}


def learning_curves(
    history: Mapping[str, Sequence[float | None]],
    path: str | os.PathLike[str],
    title: str,
    fine_tune_after: int | None = None,
    kept: int | None = None,
) -> Path:
    """Plots train and validation curves, one subplot per metric, to a PNG.

    Args:
        history: a `History.history`-style dict: metric name -> one value per
            epoch, with `val_<name>` for validation values (may be absent).
        path: where to save the PNG.
        title: the figure's title.
        fine_tune_after: the epochs done when fine-tuning began, marked by a
            vertical line; None without fine-tuning.
        kept: the epoch (from 1) whose weights the model was given back at the end
            (EarlyStopping's `restore_best_weights`), marked by a vertical line; None
            when the model is the last epoch's.

    Returns:
        The saved file's `Path`.
    """
    names = []
    for key in history:
        name = key.removeprefix("val_")
        if name not in names and name not in _NOT_METRICS and "." not in name:  # per class: the macro stands for them
            names.append(name)
    if not names:
        raise ValueError(f"learning_curves: the history has no metrics to plot; received keys {list(history)}")
    names.sort(key=lambda name: name != "loss")  # stable: loss first, the rest in order

    ncols = min(len(names), 3)
    nrows = math.ceil(len(names) / ncols)
    fig = Figure(figsize=(5 * ncols, 3.6 * nrows + 0.4), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, name in zip(axes, names, strict=False):
        epochs = 1
        for key, label, style in ((name, "train", "o-"), (f"val_{name}", "validation", "s--")):
            if key in history:
                # None (a missing value) becomes NaN: a gap in the line.
                values = np.asarray(history[key], dtype=float)
                ax.plot(np.arange(1, len(values) + 1), values, style, label=label, markersize=4)
                epochs = max(epochs, len(values))
        if fine_tune_after is not None:
            ax.axvline(fine_tune_after + 0.5, color="grey", linestyle=":", label="fine-tuning begins")
        if kept is not None:
            ax.axvline(kept, color="tab:green", linestyle="-.", label=f"weights kept: epoch {kept}")
        # Fixed limits so a single epoch is a centred point, not a squashed axis.
        ax.set_xlim(0.5, epochs + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_title(name)
        ax.grid(True, alpha=0.3)
        ax.legend()
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    fig.suptitle(title)
    return _save(fig, path)


def compare_curves(
    histories: Mapping[str, Sequence[Mapping[str, float]]], path: str | os.PathLike[str], title: str
) -> Path:
    """Plots several runs' learning curves together: one subplot per metric,
    one colour per run, training solid and validation dashed.

    Args:
        histories: run name -> history.csv rows (dicts with `epoch` and metrics).
        path: where to save the PNG.
        title: the figure's title.

    Returns:
        The saved file's `Path`.
    """
    names = []
    for rows in histories.values():
        for key in rows[0] if rows else {}:
            name = key.removeprefix("val_")
            if name not in names and name not in _NOT_METRICS and name != "epoch":
                names.append(name)
    names.sort(key=lambda name: name != "loss")
    if not names:
        raise ValueError(f"compare_curves: no metrics to plot in {list(histories)}")
    ncols = min(len(names), 2)
    nrows = math.ceil(len(names) / ncols)
    fig = Figure(figsize=(6.5 * ncols, 4 * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    colors = matplotlib.color_sequences["tab10"]  # the tab10 colormap's colours
    markers = "os^Dv<>p"  # runs whose curves coincide stay told apart
    for ax, name in zip(axes, names, strict=False):
        for i, (run, rows) in enumerate(histories.items()):
            epochs = [r["epoch"] for r in rows]
            for key, style, label in ((name, "-", run), (f"val_{name}", "--", f"{run} (validation)")):
                values = [r.get(key, math.nan) for r in rows]
                if any(np.isfinite(values)):
                    ax.plot(
                        epochs,
                        values,
                        style,
                        color=colors[i % len(colors)],
                        label=label,
                        marker=markers[i % len(markers)],
                        markersize=9 - 3 * (i % 3),
                        fillstyle="none",
                        markevery=max(1, len(epochs) // 12),
                    )
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_title(f"{name} (solid: training, dashed: validation)")
        ax.grid(True, alpha=0.3)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4), fontsize="small")
    fig.suptitle(title)
    return _save(fig, path)


def confusion_matrix(
    y_true: ArrayLike, y_pred: ArrayLike, class_names: Sequence[str], path: str | os.PathLike[str], title: str
) -> Path:
    """Plots the confusion matrix of integer class predictions to a PNG.

    Args:
        y_true: true class indices.
        y_pred: predicted class indices.
        class_names: one name per class index.
        path: where to save the PNG.
        title: the figure's title.

    Returns:
        The saved file's `Path`.
    """
    from sklearn.metrics import ConfusionMatrixDisplay

    n = len(class_names)
    longest = max((len(str(name)) for name in class_names), default=0)
    # Room per class for the counts, plus the tick labels and the colorbar.
    size = max(4.5, 0.55 * n + 0.06 * longest + 2.5)
    fig = Figure(figsize=(size + 0.8, size))
    ax = fig.subplots()
    display = ConfusionMatrixDisplay(_counts(y_true, y_pred, n), display_labels=list(class_names)).plot(
        ax=ax, cmap="Blues", colorbar=False, text_kw={"fontsize": 10 if n <= 10 else 8}
    )
    # A colorbar axis cut from the image's own axis matches the matrix's height;
    # sklearn's own colorbar runs taller than a square image in a wide figure.
    cax = make_axes_locatable(ax).append_axes("right", size="4%", pad=0.15)
    fig.colorbar(display.im_, cax=cax)
    # Horizontal names start to collide at about this many characters in all.
    if n * longest > 50:
        for label in ax.get_xticklabels():
            label.set(rotation=45, ha="right", rotation_mode="anchor")
    ax.set_xlabel("Predicted label")
    ax.set_ylabel("True label")
    ax.set_title(title)
    return _save(fig, path)


def _counts(y_true: ArrayLike, y_pred: ArrayLike, n: int, chunk: int = 1 << 20) -> np.ndarray:
    """The confusion matrix's counts (true class by row), a chunk of samples at a time.

    A streamed table's test split can hold millions of rows: counting in chunks keeps the memory it
    takes to a chunk's, where scikit-learn's `confusion_matrix` copies and sorts every label.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)  # no copy of arrays
    counts = np.zeros(n * n, dtype="int64")
    for start in range(0, len(y_true), chunk):
        true = np.asarray(y_true[start : start + chunk], dtype="int64")
        predicted = np.asarray(y_pred[start : start + chunk], dtype="int64")
        counts += np.bincount(true * n + predicted, minlength=n * n)
    return counts.reshape(n, n)


def regression(y_true: ArrayLike, y_pred: ArrayLike, path: str | os.PathLike[str], title: str) -> Path:
    """Plots a regression's predictions against the truth, and the residuals, to a PNG.

    Args:
        y_true: true values (flattened when there are several outputs).
        y_pred: predicted values, in the same order.
        path: where to save the PNG.
        title: the figure's title.

    Returns:
        The saved file's `Path`.
    """
    y_true, y_pred = np.ravel(y_true).astype(float), np.ravel(y_pred).astype(float)
    fig = Figure(figsize=(10, 4.4), layout="constrained")
    left, right = fig.subplots(1, 2)
    low, high = min(y_true.min(), y_pred.min()), max(y_true.max(), y_pred.max())
    style = {"s": 12, "alpha": 0.6, "edgecolors": "none"}
    left.scatter(y_true, y_pred, **style)
    left.plot([low, high], [low, high], "k--", linewidth=1, label="predicted = actual")
    left.set(xlabel="actual", ylabel="predicted", title="predicted vs actual")
    left.legend(loc="upper left")
    right.scatter(y_pred, y_true - y_pred, **style)
    right.axhline(0, color="k", linestyle="--", linewidth=1)
    right.set(xlabel="predicted", ylabel="actual - predicted", title="residuals")
    fig.suptitle(title)
    return _save(fig, path)


def samples(
    images: np.ndarray,
    true_names: Sequence[str],
    predicted_names: Sequence[str],
    path: str | os.PathLike[str],
    title: str,
) -> Path:
    """Draws a grid of images with their true and predicted labels, wrong ones in red.

    Args:
        images: `(n, height, width)` or `(n, height, width, channels)` arrays,
            as the model takes them (any scale: each image is stretched to 0..1).
        true_names: the expected class name of each image.
        predicted_names: the predicted class name of each image.
        path: where to save the PNG.
        title: the figure's title.

    Returns:
        The saved file's `Path`.
    """
    n = len(images)
    columns = min(n, 6)
    rows = math.ceil(n / columns)
    fig = Figure(figsize=(2.1 * columns, 2.4 * rows + 0.4))
    for i, (image, true, predicted) in enumerate(zip(images, true_names, predicted_names, strict=True)):
        ax = fig.add_subplot(rows, columns, i + 1)
        image = np.asarray(image, dtype="float64")
        low, high = np.nanmin(image), np.nanmax(image)
        image = (image - low) / (high - low) if high > low else np.zeros_like(image)
        if image.ndim == 3 and image.shape[-1] == 1:
            image = image[..., 0]
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
        ax.set_xticks([])
        ax.set_yticks([])
        right = true == predicted
        ax.set_title(f"{predicted}\n(true: {true})", fontsize=9, color="black" if right else "red")
    wrong = sum(t != p for t, p in zip(true_names, predicted_names, strict=True))
    fig.suptitle(f"{title}: predicted (true); {wrong} of {n} wrong in red")
    return _save(fig, path)


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    try:
        with atomic.atomic(path) as tmp, warnings.catch_warnings():
            # A run or class name in a script the font lacks (名前) is drawn as boxes, not worth a warning.
            warnings.filterwarnings("ignore", message="Glyph .* missing from font")
            fig.savefig(tmp, dpi=100, bbox_inches="tight")
    finally:
        fig.clear()  # frees the artists now rather than at garbage collection
    return Path(path)


def sweep(
    points: Sequence[tuple[int, float, str]], path: str | os.PathLike[str], title: str, metric: str, direction: str
) -> Path:
    """Plots a sweep's metric over its trials, with the best so far, to a PNG.

    Args:
        points: `(trial number, value, state)`; state complete or pruned (at its last reported value).
        path: where to save the PNG.
        title: the figure's title.
        metric: the metric's name, for the axis.
        direction: minimize or maximize: which way "best so far" runs.

    Returns:
        The saved file's `Path`.
    """
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    for state, color, marker, label in (
        ("complete", "tab:blue", None, "trial"),  # marker None: scatter's default
        ("pruned", "tab:grey", "x", "pruned (last value)"),
    ):
        shown = [(n + 1, v) for n, v, s in points if s == state]
        if shown:
            ax.scatter(*zip(*shown, strict=True), zorder=3, color=color, marker=marker, label=label)
    complete = sorted((n + 1, v) for n, v, s in points if s == "complete")
    if complete:
        pick = min if direction == "minimize" else max
        best = [pick(v for _, v in complete[: i + 1]) for i in range(len(complete))]
        last = max(n + 1 for n, _, _ in points)  # on to the last trial, pruned ones included
        ax.step(
            [n for n, _ in complete] + [last], best + best[-1:], where="post", color="tab:orange", label="best so far"
        )
    values = [v for _, v, _ in points]
    if values and min(values) > 0 and max(values) / min(values) > 30:  # one bad trial would flatten the rest
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.set_xlabel("trial")
    ax.set_ylabel(f"{metric} ({'lower' if direction == 'minimize' else 'higher'} is better)")
    ax.grid(True, alpha=0.3)
    if points:
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no trial has a result yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title)
    return _save(fig, path)
