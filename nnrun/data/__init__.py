"""Data: one module per kind of source, one entry point, `load`.

A source module has `read(data) -> Raw`; `load` turns that into seeded,
stratified splits with the preprocessing learned from the training split.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import TYPE_CHECKING, Any

from nnrun.data import npz
from nnrun.data.prepare import encode_targets, prepare, transform
from nnrun.data.registry import FEATURE_KINDS, SOURCES
from nnrun.data.types import Dataset, Raw
from nnrun.errors import DataError

if TYPE_CHECKING:
    import numpy as np

    from nnrun.config.schema import Data

__all__ = ["Dataset", "Raw", "load", "load_other", "transform"]


def load(
    data: Data,
    validation_split: float,
    seed: int,
    batch_size: int = 32,
    shuffle: bool = True,
    fitted: dict[str, Any] | None = None,
) -> Dataset:
    """Loads a dataset as the config describes it.

    Args:
        data: the config's `data` section.
        validation_split: fraction of training data kept for validation.
        seed: seed of the splits.
        batch_size: batch size of streamed sources (image folders).
        shuffle: whether streamed sources reshuffle the training split each epoch.
        fitted: a run's preprocessing to apply instead of learning it anew
            (what `evaluate` re-creates the test split with).

    Returns:
        A `Dataset`: train/validation/test arrays, class names,
        preprocessing (JSON-able) and a fingerprint of the raw data.
    """
    from nnrun.data import streamed

    if streamed.wanted(data):  # a table read in chunks, never whole
        return streamed.load(data, validation_split, seed, batch_size, shuffle, fitted)  # type: ignore[arg-type]
    source = SOURCES[data.source]
    return prepare(source.read(data), data, validation_split, seed, batch_size, shuffle, fitted)


OTHER = "--data"  # what errors name other data by: the option that gave it, not the config's data.path


def load_other(
    data: Data, preprocessing: dict[str, Any], path: str | os.PathLike[str], batch_size: int = 32
) -> tuple[Any, np.ndarray]:
    """Reads other data of a run's kind, prepared with the run's own preprocessing.

    What `evaluate --data` scores: a CSV with the training columns, an image
    folder with the same classes, or an `.npz` (its test arrays when it has
    them, else all of it).

    Args:
        data: the run's config `data` section.
        preprocessing: the run's preprocessing dict.
        path: the other data.
        batch_size: batch size of streamed sources.

    Returns:
        `(x, y)`: model inputs (an array or a stream of batches) and encoded targets.
    """
    kind = preprocessing.get("kind", "array")
    source: ModuleType  # nnrun.data.npz, or SOURCES's: each has `read`
    section: Data | SimpleNamespace  # what the source reads: npz's needs only a path
    if kind == "array":
        source, section = npz, SimpleNamespace(path=Path(path))
    else:
        from nnrun.data import streamed

        table = "parquet" if _is_parquet(path) else "csv"
        source = SOURCES["images" if kind != "table" else table]
        # The other file's own kind: a run trained on CSV scores a Parquet file too.
        section = data.model_copy(update={"path": Path(path), **({"source": table} if kind == "table" else {})})
        if kind == "table" and streamed.wanted(section, OTHER):  # read in chunks, as the run's table would be
            return streamed.load_other(section, preprocessing, batch_size, OTHER)  # type: ignore[arg-type]
    raw = source.read(section, place=OTHER)
    x, y = (raw.x, raw.y) if raw.x_test is None else (raw.x_test, raw.y_test)
    features = FEATURE_KINDS[kind]
    x = features.check(x, raw.names[0], raw.origin)
    shape = tuple(preprocessing["input_shape"])
    if kind == "array" and x.shape[1:] != shape:
        raise DataError(f"{raw.origin}: samples of shape {x.shape[1:]}; the model takes {shape}")
    y = encode_targets(y, raw.class_names, preprocessing["class_names"], raw.origin)
    try:
        return features.feed(x, y, preprocessing, batch_size, False, 0), y
    except DataError as e:
        raise DataError(f"{raw.origin}: {e}") from None


def _is_parquet(path: str | os.PathLike[str]) -> bool:
    """Whether a table's file is Parquet: by its name, else by its first bytes (a CSV run scores Parquet too)."""
    from nnrun.data import parquet_table

    if str(path).lower().endswith(parquet_table.SUFFIXES):
        return True
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PAR1"
    except OSError:
        return False
