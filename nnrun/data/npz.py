"""`.npz` arrays: `x`/`y`, or Keras's `x_train`/`y_train` with optional `x_test`/`y_test`."""

from __future__ import annotations

import zipfile
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np

from nnrun.data.types import Raw
from nnrun.errors import DataError

if TYPE_CHECKING:
    from nnrun.config.schema import NpzData


def read(data: NpzData | SimpleNamespace, place: str = "data.path") -> Raw:
    """Reads arrays from an `.npz` file.

    Args:
        data: the config's `data` section (`path`, relative to the current directory).
        place: what errors name first: `data.path`, or the option that gave the file (`--data`).

    Returns:
        A `Raw`; class names from a `class_names` array when the file has one.
    """
    path = data.path
    if not path.is_file():
        raise DataError(f"{place}: file '{path}' does not exist")
    if not zipfile.is_zipfile(path):
        hint = "a single .npy array" if path.read_bytes()[:6] == b"\x93NUMPY" else "not an .npz archive"
        raise DataError(f"{place}: '{path}' is {hint}; save x_train and y_train with numpy.savez")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise DataError(f"{place}: '{path}' is not a readable .npz file: {e}") from None
    for x_key, y_key in (("x_train", "y_train"), ("x", "y")):
        if x_key in arrays and y_key in arrays:
            break
    else:
        raise DataError(
            f"{place}: '{path}' needs arrays x_train and y_train (or x and y); it has {', '.join(arrays) or 'none'}"
        )
    has_test = "x_test" in arrays
    if has_test != ("y_test" in arrays):
        raise DataError(f"{place}: '{path}' has only one of x_test and y_test")
    names = arrays.get("class_names")
    return Raw(
        x=arrays[x_key],
        y=arrays[y_key],
        x_test=arrays["x_test"] if has_test else None,
        y_test=arrays["y_test"] if has_test else None,
        class_names=None if names is None else [str(n) for n in names],
        origin=f"{place} '{path}'",
        names=(x_key, y_key),
    )
