"""What data sources and feature kinds hand each other: at the bottom of `nnrun.data`, importing none of it."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Raw:
    """What a source reads: features, targets and, when known, class names.

    Features are a numeric array, a pandas DataFrame (a table) or a 1-D array
    of image file paths.
    """

    x: object
    y: np.ndarray
    x_test: object = None
    y_test: np.ndarray | None = None
    class_names: list[str] | None = None
    origin: str = "data"  # where the data came from, for messages
    names: tuple[str, str] = ("x", "y")  # what the source calls its features and targets
    fingerprint: str | None = None  # a source that knows better (file contents) sets it
    root: str | None = None  # the folder that image paths lie in: a split names them relative to it
    notes: list[str] = field(default_factory=list)  # what reading did that a user should know


@dataclass
class Dataset:
    """Splits ready for Keras, and what it takes to prepare raw inputs alike.

    `x_*` are arrays, or for streamed sources `tf.data.Dataset`s of
    `(x, y)` batches; `y_*` are always arrays of the targets, in order.
    """

    x_train: object
    y_train: np.ndarray
    x_val: object
    y_val: np.ndarray | None
    x_test: object
    y_test: np.ndarray
    class_names: list[str] | None  # None for regression
    preprocessing: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""
    notes: list[str] = field(default_factory=list)  # what was done to the data that a user should know
    # split name -> {samples, sha256}: which samples it holds
    splits: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The records nnrun 0.2 may have made of the test split instead (it named image files by the path
    # training was given): evaluate accepts one of them from a run recorded then. Made when asked.
    test_split_before: Callable[[], list[dict[str, Any]]] = lambda: []

    @property
    def is_classification(self) -> bool:
        return self.class_names is not None
