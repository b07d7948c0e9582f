"""Feeding Keras and reading what it gives back, shared by train, evaluate and predict.

A split is `(x, y)`: arrays (Keras batches them), or for streamed sources a
`tf.data.Dataset` of `(x, y)` batches with `y` the targets in order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from nnrun.errors import ConfigError, did_you_mean


def is_stream(x: object) -> bool:
    """Whether `x` is a `tf.data.Dataset` of batches rather than an array."""
    return hasattr(x, "element_spec")


def inputs(x: Any, y: np.ndarray, batch_size: int) -> dict[str, Any]:
    """Keyword arguments for `fit`/`evaluate`/`predict`: arrays with their batch size, or a stream."""
    return {"x": x} if is_stream(x) else {"x": x, "y": y, "batch_size": batch_size}


_epoch = 0  # the epoch being trained (SeedEachEpoch sets it)


def set_epoch(epoch: int) -> None:
    """Says which epoch is being trained, for streams whose order follows it (`epoch`)."""
    global _epoch
    _epoch = epoch


def epoch() -> int:
    """The epoch being trained: 0 until training begins."""
    return _epoch


def inference_batch_size(batch_size: int) -> int:
    """Batch size for evaluate/predict: no gradients to keep, so larger batches
    cost little memory and save per-batch overhead; results do not change."""
    return max(batch_size, 1024)


def validation_data(x: Any, y: np.ndarray) -> Any:
    """What `fit(validation_data=...)` takes for a split."""
    return x if is_stream(x) else (x, y)


def label_form(one_hot: bool | None, class_names: Sequence[str] | None, units: int) -> str | None:
    """How a classifier's integer labels are fed: 'one_hot', 'column' (one sigmoid unit) or None (as they are)."""
    if one_hot:
        return "one_hot"
    return "column" if class_names is not None and units == 1 else None


def labels(x: Any, y: np.ndarray, n_classes: int, form: str | None) -> tuple[Any, np.ndarray]:
    """Returns the split with its integer labels in the form `label_form` chose, arrays or stream alike.

    A column, not a vector, for one sigmoid unit: metrics such as Precision
    compare labels of shape (n,) with outputs of shape (n, 1) pairwise, silently.
    """
    if form is None:
        return x, y
    if form == "one_hot":
        encode, target = (lambda yb, tf: tf.one_hot(yb, n_classes)), (lambda: np.eye(n_classes, dtype="float32")[y])
    else:
        encode = lambda yb, tf: tf.cast(tf.reshape(yb, (-1, 1)), "float32")  # noqa: E731
        target = lambda: np.asarray(y, "float32")[:, None]  # noqa: E731
    if is_stream(x):
        from nnrun.backend import tensorflow

        tf = tensorflow()
        # The stream's batches carry the labels: the targets stay as they are (a streamed table's, a byte a row).
        return x.map(lambda xb, yb: (xb, encode(yb, tf))), y
    return x, target()


def class_weight(
    spec: Literal["balanced"] | Mapping[str, float] | None, class_names: Sequence[str] | None, y: np.ndarray
) -> dict[int, float] | None:
    """Keras's `class_weight` for the config's `training.class_weight`.

    Args:
        spec: None, 'balanced' or `{class name: weight}`.
        class_names: the classes (None for regression).
        y: the training split's class indices.

    Returns:
        `{class index: weight}` for `fit`, or None.
    """
    if spec is None:
        return None
    if class_names is None:
        raise ConfigError("training.class_weight: the targets are continuous numbers (regression); it weighs classes")
    if spec == "balanced":
        from sklearn.utils.class_weight import compute_class_weight

        present = np.unique(y)
        weights = dict(zip(present.tolist(), compute_class_weight("balanced", classes=present, y=y), strict=True))
        return {i: float(weights.get(i, 1.0)) for i in range(len(class_names))}
    for name in spec:
        if name not in class_names:
            shown = ", ".join(class_names[:10]) + (", ..." if len(class_names) > 10 else "")
            raise ConfigError(
                f"training.class_weight: no class '{name}'{did_you_mean(name, class_names)} (classes: {shown})"
            )
    return {i: float(spec.get(name, 1.0)) for i, name in enumerate(class_names)}


def scalars(logs: Mapping[str, Any], class_names: Sequence[str] | None = None) -> dict[str, float]:
    """Keras's logs as plain numbers, a per-class metric (F1Score) as one value per class and their mean.

    Args:
        logs: metric name -> a number or an array (tensors too).
        class_names: the classes, to name per-class values.

    Returns:
        A dict name -> float: `f1_score.cat`, `f1_score.dog`, ... and `f1_score_macro` for an array.
    """
    out: dict[str, float] = {}
    for name, value in logs.items():
        value = np.asarray(value, dtype="float64").ravel()
        if value.size == 1:
            out[name] = float(value[0])
            continue
        names = class_names if class_names is not None and len(class_names) == value.size else range(value.size)
        out[f"{name}_macro"] = float(value.mean())
        out.update({f"{name}.{label}": float(v) for label, v in zip(names, value, strict=True)})
    return out


def predicted_classes(probabilities: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Class indices from a classifier's outputs: a sigmoid unit at `threshold`, else the arg-max."""
    probabilities = np.asarray(probabilities)
    if probabilities.shape[-1] == 1:
        return (probabilities[:, 0] >= threshold).astype("int64")
    return probabilities.argmax(axis=-1)


def split_classes(model: Any, x: Any, batch_size: int, n_classes: int) -> np.ndarray:
    """A classifier's predicted classes for a split: arrays through `predict`, a stream a batch at a time.

    Keras's `predict` holds every batch's outputs until the end: on a streamed table's test split
    (millions of rows) that is its float outputs and then their int64 classes, memory that grows with
    the rows. A stream's classes are kept instead, a batch at a time, in the smallest integer type.

    Args:
        model: the classifier.
        x: the split's inputs: arrays, or a `tf.data.Dataset` of `(x, y)` batches.
        batch_size: the batch size for arrays.
        n_classes: how many classes there are.

    Returns:
        The class index of each sample, in order.
    """
    if not is_stream(x):
        return predicted_classes(model.predict(x, batch_size=batch_size, verbose=0))
    kind = np.min_scalar_type(max(n_classes - 1, 1))
    parts = [predicted_classes(model.predict_on_batch(batch[0])).astype(kind) for batch in x.as_numpy_iterator()]
    return np.concatenate(parts) if parts else np.zeros(0, kind)


def class_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """Per-class probabilities `(n, k)`; a single sigmoid unit becomes `[1 - p, p]`."""
    probabilities = np.asarray(probabilities, dtype="float64")
    if probabilities.shape[-1] == 1:
        return np.concatenate([1 - probabilities, probabilities], axis=-1)
    return probabilities
