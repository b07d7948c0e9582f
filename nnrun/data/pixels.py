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
        image = _decode(path, height, width)
        if preprocessing.get("color_mode") == "grayscale":
            image = (image @ _GREY)[..., None]
        if preprocessing.get("rescale"):
            image = image * np.float32(preprocessing["rescale"])
        images.append(image)
    if not images:
        return np.zeros((0, height, width, 1 if preprocessing.get("color_mode") == "grayscale" else 3), "float32")
    return np.stack(images).astype("float32", copy=False)


def _decode(path, height, width):
    """An image file's pixels, resized by `resize` to `(height, width, 3)`.

    The image is decoded whole (Pillow's copy, at most `image_folder.MAX_PIXELS`
    of 3 bytes: about 256 MiB) and nothing more of its size is made: only the
    rows the bilinear resize samples are converted to RGB and to numbers.
    """
    from nnrun.data import image_folder

    with image_folder.opened(path) as image:
        image.seek(0)  # a GIF's first frame
        image.load()
        y0, y1, dy = _weights(image.height, height)
        needed = np.union1d(y0, y1)
        rows = np.stack([_rgb_row(image, y) for y in needed])
    return _bilinear(rows, np.searchsorted(needed, y0), np.searchsorted(needed, y1), dy, width)


def _rgb_row(image, y):
    """Row `y` of a Pillow image as uint8 RGB `(width, 3)`, as `tf.image.decode_image` gives it."""
    row = image.crop((0, y, image.width, y + 1))
    if row.mode.startswith("I"):  # 16-bit grey: TensorFlow keeps the high byte, Pillow's convert clips
        grey = (np.asarray(row)[0].astype("int64").clip(0, 65535) >> 8).astype("uint8")
        return np.repeat(grey[..., None], 3, axis=-1)
    return np.asarray(row.convert("RGB"))[0]


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """`tf.image.resize(image, (height, width))`, bilinear: float32, half-pixel centres, no antialiasing.

    Args:
        image: `(h, w, channels)` pixels.
        height, width: the size wanted.

    Returns:
        float32 `(height, width, channels)`.
    """
    y0, y1, dy = _weights(image.shape[0], height)
    return _bilinear(np.asarray(image), y0, y1, dy, width)


def _bilinear(image, y0, y1, dy, width):
    """The bilinear resize of `image`'s rows `y0` and `y1` (weighted by `dy`) to `width` columns, in float32."""
    x0, x1, dx = _weights(image.shape[1], width)
    dx = dx[None, :, None]
    rows_0, rows_1 = image[y0].astype("float32"), image[y1].astype("float32")  # only the sampled rows
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
