"""The tutorial workflows in configs/: augmentation, rescaling, and the CIFAR-10
CNN trained end to end on generated 32x32x3 data (CIFAR-10 itself is not here)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from nnrun import data
from nnrun.cli.main import cli
from nnrun.config import loading as config
from nnrun.training.setup import setup

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


@pytest.fixture
def cifar_like(tmp_path):
    """An .npz shaped like CIFAR-10: 32x32x3 uint8 images in 10 classes."""
    rng = np.random.default_rng(0)
    y = np.arange(200) % 10
    x = rng.integers(0, 256, size=(200, 32, 32, 3), dtype=np.uint8)
    x[..., 0] = (y * 25)[:, None, None].astype(np.uint8)  # a learnable signal in the red channel
    path = tmp_path / "cifar_like.npz"
    np.savez(path, x_train=x[:160], y_train=y[:160, None], x_test=x[160:], y_test=y[160:, None])
    return path


def with_data(tmp_path, name, replacement, **training):
    """Writes a shipped config with its data source replaced, runs going to tmp_path/runs."""
    resolved = yaml.safe_load((CONFIGS / name).read_text())
    kept = {k: v for k, v in resolved["data"].items() if k in ("rescale", "augmentation", "scale")}
    resolved["data"] = {**replacement, **kept}
    resolved["training"].update(training)
    resolved["output"] = {"dir": str(tmp_path / "runs"), "name": Path(name).stem}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(resolved, sort_keys=False))
    return path


# TensorFlow pass only: on JAX, Keras's RandomTranslation (supports_jit False) makes the whole step run
# op by op, some 600 XLA compilations, 60-80 s for one epoch of 160 images. The JAX pass builds and calls
# this config's augmentation (test_augmentation_changes_images_in_training_only) and trains a CNN with
# augmentation from a shipped config (test_image_folder.py::test_shipped_config_trains_on_a_folder).
@pytest.mark.plots
@pytest.mark.slow
@pytest.mark.any_backend
def test_cifar10_cnn_trains_end_to_end_on_generated_images(runner, tmp_path, cifar_like):
    path = with_data(tmp_path, "cifar10_cnn.yaml", {"source": "npz", "path": str(cifar_like)}, epochs=1)
    result = runner.invoke(cli, ["train", str(path), "--quiet"])
    assert result.exit_code == 0, result.output
    run = Path(result.stdout.strip().splitlines()[-1])
    prep = json.loads((run / "preprocessing.json").read_text())
    assert prep["input_shape"] == [32, 32, 3] and prep["rescale"] == pytest.approx(1 / 255)
    assert prep["one_hot_labels"] is True
    assert (run / "plots" / "learning_curves.png").is_file() and (run / "model.best.keras").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"train", "validation", "test"}


@pytest.mark.slow  # ~12 s on JAX
def test_augmentation_changes_images_in_training_only(tmp_path, cifar_like):
    path = with_data(tmp_path, "cifar10_cnn.yaml", {"source": "npz", "path": str(cifar_like)})
    resolved = config.load(path)
    model = setup(resolved).model
    n_aug = len(resolved.data.augmentation)
    assert [type(layer).__name__ for layer in model.layers[:n_aug]] == [
        "RandomRotation",
        "RandomTranslation",
        "RandomFlip",
    ]
    x = np.random.default_rng(1).random((4, 32, 32, 3)).astype("float32")
    for layer in model.layers[:n_aug]:
        assert np.array_equal(np.asarray(layer(x, training=False)), x), layer.name
    augmented = x
    for layer in model.layers[:n_aug]:
        augmented = np.asarray(layer(augmented, training=True))
    assert augmented.shape == x.shape and not np.allclose(augmented, x)
    assert np.allclose(model.predict(x, verbose=0), model.predict(x, verbose=0))


def test_rescale_1_over_255_scales_pixels_into_0_1(tmp_path, cifar_like):
    path = with_data(tmp_path, "cifar10_cnn.yaml", {"source": "npz", "path": str(cifar_like)})
    resolved = config.load(path)
    ds = data.load(resolved.data, 0.1, 0)
    assert ds.x_train.dtype == np.float32 and 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    assert ds.x_train.max() > 0.9  # scaled, not crushed
    raw = np.load(cifar_like)["x_test"]
    assert np.allclose(data.transform(raw, ds.preprocessing), ds.x_test)


def test_only_random_layers_are_augmentation(write_config, runner):
    path = write_config(data={"source": "sklearn", "name": "iris", "augmentation": [{"Dense": 3}]})
    result = runner.invoke(cli, ["check", str(path)])
    assert result.exit_code == 2
    assert "data.augmentation[0]" in result.output and "Random" in result.output


@pytest.mark.parametrize("value, expected", [("1/255", 1 / 255), (0.5, 0.5), ("1./255", 1 / 255)])
def test_rescale_accepts_fractions(write_config, value, expected):
    path = write_config(data={"source": "sklearn", "name": "iris", "rescale": value})
    assert config.load(path).data.rescale == pytest.approx(expected)


KERAS_SHAPES = {"mnist": (28, 28), "fashion_mnist": (28, 28), "cifar10": (32, 32, 3)}


def stand_in_args(name, tmp_path):
    """`--set` arguments that give a shipped config data it can check against here.

    Configs whose data is on every machine get none; the others get generated
    data of the same shape and kind, everything else as shipped.
    """
    shipped = yaml.safe_load((CONFIGS / name).read_text())["data"]
    rng = np.random.default_rng(0)
    if shipped["source"] == "keras":
        y = np.arange(100) % 10
        x = rng.integers(0, 256, size=(100, *KERAS_SHAPES[shipped["name"]]), dtype=np.uint8)
        np.savez(tmp_path / "stand_in.npz", x_train=x[:80], y_train=y[:80], x_test=x[80:], y_test=y[80:])
        kept = {k: shipped[k] for k in ("rescale", "augmentation") if k in shipped}
        return ["--set", "data=" + json.dumps({"source": "npz", "path": str(tmp_path / "stand_in.npz"), **kept})]
    if shipped["source"] == "csv":  # the churn table's columns
        n = 100
        table = pd.DataFrame(
            {
                "RowNumber": range(n),
                "CustomerId": rng.integers(1e7, 2e7, n),
                "Surname": ["Smith"] * n,
                "CreditScore": rng.integers(350, 850, n),
                "Geography": rng.choice(["France", "Spain", "Germany"], n),
                "Gender": rng.choice(["Female", "Male"], n),
                "Age": rng.integers(18, 90, n),
                "Tenure": rng.integers(0, 10, n),
                "Balance": rng.random(n) * 1e5,
                "NumOfProducts": rng.integers(1, 4, n),
                "HasCrCard": rng.integers(0, 2, n),
                "IsActiveMember": rng.integers(0, 2, n),
                "EstimatedSalary": rng.random(n) * 1e5,
                "Exited": np.arange(n) % 2,
            }
        )
        table.to_csv(tmp_path / "churn.csv", index=False)
        return ["--set", f"data.path={tmp_path / 'churn.csv'}"]
    if shipped["source"] == "images":
        for i, label in enumerate(["a", "b", "c"]):
            (tmp_path / "images" / label).mkdir(parents=True)
            for j in range(6):
                Image.fromarray(np.full((24, 24, 3), 80 * i + j, np.uint8)).save(
                    tmp_path / "images" / label / f"{j}.png"
                )
        return ["--set", f"data.path={tmp_path / 'images'}", *random_weights(name)]
    return []


def random_weights(name):
    """`--set` arguments that start a shipped config's pretrained networks from random weights (no download)."""
    layers = yaml.safe_load((CONFIGS / name).read_text())["model"]["layers"]
    return [
        arg
        for i, spec in enumerate(layers)
        if isinstance(spec, dict)
        for layer, args in spec.items()
        if isinstance(args, dict) and args.get("weights") == "imagenet"
        for arg in ("--set", f"model.layers.{i}.{layer}.weights=null")
    ]


SHIPPED = sorted(p.name for p in CONFIGS.glob("*.yaml"))
# Convolutional networks JAX takes 3-8 s to build (MobileNetV2 the longest); the others check in ~1 s.
SLOW_TO_CHECK = {"images_transfer.yaml", "cifar10_cnn.yaml", "images_cnn.yaml"}


@pytest.mark.backend
@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=pytest.mark.slow) if name in SLOW_TO_CHECK else name for name in SHIPPED]
)
def test_every_shipped_config_passes_check(runner, name, tmp_path, monkeypatch):
    monkeypatch.chdir(CONFIGS.parent)  # relative data paths resolve from the repository root
    result = runner.invoke(cli, ["check", f"configs/{name}", *stand_in_args(name, tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == f"configs/{name}: ok"
