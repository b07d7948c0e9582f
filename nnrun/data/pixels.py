"""Image files as model inputs with Pillow and NumPy alone, as training's TensorFlow pipeline makes them.

`predict` reads images here, so that an exported model answers without
importing TensorFlow. Each step is TensorFlow's, redone: `decode_image` with
3 channels (grey replicated, alpha dropped, a GIF's first frame), `resize`
bilinear with half-pixel centres and no antialiasing, computed in float32 as
TensorFlow's kernel does, `rgb_to_grayscale`'s weights, then `rescale`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import numpy as np

# tf.image.rgb_to_grayscale's weights.
_GREY = np.array([0.2989, 0.5870, 0.1140], dtype="float32")


def read(paths: Iterable[str | os.PathLike[str]], preprocessing: dict[str, Any]) -> np.ndarray:
    """Reads image files into one array, prepared as training prepared its images.

    Args:
        paths: image file paths.
        preprocessing: the run's preprocessing dict (`image_size`,
            `color_mode`, `rescale`).

    Returns:
        float32 array `(n, height, width, channels)`.
    """
    from nnrun.data import image_folder

    height, width = preprocessing["image_size"]
    images = []
    for path in paths:
        image_folder.check_pixels(path)
        image = resize(_decode(path), height, width)
        if preprocessing.get("color_mode") == "grayscale":
            image = (image @ _GREY)[..., None]
        if preprocessing.get("rescale"):
            image = image * np.float32(preprocessing["rescale"])
        images.append(image)
    if not images:
        return np.zeros((0, height, width, 1 if preprocessing.get("color_mode") == "grayscale" else 3), "float32")
    return np.stack(images).astype("float32", copy=False)


def _decode(path):
    """An image file's pixels, uint8 `(height, width, 3)`."""
    from nnrun.data import image_folder

    with image_folder.opened(path) as image:
        image.seek(0)  # a GIF's first frame
        if image.mode.startswith("I"):  # 16-bit grey: TensorFlow keeps the high byte, Pillow's convert clips
            grey = (np.asarray(image).astype("int64").clip(0, 65535) >> 8).astype("uint8")
            return np.repeat(grey[..., None], 3, axis=-1)
        return np.asarray(image.convert("RGB"))


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """`tf.image.resize(image, (height, width))`, bilinear: float32, half-pixel centres, no antialiasing.

    Args:
        image: `(h, w, channels)` pixels.
        height, width: the size wanted.

    Returns:
        float32 `(height, width, channels)`.
    """
    image = np.asarray(image, dtype="float32")
    y0, y1, dy = _weights(image.shape[0], height)
    x0, x1, dx = _weights(image.shape[1], width)
    dx = dx[None, :, None]
    rows_0, rows_1 = image[y0], image[y1]
    top = rows_0[:, x0] + (rows_0[:, x1] - rows_0[:, x0]) * dx
    bottom = rows_1[:, x0] + (rows_1[:, x1] - rows_1[:, x0]) * dx
    return top + (bottom - top) * dy[:, None, None]


def _weights(size, out):
    """The two source indices and the weight of the second, per output index (TensorFlow's arithmetic)."""
    scale = np.float32(size) / np.float32(out)
    where = (np.arange(out, dtype="float32") + np.float32(0.5)) * scale - np.float32(0.5)
    low = np.floor(where)
    return (
        np.maximum(low, 0).astype(int),
        np.minimum(np.ceil(where), size - 1).astype(int),
        (where - low).astype("float32"),
    )
