"""Data: one module per kind of source, one entry point, `load`.

A source module has `read(data) -> Raw`; `load` turns that into seeded,
stratified splits with the preprocessing learned from the training split.
"""

import importlib

from nnrun.data.prepare import Dataset, Raw, prepare, transform

__all__ = ["Dataset", "Raw", "load", "transform"]

# source name in the config -> module in this package
SOURCES = {
    "sklearn": "bundled",
    "keras": "keras_datasets",
    "npz": "npz",
    "csv": "csv_table",
    "images": "image_folder",
}


def load(data, validation_split, seed, batch_size=32, shuffle=True):
    """Loads a dataset as the config describes it.

    Args:
        data: the config's `data` section.
        validation_split: fraction of training data kept for validation.
        seed: seed of the splits.
        batch_size: batch size of streamed sources (image folders).
        shuffle: whether streamed sources reshuffle the training split each epoch.

    Returns:
        A `Dataset`: train/validation/test arrays, class names,
        preprocessing (JSON-able) and a fingerprint of the raw data.
    """
    source = importlib.import_module(f"nnrun.data.{SOURCES[data.source]}")
    return prepare(source.read(data), data, validation_split, seed, batch_size, shuffle)
