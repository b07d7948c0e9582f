"""What `nnrun check` says about the data, read without the heavy loaders where it can be exact.

`load` reads scikit-learn's bundled datasets through scikit-learn (0.8 s to import, with scipy and
pandas) and Keras's through Keras (seconds, with TensorFlow); `check` needs only the samples' shape, the
classes and how many samples each split gets. Those are read here from the same files with NumPy, and
the split counts come from `prepare.held_out`, which `load` splits by. Anything this module does not
read exactly as `load` would (another source, a file that is not the one Keras checks for, a
regression's targets) raises `Unsure`, and `check` loads the data as `train` does.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nnrun.data import arrays, keras_datasets
from nnrun.data.prepare import _labels, flat_labels, held_out
from nnrun.data.types import Dataset, Raw
from nnrun.errors import Unsure

if TYPE_CHECKING:
    from nnrun.config.schema import Data

_MNIST_CLASSES: list[str] = keras_datasets.DATASETS["mnist"][2] or []


def summary(data: Data, validation_split: float) -> Dataset:
    """The splits' sizes, the samples' shape and the classes, as `load` would give them.

    Args:
        data: the config's `data` section.
        validation_split: `training.validation_split`.

    Returns:
        A `Dataset` whose `y_*` have the splits' lengths (their values are not read: zeros), with
        `class_names`, `preprocessing["input_shape"]` and `notes` as `load` gives them; no features.

    Raises:
        Unsure: where only `load` can tell.
        DataError: a split that leaves no samples, as `load` says it.
    """
    if data.task == "regression" or data.augmentation:
        raise Unsure("regression targets or augmentation")
    if data.source == "sklearn":
        raw = _bundled(data.name)
    elif data.source == "keras" and data.name == "mnist":
        raw = _mnist()
    else:
        raise Unsure(f"data.source {data.source}")
    return _counted(raw, data, validation_split)


def _counted(raw: Raw, data: Data, validation_split: float) -> Dataset:
    """`prepare.prepare`, counting the splits instead of making them."""
    x, y = raw.x, np.asarray(raw.y)
    if not isinstance(x, np.ndarray) or len(x) != len(y) or len(x) < 3:
        raise Unsure("features and targets that load would refuse")
    all_y = y if raw.y_test is None else np.concatenate([flat_labels(y), flat_labels(raw.y_test)])
    class_names, _ = _labels(all_y, raw.class_names, data.task, raw.origin)
    if class_names is None:
        raise Unsure("regression")
    if raw.x_test is None:
        n_test = held_out(len(x), data.test_split, "data.test_split")
        n_train = len(x) - n_test
    else:
        n_train, n_test = len(x), len(np.asarray(raw.x_test))
    n_val = held_out(n_train, validation_split, "training.validation_split") if validation_split else 0
    preprocessing = {"input_shape": list(x.shape[1:]), "class_names": class_names}

    def targets(n):
        return np.zeros(n, dtype="int64")

    return Dataset(
        x_train=None,
        y_train=targets(n_train - n_val),
        x_val=None,
        y_val=targets(n_val) if validation_split else None,
        x_test=None,
        y_test=targets(n_test),
        class_names=class_names,
        preprocessing=preprocessing,
        notes=list(raw.notes),  # arrays.fit adds none
    )


def _bundled(name: str) -> Raw:
    """`bundled.read`'s `Raw`, from scikit-learn's own data files, read as its loaders read them."""
    folder = sklearn_data_folder()
    if name == "digits":
        # load_digits: the last column is the target (int), the 64 before it the pixels.
        with gzip.open(folder / "digits.csv.gz", "rt", encoding="utf-8") as f:
            table = np.loadtxt(f, delimiter=",")
        x, y, names = table[:, :-1], table[:, -1].astype(int), _MNIST_CLASSES
    else:
        # load_csv_data: a first row of n_samples, n_features, class names; then features and target.
        file = {"iris": "iris.csv", "wine": "wine_data.csv", "breast_cancer": "breast_cancer.csv"}[name]
        with open(folder / file, encoding="utf-8", newline="") as f:
            rows = csv.reader(f)
            head = next(rows)
            n_samples, n_features, names = int(head[0]), int(head[1]), [str(n) for n in head[2:]]
            body = list(rows)
        if len(body) != n_samples or any(len(row) != n_features + 1 for row in body):
            raise Unsure(f"{file}: not the table scikit-learn ships")
        x = np.asarray([row[:-1] for row in body], dtype="float64")
        y = np.asarray([int(row[-1]) for row in body])
    x = arrays.check(np.asarray(x, dtype="float32"), "x", "data")
    return Raw(x=x, y=y, class_names=list(names))


def sklearn_data_folder() -> Path:
    """Where scikit-learn keeps its bundled datasets' files, found without importing it.

    Why scikit-learn's files and not its loaders: importing `sklearn.datasets` costs 0.8 s (scipy,
    pandas), most of `nnrun check`'s time on the quickstart. The files are the library's own, read
    as its `load_csv_data` and `load_digits` read them; a test compares the two on every dataset.

    Returns:
        `sklearn/datasets/data`.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise Unsure("scikit-learn is not installed")
    folder = Path(spec.origin).parent / "datasets" / "data"
    if not folder.is_dir():
        raise Unsure("scikit-learn without its data files")
    return folder


def _mnist() -> Raw:
    """`keras_datasets.read`'s `Raw` for mnist: the shapes from the arrays' headers, the labels read."""
    path = keras_datasets.mnist_file()
    if path is None:
        raise Unsure("no mnist.npz that Keras would read")
    try:
        with np.load(path, allow_pickle=False) as f:
            shapes = {key: _header(f.zip, f"{key}.npy") for key in ("x_train", "x_test")}
            y, y_test = f["y_train"], f["y_test"]
    except (OSError, ValueError, KeyError) as e:
        raise Unsure(f"mnist.npz: {e}") from None
    # Arrays of the files' shapes that hold no pixels: only their shapes and lengths are read.
    x, x_test = (np.broadcast_to(np.zeros((), dtype), shape) for shape, dtype in shapes.values())
    return Raw(x=x, y=y, x_test=x_test, y_test=y_test, class_names=_MNIST_CLASSES, origin="data.name 'mnist'")


def _header(archive, member):
    """An .npy member's shape and dtype, from its header alone."""
    with archive.open(member) as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f)
    if dtype.kind not in "iu" or len(shape) < 2:  # integer pixels are finite: load's check passes
        raise Unsure(f"{member}: not integer images")
    return shape, dtype
