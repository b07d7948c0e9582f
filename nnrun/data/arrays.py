"""Numeric arrays as features: checked, rescaled and scaled (sklearn) from the training split."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from nnrun.errors import DataError

if TYPE_CHECKING:
    from nnrun.config.schema import DataBase

KIND = "array"


def check(x: object, name: str, origin: str) -> np.ndarray:
    """Returns `x` as an array of numeric samples, or says what is wrong with it."""
    x = np.asarray(x)
    if x.ndim < 2 or not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{origin}: {name} must be a numeric array of samples, got dtype {x.dtype} shape {x.shape}")
    if not np.isfinite(x).all():
        raise DataError(f"{origin}: {name} contains NaN or infinite values")
    return x


def fit(x: np.ndarray, data: DataBase) -> dict[str, Any]:
    """Learns the feature preprocessing from the training split.

    Args:
        x: training features.
        data: the config's `data` section (`rescale`, `scale`).

    Returns:
        The JSON-able preprocessing: kind, input shape, rescale, scaling.
    """
    preprocessing: dict[str, Any] = {
        "kind": KIND,
        "input_shape": list(x.shape[1:]),
        "rescale": data.rescale,
        "scaling": None,
    }
    if data.scale != "none":
        from sklearn.preprocessing import MinMaxScaler, StandardScaler

        flat = apply(x, preprocessing).reshape(len(x), -1)
        if data.scale == "standard":
            scaler = StandardScaler().fit(flat)
            preprocessing["scaling"] = {
                "method": "standard",
                "mean": scaler.mean_.tolist(),
                "scale": scaler.scale_.tolist(),
            }
        else:
            scaler = MinMaxScaler().fit(flat)
            preprocessing["scaling"] = {
                "method": "minmax",
                "min": scaler.min_.tolist(),
                "scale": scaler.scale_.tolist(),
            }
    return preprocessing


def apply(x: np.ndarray, preprocessing: dict[str, Any]) -> np.ndarray:
    """Applies the preprocessing learned from training data to raw features.

    Args:
        x: raw features, samples first.
        preprocessing: the run's preprocessing dict.

    Returns:
        float32 features as the model takes them.
    """
    rescale = preprocessing.get("rescale")
    if rescale:
        # One pass over the data, not two: it may be hundreds of MB.
        x = np.multiply(x, np.float32(rescale), dtype="float32")
    else:
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


def feed(
    x: np.ndarray, y: np.ndarray, preprocessing: dict[str, Any], batch_size: int, training: bool, seed: int
) -> np.ndarray:
    """What Keras is given for a split: the preprocessed array (Keras batches it)."""
    return apply(x, preprocessing)
