"""Keras's built-in datasets by name, from the Keras cache.

MNIST and Fashion-MNIST are read from the cache's files with NumPy, as
Keras's loaders read them: importing Keras for them costs seconds (TensorFlow
with it, on either backend) before the first batch. The others, and any
dataset whose files are not all in the cache, go through Keras's own
loaders, which read the Keras cache, `$KERAS_HOME/datasets/` (default
`~/.keras/datasets/`), and download what is missing; when that fails, the
error says which file to put where.
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
import struct
import zipfile
from typing import TYPE_CHECKING

import numpy as np

from nnrun import keras_cache
from nnrun.atomic import sha256_file
from nnrun.backend import keras as _keras
from nnrun.data.types import Raw
from nnrun.errors import DataError

if TYPE_CHECKING:
    from nnrun.config.schema import KerasData

_GCS = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_KRIZ = "https://www.cs.toronto.edu/~kriz/"
_IDX = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
_FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
_CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
_FINE = """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly
    camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur
    dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard
    lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear
    pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark
    shrew skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone
    television tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm""".split()

# keras.datasets.mnist.load_data reads mnist.npz only when it has this sha256 (keras/src/datasets/mnist.py;
# a test checks it against Keras's source), else downloads it again.
MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
MNIST_BYTES = 20_000_000  # the file is 11 MB: a larger one is not it

# name -> (what Keras keeps under <cache>/datasets/, where it downloads it from, class names)
DATASETS = {
    "mnist": (["mnist.npz"], _GCS + "mnist.npz", [str(i) for i in range(10)]),
    "fashion_mnist": ([f"fashion-mnist/{f}" for f in _IDX], _GCS, _FASHION),
    # Keras 3 keeps the downloaded tar.gz under these names and extracts it again on every load.
    "cifar10": (["cifar-10-batches-py-target_archive"], _KRIZ + "cifar-10-python.tar.gz", _CIFAR10),
    "cifar100": (["cifar-100-python-target_archive"], _KRIZ + "cifar-100-python.tar.gz", _FINE),
    "boston_housing": (["boston_housing.npz"], _GCS + "boston_housing.npz", None),
    "california_housing": (["california_housing.npz"], _GCS + "california_housing.npz", None),
}


def read(data: KerasData) -> Raw:
    """Reads one of Keras's built-in datasets from the Keras cache.

    Args:
        data: the config's `data` section (`name`; `test_split` for the
            housing datasets, which Keras splits itself).

    Returns:
        A `Raw` with Keras's train and test splits as they come (uint8 images,
        `(n,)` labels) and the class names (None for regression).
    """
    name, origin = data.name, f"data.name '{data.name}'"
    files, url, class_names = DATASETS[name]
    options = {"test_split": data.test_split} if name.endswith("_housing") else {}
    try:
        cached = _from_cache(name)
        if cached is None:
            with keras_cache.Announcements():
                cached = getattr(_keras().datasets, name).load_data(**options)
        (x, y), (x_test, y_test) = cached
    except Exception as e:
        reason = keras_cache.download_failure(e)
        if reason is not None:
            raise DataError(_absent(origin, files, url, reason)) from None
        if not isinstance(e, (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError)):
            raise
        where = ", ".join(os.path.join(keras_cache.folder("datasets")[0], f) for f in files)
        raise DataError(f"{origin}: cannot read {where} from the Keras cache: {type(e).__name__}: {e}") from None
    if y.ndim == 2 and y.shape[1] == 1:  # CIFAR labels come as (n, 1)
        y, y_test = y[:, 0], y_test[:, 0]
    return Raw(
        x=x, y=y, x_test=x_test, y_test=y_test, class_names=class_names, origin=origin, names=("x_train", "y_train")
    )


def _from_cache(name):
    """MNIST's or Fashion-MNIST's splits read from the cache's files with NumPy; None for another
    dataset, or where a file is missing (Keras's loader then downloads it)."""
    if name not in ("mnist", "fashion_mnist"):
        return None
    folder = keras_cache.folder("datasets")[0]
    files = [os.path.join(folder, f) for f in DATASETS[name][0]]
    if not all(os.path.isfile(f) for f in files):
        return None
    if name == "mnist":
        path = mnist_file()
        if path is None:
            return None
        with np.load(path, allow_pickle=False) as f:
            return (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])
    x, y, x_test, y_test = (_idx(f) for f in files)
    return (x, y), (x_test, y_test)


def mnist_file() -> str | None:
    """The cache's mnist.npz where it is the file Keras's loader reads (its sha256, as Keras checks it).

    Returns:
        Its path; None where it is absent, a link, too large or another file (Keras's loader then
        downloads it again, or says which file to put where).
    """
    path = os.path.join(keras_cache.folder("datasets")[0], DATASETS["mnist"][0][0])
    try:
        if os.path.islink(path) or not os.path.isfile(path) or os.path.getsize(path) > MNIST_BYTES:
            return None
        return path if sha256_file(path) == MNIST_SHA256 else None
    except OSError:
        return None


def _idx(path):
    """The array of a gzipped IDX file of unsigned bytes (MNIST's format), its size checked against its header."""
    with gzip.open(path, "rb") as f:
        magic = f.read(4)  # 0, 0, 0x08 (unsigned bytes), the number of dimensions
        if len(magic) < 4 or magic[:3] != b"\0\0\x08" or not 1 <= magic[3] <= 4:
            raise ValueError(f"'{path}' is not an IDX file of unsigned bytes")
        dims = f.read(4 * magic[3])
        if len(dims) != 4 * magic[3]:
            raise ValueError(f"'{path}' ends within its header")
        shape = struct.unpack(f">{magic[3]}I", dims)
        size = math.prod(shape)
        data = f.read(size + 1)  # no more than the header says, and one byte to see there is no more
    if len(data) != size:
        raise ValueError(f"'{path}' holds {len(data)} bytes of data where its header says {size}")
    return np.frombuffer(data, np.uint8).reshape(shape)


def _absent(origin, files, url, reason):
    folder, home = keras_cache.folder("datasets")
    missing = [f for f in files if not os.path.exists(os.path.join(folder, f))] or files
    paths = (
        os.path.join(folder, missing[0])
        if len(missing) == 1
        else (
            os.path.join(
                folder, os.path.dirname(missing[0]), "{" + ", ".join(os.path.basename(f) for f in missing) + "}"
            )
        )
    )
    them = "it" if len(missing) == 1 else "them"
    return (
        f"{origin}: not in the Keras cache and could not be downloaded ({reason}): Keras looks for {paths}"
        f"{keras_cache.fallback_note(folder, home)}; put {them} there (from {url}), "
        f"or set KERAS_HOME to a folder whose datasets/ has {them}"
    )
