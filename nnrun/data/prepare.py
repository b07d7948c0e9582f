"""From raw data to splits: labels, seeded stratified splits, feature preprocessing.

The features are handled by one module per kind (arrays.py, csv_table.py,
image_folder.py), each with `KIND`, `check`, `fit`, `apply` and `feed`.
Whatever is learned from the training split goes into `Dataset.preprocessing`,
plain JSON that `transform` re-applies to raw inputs later.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from nnrun.data.registry import FEATURE_KINDS
from nnrun.data.types import Dataset, Raw
from nnrun.errors import DataError

if TYPE_CHECKING:
    from nnrun.config.schema import Data


def prepare(
    raw: Raw,
    data: Data,
    validation_split: float,
    seed: int,
    batch_size: int = 32,
    shuffle: bool = True,
    fitted: dict[str, Any] | None = None,
) -> Dataset:
    """Encodes labels, splits, and fits the feature preprocessing on the training split.

    Args:
        raw: the `Raw` a source read.
        data: the config's `data` section.
        validation_split: fraction of the training split kept for validation.
        seed: seed of the splits.
        batch_size: batch size of streamed sources (image folders).
        shuffle: whether streamed sources reshuffle the training split each epoch.
        fitted: preprocessing to apply as it is (a run's), instead of learning it from the training split.

    Returns:
        A `Dataset`.
    """
    kind = features_of(raw.x)
    fingerprint = raw.fingerprint or _fingerprint(raw)
    x, y = kind.check(raw.x, raw.names[0], raw.origin), np.asarray(raw.y)
    if len(x) != len(y):
        raise DataError(f"{raw.origin}: {len(x)} samples but {len(y)} targets")
    if len(x) < 3:
        raise DataError(f"{raw.origin}: {len(x)} samples is too few to split into train, validation and test")
    x_test, y_test = raw.x_test, raw.y_test
    all_y = y if y_test is None else np.concatenate([flat_labels(y), flat_labels(y_test)])
    class_names, encode = _labels(all_y, raw.class_names, data.task, raw.origin)
    y = encode(y)
    if x_test is None:
        x, x_test, y, y_test = _split(x, y, data.test_split, seed, class_names, "data.test_split")
    else:
        x_test, y_test = kind.check(x_test, "x_test", raw.origin), encode(y_test)
        if np.ndim(x) > 1 and x_test.shape[1:] != x.shape[1:]:
            raise DataError(f"{raw.origin}: x_test has shape {x_test.shape[1:]} per sample, x_train {x.shape[1:]}")
    x_val = y_val = None
    if validation_split:
        x, x_val, y, y_val = _split(x, y, validation_split, seed, class_names, "training.validation_split")
    splits = {
        name: _split_id(*pair, raw.root)
        for name, pair in (("train", (x, y)), ("validation", (x_val, y_val)), ("test", (x_test, y_test)))
        if pair[0] is not None
    }
    preprocessing = fitted or {
        **kind.fit(x, data),
        "task": "classification" if class_names is not None else "regression",
        "class_names": class_names,
    }

    def feed(features, targets, training):
        return kind.feed(features, targets, preprocessing, batch_size, training, seed)

    return Dataset(
        x_train=feed(x, y, shuffle),
        y_train=y,
        x_val=None if x_val is None else feed(x_val, y_val, False),
        y_val=y_val,
        x_test=feed(x_test, y_test, False),
        y_test=y_test,
        class_names=class_names,
        preprocessing=preprocessing,
        fingerprint=fingerprint,
        notes=[*raw.notes, *preprocessing.get("notes", [])],
        splits=splits,
        test_split_before=lambda: _split_ids_before(x_test, y_test, raw.root) if raw.root else [],
    )


def features_of(x: object) -> ModuleType:
    """Returns the module that handles this kind of raw features: arrays, a table or image files."""
    if type(x).__module__.startswith("pandas"):
        return FEATURE_KINDS["table"]
    if isinstance(x, np.ndarray) and x.ndim == 1 and x.dtype.kind in "US":
        return FEATURE_KINDS["images"]
    return FEATURE_KINDS["array"]


def transform(x: object, preprocessing: dict[str, Any]) -> np.ndarray:
    """Applies a run's preprocessing to raw inputs of the kind it was trained on.

    Args:
        x: raw features (an array, a table, or image file paths).
        preprocessing: the run's preprocessing dict.

    Returns:
        float32 features as the model takes them.
    """
    return FEATURE_KINDS[preprocessing.get("kind", "array")].apply(x, preprocessing)


def encode_targets(
    y: np.ndarray, names: Sequence[str] | None, class_names: Sequence[str] | None, origin: str
) -> np.ndarray:
    """Encodes raw targets with a run's classes (by name), for scoring other data.

    Args:
        y: raw targets.
        names: the source's class names when its targets are indices into them.
        class_names: the run's class names; None for regression.
        origin: where the data came from, for messages.

    Returns:
        int64 class indices, or float32 values for regression.
    """
    y = flat_labels(y)
    if class_names is None:
        return np.asarray(y, dtype="float32")
    if names is not None and y.dtype.kind in "iu":
        y = np.asarray(names)[y]
    numeric_names = all(name.lstrip("-").isdigit() for name in class_names)
    if y.dtype.kind in "iu" and not numeric_names and y.size and 0 <= y.min() and y.max() < len(class_names):
        return y.astype("int64")  # indices into named classes, as Keras datasets store them
    index = {name: i for i, name in enumerate(class_names)}
    encoded = []
    for value in y.tolist():
        key = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
        if key not in index:
            raise DataError(
                f"{origin}: target {value!r} is not one of the run's classes ({', '.join(class_names[:10])})"
            )
        encoded.append(index[key])
    return np.asarray(encoded, dtype="int64")


def flat_labels(y: object) -> np.ndarray:
    """Targets as one label per sample: a column `(n, 1)` flattened, one-hot rows as class indices.

    Args:
        y: targets as a source holds them.

    Returns:
        The array, flat where it held one label per sample.
    """
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        return y[:, 0]
    if y.ndim == 2 and y.dtype.kind in "biuf" and np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all():
        return y.argmax(axis=1)  # one-hot targets, as Keras tutorials often store them
    return y


def _labels(y, class_names, task, origin):
    """Returns class names (None for regression) and a function that encodes targets."""
    y = flat_labels(y)
    if y.dtype.kind == "O":
        y = y.astype(str)
    if task == "regression" or (task == "auto" and y.dtype.kind == "f" and class_names is None):
        if y.dtype.kind not in "biuf":
            raise DataError(f"{origin}: data.task is regression but the targets are not numbers, e.g. {y.flat[0]!r}")
        return None, lambda t: np.asarray(t, dtype="float32")
    if y.ndim != 1 or y.dtype.kind not in "biufUS":
        raise DataError(f"{origin}: targets of shape {y.shape} cannot be classes; set data.task: regression")
    classes = np.unique(y)
    if class_names is not None and y.dtype.kind in "biu" and classes.min() >= 0 and classes.max() < len(class_names):
        classes = np.arange(len(class_names))
    else:
        class_names = [str(c) for c in classes]
    index = {c: i for i, c in enumerate(classes.tolist())}
    cast = str if y.dtype.kind in "US" else (lambda c: c)

    def encode(t):
        t = flat_labels(t)
        return np.array([index[cast(c)] for c in (t.astype(str) if t.dtype.kind == "O" else t).tolist()], dtype="int64")

    return class_names, encode


def held_out(n: int, fraction: float, place: str) -> int:
    """How many of `n` samples a split of `fraction` holds out (test or validation): the one count that
    `load` splits by and that `nnrun check` reports without splitting.

    Args:
        n: the samples split.
        fraction: `data.test_split` or `training.validation_split`.
        place: that key, for the message.

    Returns:
        The number held out; the rest stay.
    """
    n_held = int(round(n * fraction))
    if n_held < 1 or n_held >= n:
        raise DataError(f"{place}: {fraction} of {n} samples leaves an empty split")
    return n_held


def _split(x, y, fraction, seed, class_names, place):
    from sklearn.model_selection import train_test_split

    n_held = held_out(len(x), fraction, place)
    stratify = None
    if class_names is not None:
        counts = np.bincount(y, minlength=len(class_names))
        n_classes = np.count_nonzero(counts)
        # Stratifying needs two of each class and room for one of each on both sides.
        if counts[counts > 0].min() >= 2 and n_classes <= n_held <= len(x) - n_classes:
            stratify = y
    return train_test_split(x, y, test_size=n_held, random_state=seed, stratify=stratify)


def _split_id(x, y, root=None):
    """Which samples a split holds, in order: their count and a sha256 of them (rows of a table by
    their row number, arrays by value, image files by their path relative to the folder, which
    `"paths": "relative"` says: the same however the folder was named)."""
    digest = hashlib.sha256()
    record: dict[str, Any] = {}
    if type(x).__module__.startswith("pandas"):
        digest.update(np.asarray(x.index, dtype="int64").tobytes())
    elif x.dtype.kind in "US":
        digest.update("\n".join(x.tolist() if root is None else _relative(x.tolist(), root)).encode())
        record = {} if root is None else {"paths": "relative"}
    else:
        digest.update(np.ascontiguousarray(x).tobytes())
    digest.update(np.ascontiguousarray(y).tobytes())
    return {"samples": int(len(y)), "sha256": digest.hexdigest(), **record}


def _relative(paths, root):
    """Image paths as the source listed them under `root`, relative to it and `/`-separated."""
    prefix = "" if root in ("", ".") else os.path.join(root, "")  # Path('.') / 'cat' is 'cat'
    found = [path.removeprefix(prefix) for path in paths]
    return found if os.sep == "/" else [name.replace(os.sep, "/") for name in found]


def _split_ids_before(x, y, root):
    """The records nnrun 0.2 may have made of a split of image files (`root` absolute, as config.yaml has it).

    It named the files by `data.path` as training was given it: this absolute path; a relative one,
    which is some of its last parts; or one through '..', relative to the directory training ran in,
    which may be this one.
    """
    names = [name.replace("/", os.sep) for name in _relative(x.tolist(), root)]
    parts = Path(root).parts
    prefixes = {root, "", *(os.path.join(*parts[i:]) for i in range(1, len(parts)))}
    with contextlib.suppress(ValueError):  # on another drive (Windows)
        prefixes.add(os.path.relpath(root))
    found = []
    for prefix in sorted(prefixes):
        digest = hashlib.sha256("\n".join(os.path.join(prefix, name) for name in names).encode())
        digest.update(np.ascontiguousarray(y).tobytes())
        found.append({"samples": int(len(y)), "sha256": digest.hexdigest()})
    return found


def _fingerprint(raw):
    digest = hashlib.sha256()
    for array in (raw.x, raw.y, raw.x_test, raw.y_test):
        if array is None:
            continue
        if type(array).__module__.startswith("pandas"):
            import pandas as pd

            digest.update(repr(list(array.columns)).encode())
            digest.update(pd.util.hash_pandas_object(array, index=False).values.tobytes())
            continue
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    digest.update(repr(raw.class_names).encode())
    return f"sha256:{digest.hexdigest()}"
