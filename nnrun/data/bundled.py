"""scikit-learn's bundled datasets (digits, iris, wine, breast_cancer): offline."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from nnrun.data.types import Raw

if TYPE_CHECKING:
    from nnrun.config.schema import SklearnData


def read(data: SklearnData) -> Raw:
    """Reads one of scikit-learn's bundled datasets.

    Args:
        data: the config's `data` section (`name`).

    Returns:
        A `Raw` with features, integer labels and class names.
    """
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{data.name}")()
    names = [str(n) for n in bunch.target_names]
    if data.name == "digits":
        # The images are 8x8 and their targets 0..9; keep the features flat.
        names = [str(i) for i in range(10)]
    return Raw(x=np.asarray(bunch.data, dtype="float32"), y=np.asarray(bunch.target), class_names=names)
