"""From raw arrays to splits: labels, seeded stratified splits, scaling.

Whatever is learned here from the training split (class names, scaling
statistics) goes into `Dataset.preprocessing`, plain JSON that `transform`
re-applies to raw inputs later.
"""

import hashlib
from dataclasses import dataclass, field

import numpy as np

from nnrun.errors import DataError


@dataclass
class Raw:
    """What a source reads: features, targets and, when known, class names."""

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    class_names: list[str] | None = None
    origin: str = "data"  # where the arrays came from, for messages
    names: tuple = ("x", "y")  # what the source calls its features and targets


@dataclass
class Dataset:
    """Splits ready for Keras, and what it takes to prepare raw inputs alike."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str] | None  # None for regression
    preprocessing: dict = field(default_factory=dict)
    fingerprint: str = ""

    @property
    def is_classification(self):
        return self.class_names is not None


def prepare(raw, data, validation_split, seed):
    """Encodes labels, splits and scales raw arrays.

    Args:
        raw: the `Raw` arrays a source read.
        data: the config's `data` section (`test_split`, `scale`).
        validation_split: fraction of the training split kept for validation.
        seed: seed of the splits.

    Returns:
        A `Dataset`.
    """
    fingerprint = _fingerprint(raw)
    x, y = _features(raw.x, raw.names[0], raw.origin), np.asarray(raw.y)
    if len(x) != len(y):
        raise DataError(f"{raw.origin}: {len(x)} samples but {len(y)} targets")
    if len(x) < 3:
        raise DataError(f"{raw.origin}: {len(x)} samples is too few to split into train, validation and test")
    x_test, y_test = raw.x_test, raw.y_test
    all_y = y if y_test is None else np.concatenate([_flat_labels(y), _flat_labels(y_test)])
    class_names, encode = _labels(all_y, raw.class_names)
    y = encode(y)
    if x_test is None:
        x, x_test, y, y_test = _split(x, y, data.test_split, seed, class_names, "data.test_split")
    else:
        x_test, y_test = _features(x_test, "x_test", raw.origin), encode(y_test)
        if x_test.shape[1:] != x.shape[1:]:
            raise DataError(f"{raw.origin}: x_test has shape {x_test.shape[1:]} per sample, x_train {x.shape[1:]}")
    x_val = y_val = None
    if validation_split:
        x, x_val, y, y_val = _split(x, y, validation_split, seed, class_names, "training.validation_split")
    scaling = _fit_scaling(x, data.scale)
    preprocessing = {
        "input_shape": list(x.shape[1:]),
        "task": "classification" if class_names is not None else "regression",
        "class_names": class_names,
        "scaling": scaling,
    }
    return Dataset(
        x_train=transform(x, preprocessing),
        y_train=y,
        x_val=None if x_val is None else transform(x_val, preprocessing),
        y_val=y_val,
        x_test=transform(x_test, preprocessing),
        y_test=y_test,
        class_names=class_names,
        preprocessing=preprocessing,
        fingerprint=fingerprint,
    )


def transform(x, preprocessing):
    """Applies the preprocessing learned from training data to raw features.

    Args:
        x: raw features, samples first.
        preprocessing: the run's preprocessing dict.

    Returns:
        float32 features as the model takes them.
    """
    x = np.asarray(x, dtype="float32")
    scaling = preprocessing.get("scaling")
    if not scaling:
        return x
    flat = x.reshape(len(x), -1)
    if scaling["method"] == "standard":
        flat = (flat - np.asarray(scaling["mean"], "float32")) / np.asarray(scaling["scale"], "float32")
    else:
        flat = flat * np.asarray(scaling["scale"], "float32") + np.asarray(scaling["min"], "float32")
    return flat.reshape(x.shape).astype("float32")


def _features(x, name, origin):
    x = np.asarray(x)
    if x.ndim < 2 or not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{origin}: {name} must be a numeric array of samples, got dtype {x.dtype} shape {x.shape}")
    if not np.isfinite(x).all():
        raise DataError(f"{origin}: {name} contains NaN or infinite values")
    return x


def _flat_labels(y):
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        return y[:, 0]
    if y.ndim == 2 and np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all():
        return y.argmax(axis=1)  # one-hot targets, as Keras tutorials often store them
    return y


def _labels(y, class_names):
    """Returns class names (None for regression) and a function that encodes targets."""
    y = _flat_labels(y)
    if y.ndim != 1 or (y.dtype.kind == "f" and class_names is None) or y.dtype.kind not in "biufUS":
        return None, lambda t: np.asarray(t, dtype="float32")
    classes = np.unique(y)
    if class_names is not None and y.dtype.kind in "biu" and classes.min() >= 0 and classes.max() < len(class_names):
        classes = np.arange(len(class_names))
    else:
        class_names = [str(c) for c in classes]
    index = {c: i for i, c in enumerate(classes.tolist())}
    return class_names, lambda t: np.array([index[c] for c in _flat_labels(t).tolist()], dtype="int64")


def _split(x, y, fraction, seed, class_names, place):
    from sklearn.model_selection import train_test_split

    n_held = int(round(len(x) * fraction))
    if n_held < 1 or n_held >= len(x):
        raise DataError(f"{place}: {fraction} of {len(x)} samples leaves an empty split")
    stratify = None
    if class_names is not None:
        counts = np.bincount(y, minlength=len(class_names))
        n_classes = np.count_nonzero(counts)
        # Stratifying needs two of each class and room for one of each on both sides.
        if counts[counts > 0].min() >= 2 and n_classes <= n_held <= len(x) - n_classes:
            stratify = y
    return train_test_split(x, y, test_size=n_held, random_state=seed, stratify=stratify)


def _fit_scaling(x, method):
    if method == "none":
        return None
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    flat = x.reshape(len(x), -1)
    if method == "standard":
        scaler = StandardScaler().fit(flat)
        return {"method": "standard", "mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist()}
    scaler = MinMaxScaler().fit(flat)
    return {"method": "minmax", "min": scaler.min_.tolist(), "scale": scaler.scale_.tolist()}


def _fingerprint(raw):
    digest = hashlib.sha256()
    for array in (raw.x, raw.y, raw.x_test, raw.y_test):
        if array is not None:
            array = np.ascontiguousarray(array)
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(array.tobytes())
    digest.update(repr(raw.class_names).encode())
    return f"sha256:{digest.hexdigest()}"
