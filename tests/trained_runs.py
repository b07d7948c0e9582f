"""Tiny runs trained once per test session through the CLI, shared by the
evaluate and predict tests: iris (3 classes), a binary CSV table, an image
folder, an .npz regression and MNIST-like 28x28 arrays (one-hot labels).
Their fixtures are registered in conftest.py.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from nnrun.cli.main import cli

PNG = b"\x89PNG\r\n\x1a\n"
CITIES = ["Berlin", "Madrid", "Paris"]
COLOURS = {"cat": (200, 40, 40), "dog": (40, 200, 40), "owl": (40, 40, 200)}
FORMATS = [("RGB", "png"), ("L", "png"), ("RGBA", "png"), ("P", "png"), ("RGB", "jpg"), ("L", "bmp")]
DIGITS = [str(i) for i in range(10)]


# --- data, generated -------------------------------------------------------------------


def churn_table(n=120, seed=0):
    """A churn-like table: an id, two numeric columns, one text column, a 0/1 target."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n)
    city = rng.choice(CITIES, n)
    return pd.DataFrame(
        {
            "id": np.arange(1, n + 1),
            "age": age,
            "balance": rng.normal(50_000, 20_000, n).round(2),
            "city": city,
            "left": ((age > 55) | (city == "Berlin")).astype(int),
        }
    )


def make_image(path, colour=(120, 120, 120), size=(20, 24), mode="RGB"):
    image = Image.new("RGB", size, colour)
    image.putpixel((0, 0), (255, 255, 255))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.convert(mode).save(path)
    return path


def make_image_folder(root, counts):
    """`root/<class>/<i>.<ext>`: each class its colour, sizes and modes mixed."""
    for k, (name, n) in enumerate(counts.items()):
        for i in range(n):
            mode, ext = FORMATS[(i + k) % len(FORMATS)]
            colour = tuple(min(c + 5 * i, 255) for c in COLOURS[name])
            make_image(root / name / f"{name}_{i}.{ext}", colour, (12 + 5 * i, 30 - 2 * i), mode)
    return root


def digit_arrays(n, seed):
    """MNIST-like uint8 images (n, 28, 28): each class a bright bar in its own row band."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 10
    x = rng.integers(0, 60, (n, 28, 28)).astype("uint8")
    for image, label in zip(x, y, strict=True):
        image[2 + 2 * label : 4 + 2 * label, 4:24] = 250
    return x, y


# --- runs, trained once per session ------------------------------------------------------


@dataclass
class Trained:
    path: Path  # the run directory
    data: Path  # the folder its data and config were written to
    config_file: Path


_TRAINED = {}


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def train(config_file):
    result = invoke("train", config_file, "--quiet")
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip().splitlines()[-1])


def train_once(tmp_path_factory, name, make):
    """Trains the run `make(folder)` describes, once per session (test_predict.py shares it)."""
    key = (tmp_path_factory.getbasetemp(), name)
    if key not in _TRAINED:
        folder = tmp_path_factory.mktemp(name)
        config = {"seed": 7, **make(folder), "output": {"dir": str(folder / "runs")}}
        config_file = folder / f"{name}.yaml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        _TRAINED[key] = Trained(train(config_file), folder, config_file)
    return _TRAINED[key]


def dense(*units, last="softmax"):
    *hidden, out = units
    layers = [{"Dense": {"units": u, "activation": "relu"}} for u in hidden]
    return layers + [{"Dense": {"units": out, "activation": last}}]


def _iris(folder):
    return {
        "data": {"source": "sklearn", "name": "iris", "scale": "standard"},
        "model": dense(8, 3),
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "loss": "sparse_categorical_crossentropy",
        "metrics": ["accuracy"],
        "training": {"epochs": 2, "batch_size": 16},
    }


def _churn(folder):
    churn_table().to_csv(folder / "churn.csv", index=False)
    return {
        "data": {
            "source": "csv",
            "path": str(folder / "churn.csv"),
            "target": "left",
            "drop": ["id"],
            "scale": "standard",
        },
        "model": dense(8, 1, last="sigmoid"),
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "loss": "binary_crossentropy",
        "metrics": ["accuracy"],
        "training": {"epochs": 2, "batch_size": 16, "validation_split": 0},
    }


def _images(folder):
    make_image_folder(folder / "images", {name: 8 for name in COLOURS})
    return {
        "data": {"source": "images", "path": str(folder / "images"), "image_size": [16, 16], "rescale": "1/255"},
        "model": [
            {"Conv2D": {"filters": 4, "kernel_size": 3, "activation": "relu"}},
            {"MaxPooling2D": 2},
            "Flatten",
            {"Dense": {"units": 3, "activation": "softmax"}},
        ],
        "loss": "sparse_categorical_crossentropy",
        "metrics": ["accuracy"],
        "training": {"epochs": 2, "batch_size": 8, "validation_split": 0},
    }


def _regression(folder):
    x = np.random.default_rng(1).normal(size=(100, 3)).astype("float32")
    np.savez(folder / "regression.npz", x=x, y=x @ np.array([1.0, -2.0, 0.5], dtype="float32"))
    return {
        "data": {"source": "npz", "path": str(folder / "regression.npz")},
        "model": [{"Dense": {"units": 4, "activation": "relu"}}, {"Dense": 1}],
        "loss": "mse",
        "metrics": ["mae"],
        "training": {"epochs": 2, "batch_size": 16},
    }


def _digits(folder):
    x, y = digit_arrays(200, seed=2)
    np.savez(folder / "digits.npz", x_train=x[:150], y_train=y[:150], x_test=x[150:], y_test=y[150:])
    return {
        "data": {"source": "npz", "path": str(folder / "digits.npz"), "rescale": "1/255"},
        "model": ["Flatten", {"Dense": {"units": 10, "activation": "softmax"}}],
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "loss": "categorical_crossentropy",  # integer labels, one-hot encoded by nnrun
        "metrics": ["accuracy"],
        "training": {"epochs": 2, "batch_size": 32, "validation_split": 0},
    }


@pytest.fixture(scope="session")
def iris_run(tmp_path_factory):
    return train_once(tmp_path_factory, "iris", _iris)


@pytest.fixture(scope="session")
def churn_run(tmp_path_factory):
    return train_once(tmp_path_factory, "churn", _churn)


@pytest.fixture(scope="session")
def image_run(tmp_path_factory):
    return train_once(tmp_path_factory, "images", _images)


@pytest.fixture(scope="session")
def regression_run(tmp_path_factory):
    return train_once(tmp_path_factory, "regression", _regression)


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    return train_once(tmp_path_factory, "digits", _digits)
