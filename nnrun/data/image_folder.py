"""Image folders: the `images` source and feature kind, streamed with tf.data.

A folder holds one sub-folder of images per class (`root/<class>/*.png`), or
`root/train/<class>/...` with `root/test/<class>/...` (or `root/val/...`) as
the test split. Features are file paths; images are read, decoded and resized
batch by batch, so a folder is never loaded into memory whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nnrun import backend
from nnrun.data.types import Raw
from nnrun.errors import DataError, listed, one_line

if TYPE_CHECKING:
    import tensorflow as tf
    from PIL import Image

    from nnrun.config.schema import ImageData

KIND = "images"
EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
# What TensorFlow's decode_image recognizes an image by: its first bytes.
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")
_CHUNK = 1 << 20
# The most pixels an image may claim: Pillow's default Image.MAX_IMAGE_PIXELS
# (a quarter GiB of 24-bit RGB), checked before TensorFlow decodes anything.
MAX_PIXELS = 89_478_485


def read(data: ImageData, place: str = "data.path") -> Raw:
    """Lists an image folder: file paths, class labels and a content fingerprint.

    Args:
        data: the config's `data` section (`path`).
        place: what its errors name first, with the folder: `data.path`, as the config names it, or the
            option that gave it (`--data`).

    Returns:
        A `Raw` whose features are image file paths and targets class
        indices into `class_names` (the sorted class folder names), with
        `x_test`/`y_test` when the folder has `train/` and a `test/` (else
        `val/`) tree; validation data is then still split from `train/`.
    """
    root, origin, class_names, x, y, x_test, y_test = _listing(data, f"{place} '{data.path}'")
    fingerprint = _fingerprint(root, np.concatenate([x, x_test]) if x_test is not None else x, origin)
    return Raw(
        x=x,
        y=y,
        x_test=x_test,
        y_test=y_test,
        class_names=class_names,
        origin=origin,
        names=("images", "labels"),
        fingerprint=fingerprint,
        root=str(root),
    )


def verify(data: ImageData, advance: Callable[[int, int], object] | None = None) -> int:
    """Decodes every image of a folder (in parallel threads), and refuses the folder if any fails.

    What `check` does before training, and what a training stopped by a file
    TensorFlow could not read does to name it.

    Args:
        data: the config's `data` section (`path`).
        advance: called after each image with `(done, total)` (a progress bar), or None.

    Returns:
        The number of images, all of them readable.
    """
    from concurrent.futures import ThreadPoolExecutor

    root, origin, _, x, _, x_test, _ = _listing(data)
    paths = x.tolist() + ([] if x_test is None else x_test.tolist())
    bad = []
    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1)  # Pillow decodes without the GIL
    try:
        for done, (path, problem) in enumerate(zip(paths, pool.map(_decoding_problem, paths), strict=True), 1):
            if problem:
                bad.append(f"{Path(path).relative_to(root).as_posix()} ({problem})")
            if advance:
                advance(done, len(paths))
    finally:  # Ctrl-C stops at once, not after every image queued
        pool.shutdown(wait=False, cancel_futures=True)
    if bad:
        raise DataError(
            f"{origin}: {len(bad)} of {len(paths)} images cannot be decoded: {listed(bad)}; remove or replace them"
        )
    return len(paths)


def _decoding_problem(path):
    """Why an image file cannot be decoded, or None."""
    from PIL import Image

    try:
        check_pixels(path)
        with Image.open(path) as image:
            image.load()  # the whole image: a truncated JPEG fails here, not at its header
    except DataError as e:
        return str(e).removeprefix(f"{path}: ")
    except Exception as e:  # whatever Pillow's decoders raise on a damaged file
        return one_line(e)
    return None


def _listing(data, origin=None):
    """The folder's files and classes: (root, origin, class names, x, y, x_test, y_test)."""
    root = Path(data.path)
    origin = origin or f"data.path '{root}'"
    if not root.is_dir():
        problem = "no such folder" if not root.exists() else "is a file, not a folder of class sub-folders"
        raise DataError(f"{origin}: {problem}")
    split = (root / "train").is_dir()
    train_dir = root / "train" if split else root
    class_names = _class_folders(train_dir, root, origin)
    if len(class_names) < 2:
        raise DataError(
            f"{origin}: {len(class_names)} class folder ('{class_names[0]}'); a classifier needs at least 2"
        )
    x, y = _list_images(train_dir, class_names, root, origin)
    x_test = y_test = None
    test_dir = next((root / n for n in ("test", "val") if split and (root / n).is_dir()), None)
    if test_dir is not None:
        test_names = _class_folders(test_dir, root, origin)
        if test_names != class_names:
            missing, extra = set(class_names) - set(test_names), set(test_names) - set(class_names)
            raise DataError(
                f"{origin}: {test_dir.name}/ has classes {test_names} but train/ has {class_names}"
                + "".join(
                    f"; {what}: {', '.join(sorted(v))}"
                    for what, v in ((f"missing in {test_dir.name}/", missing), ("not in train/", extra))
                    if v
                )
            )
        x_test, y_test = _list_images(test_dir, class_names, root, origin)
    return root, origin, class_names, x, y, x_test, y_test


def check(x: object, name: str, origin: str) -> np.ndarray:
    """Returns the image paths as a 1-D array of strings."""
    return np.asarray(x, dtype=str)


def fit(x: np.ndarray, data: ImageData) -> dict[str, Any]:
    """Returns the preprocessing of images: nothing is learned from pixels.

    Args:
        x: training image paths (unused).
        data: the config's `data` section (`image_size`, `color_mode`, `rescale`, `cache`).

    Returns:
        The JSON-able preprocessing: kind, input shape, image size, colour mode, rescale, cache.
    """
    height, width = (int(v) for v in data.image_size)
    channels = 1 if data.color_mode == "grayscale" else 3
    return {
        "kind": KIND,
        "input_shape": [height, width, channels],
        "image_size": [height, width],
        "color_mode": data.color_mode,
        "rescale": data.rescale,
        "cache": data.cache,
    }


def apply(paths: Sequence[str] | np.ndarray, preprocessing: dict[str, Any]) -> np.ndarray:
    """Reads image files into one array, prepared exactly as `feed` prepares them.

    Args:
        paths: image file paths.
        preprocessing: the run's preprocessing dict.

    Returns:
        float32 array `(n, height, width, channels)`.
    """
    tf = _tf()
    images = []
    for path in np.atleast_1d(np.asarray(paths, dtype=str)).tolist():
        check_pixels(path)
        try:
            images.append(_image(tf.constant(path), preprocessing).numpy())
        except tf.errors.NotFoundError:
            raise DataError(f"{path}: no such file") from None
        except tf.errors.OpError as e:
            reason = re.sub(r"\{\{.*?\}\}|\[Op:.*", "", e.message or "").strip() or type(e).__name__
            raise DataError(f"{path}: not a readable image: {reason}") from None
    if not images:
        return np.zeros((0, *preprocessing["input_shape"]), dtype="float32")
    return np.stack(images).astype("float32", copy=False)


def check_pixels(path: str | os.PathLike[str]) -> None:
    """Refuses an image whose header claims more than `MAX_PIXELS`, before anything decodes it.

    Args:
        path: the image file.
    """
    width, height = _header_size(path)
    if width * height > MAX_PIXELS:
        raise DataError(f"{path}: {width}x{height} pixels, more than the {MAX_PIXELS} nnrun decodes")


def _header_size(path):
    """An image file's width and height, read from its header by Pillow (which decodes nothing yet).

    Args:
        path: the image file.

    Returns:
        `(width, height)`.
    """
    from PIL import Image

    # Off while the header is read: Pillow's own bomb check raises or warns without the
    # size; ours then names the file and its size.
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with opened(path) as image:
            return image.size
    finally:
        Image.MAX_IMAGE_PIXELS = limit


@contextlib.contextmanager
def opened(path: str | os.PathLike[str]) -> Iterator[Image.Image]:
    """A Pillow image of the file; what goes wrong reading it is one `DataError` naming it.

    Args:
        path: the image file.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path, formats=("PNG", "JPEG", "GIF", "BMP")) as image:  # what training decodes
            yield image
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except UnidentifiedImageError:
        raise DataError(f"{path}: not a readable image: Unknown image file format, not PNG, JPEG, GIF or BMP") from None
    except Exception as e:  # a damaged file: whatever Pillow's parser or decoder raised
        raise DataError(f"{path}: not a readable image: {one_line(e)}") from None


def feed(
    paths: Sequence[str] | np.ndarray,
    labels: np.ndarray,
    preprocessing: dict[str, Any],
    batch_size: int,
    training: bool,
    seed: int,
) -> tf.data.Dataset:
    """A stream of `(images, labels)` batches that reads files as it goes.

    Args:
        paths: image file paths.
        labels: their labels, in the same order.
        preprocessing: the run's preprocessing dict.
        batch_size: images per batch.
        training: shuffle (seeded, anew each epoch); otherwise keep the
            order of `labels`, which the confusion matrix relies on.
        seed: seed of the shuffle.

    Returns:
        A `tf.data.Dataset` of `(float32 images, labels)` batches (int64 class indices).
    """
    tf = _tf()
    labels = np.asarray(labels)
    labels = labels.astype("int64") if labels.dtype.kind in "iub" else labels.astype("float32")
    stream = tf.data.Dataset.from_tensor_slices((np.asarray(paths, dtype=str), labels))
    autotune = tf.data.AUTOTUNE
    decode = lambda p, y: (_image(p, preprocessing), y)  # noqa: E731
    if preprocessing.get("cache"):
        # Decoded once, then reshuffled from memory every epoch.
        stream = stream.map(decode, num_parallel_calls=autotune).cache()
        stream = _shuffled(stream, len(labels), seed) if training else stream
    else:
        stream = _shuffled(stream, len(labels), seed) if training else stream  # paths: the buffer stays small
        stream = stream.map(decode, num_parallel_calls=autotune)
    return stream.batch(batch_size).prefetch(autotune)


def _shuffled(stream, n, seed):
    """The stream in a new order every epoch, drawn as the epoch's reading starts.

    The order follows from the run's seed and the epoch being trained
    (`feeding.epoch`, which `callbacks.SeedEachEpoch` sets), and from nothing
    else: not from how often the stream was read before (Keras opens it more
    than once an epoch, in threads of its own) nor from TensorFlow's global
    seed, so a resumed run sees the images in the order a run never stopped
    would have. The permutation is NumPy's; the elements (paths, or decoded
    images from the cache) are gathered in its order.
    """
    from nnrun.data import feeding

    tf = _tf()
    draw = lambda: iter([np.random.default_rng([seed, feeding.epoch()]).permutation(n)])  # noqa: E731
    orders = tf.data.Dataset.from_generator(draw, output_signature=tf.TensorSpec([n], tf.int64))
    everything = stream.batch(max(n, 1))  # one element: all of the split, in its own order
    reorder = lambda whole, order: tf.data.Dataset.from_tensor_slices(tuple(tf.gather(t, order) for t in whole))  # noqa: E731
    return tf.data.Dataset.zip((everything, orders)).flat_map(reorder).apply(tf.data.experimental.assert_cardinality(n))


def _image(path, preprocessing):
    """One image file -> float32 `(height, width, channels)`: the work feed and apply share."""
    tf = _tf()
    # Always 3 channels: TensorFlow decodes GIF and BMP to 1 channel not at all.
    contents = tf.io.read_file(path)
    # JPEG with the accurate integer DCT, as Pillow decodes it: predict reads images with Pillow.
    image = tf.cond(
        tf.io.is_jpeg(contents),
        lambda: tf.io.decode_jpeg(contents, channels=3, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_image(contents, channels=3, expand_animations=False),
    )
    image.set_shape([None, None, 3])
    image = tf.image.resize(image, preprocessing["image_size"])
    if preprocessing["color_mode"] == "grayscale":
        image = tf.image.rgb_to_grayscale(image)
    if preprocessing.get("rescale"):
        image = image * preprocessing["rescale"]
    return image


def _class_folders(folder, root, origin):
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        loose = sum(1 for p in folder.iterdir() if p.suffix.lower() in EXTENSIONS)
        where = "" if folder == root else f"{folder.relative_to(root)}/ "
        hint = f"; its {loose} images must go into one sub-folder per class" if loose else ""
        raise DataError(f"{origin}: {where}has no class sub-folders (expected <class>/*.png, .jpg, ...){hint}")
    return names


def _list_images(folder, class_names, root, origin):
    paths, labels = [], []
    for index, name in enumerate(class_names):
        # Recursive like Keras's image_dataset_from_directory; hidden files (._x.png) skipped.
        found = sorted(
            p
            for p in (folder / name).rglob("*")
            if p.suffix.lower() in EXTENSIONS and not p.name.startswith(".") and p.is_file()
        )
        if not found:
            raise DataError(
                f"{origin}: class folder '{(folder / name).relative_to(root)}' has no images ({', '.join(EXTENSIONS)})"
            )
        paths += [str(p) for p in found]
        labels += [index] * len(found)
    return np.array(paths, dtype=str), np.array(labels, dtype="int64")


def _fingerprint(root, paths, origin):
    """sha256 of every image's relative path and bytes; checks each is an image on the way."""
    digest = hashlib.sha256()
    for path in paths.tolist():
        relative = Path(path).relative_to(root).as_posix()
        try:
            with open(path, "rb") as f:
                digest.update(f"{relative}\0{os.fstat(f.fileno()).st_size}\0".encode())
                chunk = f.read(_CHUNK)
                if not chunk.startswith(_SIGNATURES):
                    raise DataError(f"{origin}: '{relative}' is not a PNG, JPEG, BMP or GIF image")
                while chunk:
                    digest.update(chunk)
                    chunk = f.read(_CHUNK)
        except OSError as e:
            raise DataError(f"{origin}: cannot read '{relative}': {e.strerror}") from None
    return f"sha256:{digest.hexdigest()}"


def _tf():
    return backend.tensorflow()
