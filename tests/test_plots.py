"""nnrun.plots: each figure drawn to a real PNG, and drawn as its name promises (read back from the figure)."""

import math

import matplotlib.image
import numpy as np
import pytest
from matplotlib.figure import Figure

from nnrun import plots

pytestmark = pytest.mark.plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def read_png(path):
    """Asserts `path` is a real PNG of a plausible size; returns its pixels."""
    assert path.read_bytes()[:8] == PNG_MAGIC
    pixels = matplotlib.image.imread(path)
    height, width = pixels.shape[:2]
    assert 300 <= width <= 3000 and 300 <= height <= 3000, (width, height)
    # Not a blank canvas: something was drawn.
    assert pixels[..., :3].std() > 0.05
    return pixels


def only_file(folder):
    """The folder holds exactly one file: no temporary left behind."""
    files = list(folder.iterdir())
    assert len(files) == 1, files
    return files[0]


@pytest.fixture
def drawn(monkeypatch):
    """What each saved figure showed, read as it is saved (nnrun clears a figure once saved): a list, one per
    figure, of its visible axes as dicts: title, tick labels, line labels and x and y values, image arrays,
    x limits."""
    figures = []
    savefig = Figure.savefig

    def record(fig, *args, **kwargs):
        figures.append(
            [
                {
                    "title": ax.get_title(),
                    "xticks": [t.get_text() for t in ax.get_xticklabels()],
                    "yticks": [t.get_text() for t in ax.get_yticklabels()],
                    "lines": {line.get_label(): np.asarray(line.get_ydata(), dtype=float) for line in ax.get_lines()},
                    "xs": {line.get_label(): np.asarray(line.get_xdata(), dtype=float) for line in ax.get_lines()},
                    "images": [np.asarray(image.get_array()) for image in ax.get_images()],
                    "xlim": ax.get_xlim(),
                }
                for ax in fig.get_axes()
                if ax.get_visible()
            ]
        )
        return savefig(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", record)
    return figures


def history(epochs, val=True):
    h = {
        "loss": [1 / (e + 1) for e in range(epochs)],
        "accuracy": [1 - 1 / (e + 2) for e in range(epochs)],
        "learning_rate": [0.001] * epochs,
    }
    if val:
        h["val_loss"] = [v + 0.1 for v in h["loss"]]
        h["val_accuracy"] = [v - 0.1 for v in h["accuracy"]]
    return h


def test_learning_curves_writes_a_png(tmp_path):
    path = tmp_path / "learning_curves.png"
    returned = plots.learning_curves(history(10), path, "demo run")
    assert returned == path
    assert only_file(tmp_path) == path
    read_png(path)


def test_learning_curves_one_subplot_per_metric(tmp_path, drawn):
    # Two metrics side by side are wider than one; learning_rate gets no plot.
    one = plots.learning_curves({"loss": [1.0, 0.5], "learning_rate": [0.1, 0.1]}, tmp_path / "one.png", "t")
    two = plots.learning_curves(history(2), tmp_path / "two.png", "t")
    assert read_png(two).shape[1] > 1.5 * read_png(one).shape[1]
    assert [ax["title"] for ax in drawn[0]] == ["loss"]
    assert [ax["title"] for ax in drawn[1]] == ["loss", "accuracy"]


def test_learning_curves_single_epoch(tmp_path, drawn):
    path = tmp_path / "lc.png"
    plots.learning_curves(history(1), path, "one epoch")
    read_png(path)
    for ax in drawn[0]:  # one point in the middle of its axis, not a squashed one
        assert ax["xlim"] == (0.5, 1.5) and [len(y) for y in ax["lines"].values()] == [1, 1]


def test_learning_curves_without_validation(tmp_path, drawn):
    path = tmp_path / "lc.png"
    plots.learning_curves(history(5, val=False), path, "no validation")
    read_png(path)
    assert [(ax["title"], list(ax["lines"])) for ax in drawn[0]] == [("loss", ["train"]), ("accuracy", ["train"])]


def test_learning_curves_with_nan_and_other_metrics(tmp_path, drawn):
    path = tmp_path / "lc.png"
    h = {"loss": [1.0, math.nan, 0.5], "mae": [0.9, 0.7, None], "val_loss": [math.nan] * 3, "val_mae": [0.8, 0.6, 0.5]}
    plots.learning_curves(h, path, "nan")
    read_png(path)
    loss, mae = drawn[0]
    assert (loss["title"], mae["title"]) == ("loss", "mae")
    # A missing value is a gap in its line, the other epochs still drawn.
    np.testing.assert_array_equal(loss["lines"]["train"], [1.0, np.nan, 0.5])
    np.testing.assert_array_equal(mae["lines"]["train"], [0.9, 0.7, np.nan])
    np.testing.assert_array_equal(mae["lines"]["validation"], [0.8, 0.6, 0.5])


def test_learning_curves_mark_the_epoch_whose_weights_were_kept(tmp_path, drawn):
    path = tmp_path / "lc.png"
    plots.learning_curves(history(6), path, "kept", kept=3)
    plots.learning_curves(history(6), tmp_path / "last.png", "the last epoch's")
    read_png(path)
    for ax in drawn[0]:  # a vertical line at epoch 3 on every metric's plot
        np.testing.assert_array_equal(ax["xs"]["weights kept: epoch 3"], [3, 3])
        assert list(ax["lines"]) == ["train", "validation", "weights kept: epoch 3"]
    assert [list(ax["lines"]) for ax in drawn[1]] == [["train", "validation"]] * 2


def test_learning_curves_rejects_history_without_metrics(tmp_path):
    with pytest.raises(ValueError, match="learning_rate"):
        plots.learning_curves({"learning_rate": [0.1]}, tmp_path / "lc.png", "t")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("n_classes", [3, 12])
def test_confusion_matrix_writes_a_png(tmp_path, n_classes):
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, n_classes, 500)
    y_pred = np.where(rng.random(500) < 0.7, y_true, rng.integers(0, n_classes, 500))
    names = [f"class name {i}" for i in range(n_classes)]
    path = tmp_path / "confusion_matrix.png"
    returned = plots.confusion_matrix(y_true, y_pred, names, path, "confusion")
    assert returned == path
    assert only_file(tmp_path) == path
    read_png(path)


def test_confusion_matrix_grows_with_classes(tmp_path):
    small = plots.confusion_matrix([0, 1, 2], [0, 1, 1], list("abc"), tmp_path / "3.png", "t")
    names = [str(i) for i in range(20)]
    large = plots.confusion_matrix(list(range(20)), list(range(20)), names, tmp_path / "20.png", "t")
    assert read_png(large).shape[0] > 1.5 * read_png(small).shape[0]


def test_confusion_matrix_with_a_class_never_seen(tmp_path, drawn):
    # Every class keeps its row and column even when absent from the data (c) or never predicted (a is, d never).
    path = tmp_path / "cm.png"
    plots.confusion_matrix([0, 0, 1, 3], [0, 1, 1, 1], ["a", "b", "c", "d"], path, "t")
    read_png(path)
    matrix, _colorbar = drawn[0]
    assert matrix["xticks"] == matrix["yticks"] == ["a", "b", "c", "d"]
    (counts,) = matrix["images"]
    np.testing.assert_array_equal(counts, [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 1, 0, 0]])


def test_saving_overwrites_and_leaves_no_open_figures(tmp_path):
    import matplotlib.pyplot as plt

    path = tmp_path / "lc.png"
    plots.learning_curves(history(3), path, "first")
    first = path.read_bytes()
    plots.learning_curves(history(3), path, "second")
    assert path.read_bytes() != first, "the second figure replaced the first"
    plots.confusion_matrix([0, 1], [1, 1], ["a", "b"], tmp_path / "cm.png", "t")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cm.png", "lc.png"]
    assert plt.get_fignums() == []


def test_the_confusion_matrix_is_counted_in_chunks_as_scikit_learn_counts_it_whole():
    from sklearn.metrics import confusion_matrix

    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 4, 1000), rng.integers(0, 4, 1000)
    y_pred[:10] = 3  # a class predicted more than it is
    expected = confusion_matrix(y_true, y_pred, labels=range(5))  # class 4 never seen: a row and column of 0
    assert (plots._counts(y_true, y_pred, 5, chunk=64) == expected).all()
    assert plots._counts(y_true[:0], y_pred[:0], 2).tolist() == [[0, 0], [0, 0]]
