import math

import matplotlib.image
import numpy as np
import pytest

from nnrun import plots

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


def test_learning_curves_one_subplot_per_metric(tmp_path):
    # Two metrics side by side are wider than one; learning_rate gets no plot.
    one = plots.learning_curves({"loss": [1.0, 0.5], "learning_rate": [0.1, 0.1]}, tmp_path / "one.png", "t")
    two = plots.learning_curves(history(2), tmp_path / "two.png", "t")
    assert read_png(two).shape[1] > 1.5 * read_png(one).shape[1]


def test_learning_curves_single_epoch(tmp_path):
    path = tmp_path / "lc.png"
    plots.learning_curves(history(1), path, "one epoch")
    read_png(path)


def test_learning_curves_without_validation(tmp_path):
    path = tmp_path / "lc.png"
    plots.learning_curves(history(5, val=False), path, "no validation")
    read_png(path)


def test_learning_curves_with_nan_and_other_metrics(tmp_path):
    path = tmp_path / "lc.png"
    h = {"loss": [1.0, math.nan, 0.5], "mae": [0.9, 0.7, None], "val_loss": [math.nan] * 3, "val_mae": [0.8, 0.6, 0.5]}
    plots.learning_curves(h, path, "nan")
    read_png(path)


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


def test_confusion_matrix_with_a_class_never_seen(tmp_path):
    # Every class keeps its row and column even when absent from the data.
    path = tmp_path / "cm.png"
    plots.confusion_matrix([0, 0, 1], [0, 1, 1], ["a", "b", "c", "d"], path, "t")
    read_png(path)


def test_saving_overwrites_and_leaves_no_open_figures(tmp_path):
    import matplotlib.pyplot as plt

    path = tmp_path / "lc.png"
    plots.learning_curves(history(3), path, "first")
    plots.learning_curves(history(3), path, "second")
    plots.confusion_matrix([0, 1], [1, 1], ["a", "b"], tmp_path / "cm.png", "t")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cm.png", "lc.png"]
    assert plt.get_fignums() == []
