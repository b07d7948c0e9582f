"""Feeding Keras and reading what it gives back, shared by train, evaluate and predict.

A split is `(x, y)`: arrays (Keras batches them), or for streamed sources a
`tf.data.Dataset` of `(x, y)` batches with `y` the targets in order.
"""

import numpy as np


def is_stream(x):
    """Whether `x` is a `tf.data.Dataset` of batches rather than an array."""
    return hasattr(x, "element_spec")


def inputs(x, y, batch_size):
    """Keyword arguments for `fit`/`evaluate`/`predict`: arrays with their batch size, or a stream."""
    return {"x": x} if is_stream(x) else {"x": x, "y": y, "batch_size": batch_size}


def inference_batch_size(batch_size):
    """Batch size for evaluate/predict: no gradients to keep, so larger batches
    cost little memory and save per-batch overhead; results do not change."""
    return max(batch_size, 1024)


def validation_data(x, y):
    """What `fit(validation_data=...)` takes for a split."""
    return x if is_stream(x) else (x, y)


def one_hot(x, y, n_classes):
    """Returns the split with its integer labels one-hot encoded, arrays or stream alike."""
    if is_stream(x):
        import tensorflow as tf

        return x.map(lambda xb, yb: (xb, tf.one_hot(yb, n_classes))), np.eye(n_classes, dtype="float32")[y]
    return x, np.eye(n_classes, dtype="float32")[y]


def predicted_classes(probabilities, threshold=0.5):
    """Class indices from a classifier's outputs: a sigmoid unit at `threshold`, else the arg-max."""
    probabilities = np.asarray(probabilities)
    if probabilities.shape[-1] == 1:
        return (probabilities[:, 0] >= threshold).astype("int64")
    return probabilities.argmax(axis=-1)


def class_probabilities(probabilities):
    """Per-class probabilities `(n, k)`; a single sigmoid unit becomes `[1 - p, p]`."""
    probabilities = np.asarray(probabilities, dtype="float64")
    if probabilities.shape[-1] == 1:
        return np.concatenate([1 - probabilities, probabilities], axis=-1)
    return probabilities
