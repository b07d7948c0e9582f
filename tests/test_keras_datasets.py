"""Keras's built-in datasets by name (`data: {source: keras}`), on a fake Keras cache.

The cache is tiny files in Keras's own layout under `tmp_path`, read by
Keras's own loaders unchanged; the network is cut off, so an absent dataset
fails at once.
"""

import gzip
import json
import os
import socket
import struct
from pathlib import Path

import numpy as np
import pytest

from nnrun import data as data_lib
from nnrun.backend import keras
from nnrun.cli.main import cli
from nnrun.config.schema import KerasData
from nnrun.data import keras_datasets

pytestmark = pytest.mark.backend  # every test here reads datasets through keras.datasets

REPO = Path(__file__).parent.parent
FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "no network in tests")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """Returns a function that points Keras at an empty cache `tmp_path/<name>` and gives its path."""
    keras()  # imported first: it reads KERAS_HOME once, at import

    def use(name="keras"):
        home = tmp_path / name
        (home / "datasets").mkdir(parents=True)
        monkeypatch.setenv("KERAS_HOME", str(home))
        monkeypatch.setattr("keras.src.backend.config._KERAS_DIR", str(home))
        return home

    return use


@pytest.fixture
def stand_ins(monkeypatch):
    # Keras checks its .npz files against the published files' sha256; a stand-in cannot match it.
    monkeypatch.setattr("keras.src.utils.file_utils.validate_file", lambda *args, **kwargs: True)


@pytest.fixture
def cache(keras_home, stand_ins):
    """A Keras cache with a tiny MNIST (60 train, 20 test) and Fashion-MNIST (30 train, 10 test)."""
    home = keras_home()
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 60), ("test", 20)):
        arrays[f"x_{split}"] = rng.integers(0, 256, (n, 28, 28), dtype="uint8")
        arrays[f"x_{split}"][0, 0, 0] = 255
        arrays[f"y_{split}"] = (np.arange(n) % 10).astype("uint8")
    np.savez(home / "datasets" / "mnist.npz", **arrays)
    fashion = home / "datasets" / "fashion-mnist"
    fashion.mkdir()
    for prefix, n in (("train", 30), ("t10k", 10)):
        images = rng.integers(0, 256, (n, 28, 28), dtype="uint8")
        labels = (np.arange(n)[::-1] % 10).astype("uint8")
        (fashion / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
        )
        (fashion / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(
            gzip.compress(struct.pack(">II", 2049, n) + labels.tobytes())
        )
        arrays[f"fashion_{prefix}"] = (images, labels)
    return arrays


def load(name, **fields):
    return data_lib.load(KerasData(source="keras", name=name, **fields), validation_split=0, seed=0)


def test_mnist_comes_with_its_test_split_class_names_and_rescale(cache):
    ds = load("mnist", rescale="1/255")
    assert ds.x_train.shape == (60, 28, 28) and ds.x_test.shape == (20, 28, 28)
    np.testing.assert_array_equal(ds.y_test, cache["y_test"])  # Keras's test split, not one of ours
    np.testing.assert_allclose(ds.x_test, cache["x_test"] / 255, rtol=1e-6)
    assert ds.x_train.min() >= 0 and ds.x_train.max() == pytest.approx(1.0)
    assert ds.class_names == [str(i) for i in range(10)]
    assert ds.preprocessing["class_names"] == ds.class_names and ds.preprocessing["task"] == "classification"


def test_fashion_mnist_reads_keras_idx_files(cache):
    raw = keras_datasets.read(KerasData(source="keras", name="fashion_mnist"))
    images, labels = cache["fashion_t10k"]
    assert raw.x.shape == (30, 28, 28) and raw.x.dtype == np.uint8  # as Keras gives them: nnrun rescales
    np.testing.assert_array_equal(raw.x_test, images)
    np.testing.assert_array_equal(raw.y_test, labels)
    assert raw.class_names == FASHION
    assert raw.origin == "data.name 'fashion_mnist'" and raw.names == ("x_train", "y_train")


def test_cifar_labels_are_flattened(monkeypatch):
    x, y = np.zeros((12, 32, 32, 3), "uint8"), (np.arange(12) % 10).astype("uint8").reshape(-1, 1)
    monkeypatch.setattr(keras().datasets.cifar10, "load_data", lambda: ((x, y), (x[:4], y[:4])))
    raw = keras_datasets.read(KerasData(source="keras", name="cifar10"))
    assert raw.y.shape == (12,) and raw.y_test.shape == (4,)
    assert raw.class_names[0] == "airplane" and len(keras_datasets.DATASETS["cifar100"][2]) == 100


def test_housing_is_regression_split_as_configured(keras_home, stand_ins):
    rng = np.random.default_rng(0)
    np.savez(keras_home() / "datasets" / "california_housing.npz", x=rng.random((50, 8)), y=rng.random(50) * 1e5)
    ds = load("california_housing", test_split=0.3)
    assert ds.class_names is None and ds.preprocessing["task"] == "regression"
    assert len(ds.x_train) == 35 and len(ds.x_test) == 15


def test_absent_dataset_is_one_line_that_says_where_and_how(runner, keras_home):
    home = keras_home("empty")
    result = runner.invoke(cli, ["check", str(REPO / "configs" / "mnist_mlp.yaml")])
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    for fragment in (
        "data.name 'mnist'",
        "not in the Keras cache",
        "could not be downloaded",
        str(home / "datasets" / "mnist.npz"),
        "KERAS_HOME",
    ):
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(
    "name, where",
    [
        ("fashion_mnist", "fashion-mnist/{train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images"),
        ("cifar10", "cifar-10-batches-py-target_archive"),
        ("cifar100", "cifar-100-python-target_archive"),
        ("boston_housing", "boston_housing.npz"),
    ],
)
def test_every_absent_dataset_names_its_files(keras_home, name, where):
    home = keras_home("empty")
    with pytest.raises(keras_datasets.DataError) as e:
        keras_datasets.read(KerasData(source="keras", name=name))
    assert f"Keras looks for {home / 'datasets'}/{where}" in str(e.value) and "\n" not in str(e.value)


def test_an_mnist_npz_that_is_not_keras_s_file_is_not_trained_on(keras_home):
    # Keras's loader takes mnist.npz only with its published sha256, else downloads it again; nnrun's own
    # reading of the cache must not take a file Keras would not (here the download fails: no network).
    home = keras_home()
    np.savez(home / "datasets" / "mnist.npz", x_train=np.zeros((6, 28, 28), "uint8"), y_train=np.arange(6) % 3)
    with pytest.raises(keras_datasets.DataError, match="not in the Keras cache and could not be downloaded"):
        keras_datasets.read(KerasData(source="keras", name="mnist"))


def test_unreadable_cache_file_is_bad_input_naming_it(cache):
    images = Path(os.environ["KERAS_HOME"]) / "datasets" / "fashion-mnist" / "t10k-images-idx3-ubyte.gz"
    images.write_bytes(gzip.compress(b"\0" * 20))  # a header and 4 pixels: not 10 images
    with pytest.raises(keras_datasets.DataError, match="cannot read .*t10k-images-idx3-ubyte.gz.*ValueError"):
        keras_datasets.read(KerasData(source="keras", name="fashion_mnist"))


@pytest.mark.slow
def test_train_mnist_config_end_to_end(runner, cache, tmp_path):
    small = ["model.layers.1.Dense.units=16", "model.layers.2.Dense.units=16", "training.epochs=1"]
    args = ["train", str(REPO / "configs" / "mnist_mlp.yaml"), "--quiet", "--set", f"output.dir={tmp_path / 'runs'}"]
    result = runner.invoke(cli, args + [a for s in small for a in ("--set", s)])
    assert result.exit_code == 0, result.output
    assert "Downloading" not in result.output
    run = Path(result.stdout.strip().splitlines()[-1])
    preprocessing = json.loads((run / "preprocessing.json").read_text())
    assert preprocessing["class_names"] == [str(i) for i in range(10)]
    assert preprocessing["rescale"] == pytest.approx(1 / 255) and preprocessing["one_hot_labels"] is True
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"train", "test"} and 0 <= metrics["test"]["accuracy"] <= 1
