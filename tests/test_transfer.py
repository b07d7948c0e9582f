"""Transfer learning: keras.applications networks as layers, their weights, and fine-tuning."""

import csv
import json
import socket

import numpy as np
import pytest
import yaml

from nnrun.backend import keras
from nnrun.cli.main import cli

from conftest import TINY, interrupt_after
from trained_runs import COLOURS, make_image_folder

pytestmark = pytest.mark.backend  # every test here builds Keras applications

BACKBONE = {"include_top": False, "pooling": "avg", "alpha": 0.35}  # MobileNetV2's smallest
DIGITS = {"source": "sklearn", "name": "digits", "scale": "standard"}


def frozen_digits_sections(**fine_tune):
    """A digits config's sections, its first layer frozen: 1 epoch of training, then 2 of fine-tuning."""
    return {
        "data": DIGITS,
        "model": [{"Dense": {"units": 16, "activation": "relu", "trainable": False}}, {"Dense": 10}],
        "loss": {"name": "sparse_categorical_crossentropy", "from_logits": True},
        "training": {"epochs": 1, "batch_size": 64, "fine_tune": {"epochs": 2, **fine_tune}},
    }


def frozen_digits(write_config, **fine_tune):
    """A digits config file (`frozen_digits_sections`)."""
    return write_config(**frozen_digits_sections(**fine_tune))


def history(run):
    return list(csv.DictReader((run / "history.csv").read_text().splitlines()))


def info(run):
    return json.loads((run / "run.json").read_text())


def last_line(result):
    from pathlib import Path

    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "no network in tests")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.slow  # ~12 s on JAX
def test_a_backbone_gets_its_own_preprocessing_from_the_pixels_the_data_gives():
    from nnrun.model.build import build

    model = build(
        [{"MobileNetV2": {**BACKBONE, "weights": None, "trainable": False}}, {"Dense": 2}], (32, 32, 3), rescale=1 / 255
    )
    prepare, network, _ = model.layers
    assert not prepare.trainable and not network.trainable
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    expected = keras().applications.mobilenet_v2.preprocess_input(pixels.copy())
    np.testing.assert_allclose(keras().ops.convert_to_numpy(prepare(pixels / 255)), expected, atol=1e-5)


@pytest.mark.parametrize("name, module", [("ResNet50", "resnet50"), ("DenseNet121", "densenet")])
def test_channel_flips_and_per_channel_scaling_are_reproduced(name, module):
    from nnrun.model import backbones

    layer = backbones._preprocessing(getattr(keras().applications, name), name, None)
    pixels = np.random.default_rng(1).uniform(0, 255, (2, 4, 4, 3)).astype("float32")
    expected = getattr(keras().applications, module).preprocess_input(pixels.copy())
    np.testing.assert_allclose(keras().ops.convert_to_numpy(layer(pixels)), expected, atol=1e-3)


def test_networks_that_prepare_their_inputs_themselves_get_only_the_rescale_undone():
    from nnrun.model import backbones

    assert backbones._preprocessing(keras().applications.EfficientNetB0, "EfficientNetB0", None) is None
    undo = backbones._preprocessing(keras().applications.EfficientNetB0, "EfficientNetB0", 1 / 255)
    pixels = np.full((1, 2, 2, 3), 0.5, dtype="float32")
    np.testing.assert_allclose(keras().ops.convert_to_numpy(undo(pixels)), pixels * 255, rtol=1e-6)


@pytest.mark.slow
def test_a_frozen_network_loads_a_weights_file_and_fine_tuning_unfreezes_its_last_layers(
    runner,
    write_config,
    tmp_path,
    monkeypatch,
):
    make_image_folder(tmp_path / "photos", {name: 6 for name in COLOURS})
    pretrained = keras().applications.MobileNetV2(**BACKBONE, weights=None, input_shape=(32, 32, 3))
    pretrained.save_weights(tmp_path / "backbone.weights.h5")
    config = write_config(
        data={"source": "images", "path": str(tmp_path / "photos"), "image_size": [32, 32], "rescale": "1/255"},
        model=[
            {"MobileNetV2": {**BACKBONE, "weights": "backbone.weights.h5", "trainable": False}},
            {"Dense": {"units": 3, "activation": "softmax"}},
        ],
        training={"epochs": 1, "batch_size": 8, "validation_split": 0, "fine_tune": {"epochs": 1, "unfreeze": 10}},
    )
    monkeypatch.chdir(tmp_path)  # a relative weights path is read from where nnrun runs, as data.path is
    result = runner.invoke(cli, ["train", str(config)])
    assert result.exit_code == 0, result.output
    assert "fine-tuning from epoch 2: the last 10 layers of each frozen one unfrozen" in result.stderr
    run = last_line(result)
    resolved = yaml.safe_load((run / "config.yaml").read_text())["model"]["layers"][0]["MobileNetV2"]
    assert resolved["weights"] == str(tmp_path / "backbone.weights.h5"), "resumable from anywhere"
    assert info(run)["fine_tune_after_epoch"] == 1 and info(run)["epochs"] == 2
    assert [float(r["learning_rate"]) for r in history(run)] == pytest.approx([1e-2, 1e-4])  # the config's, a hundredth

    trained = keras().models.load_model(run / "model.keras", safe_mode=True).layers[1]
    layers = list(zip(pretrained.layers, trained.layers, strict=True))
    changed = {
        i
        for i, (old, new) in enumerate(layers)
        if any(not np.array_equal(a, b) for a, b in zip(old.get_weights(), new.get_weights(), strict=True))
    }
    batch_norms = {i for i, (old, _) in enumerate(layers) if isinstance(old, keras().layers.BatchNormalization)}
    unfrozen = set(range(len(layers) - 10, len(layers))) - batch_norms
    assert changed and changed <= unfrozen, "only the last 10 layers trained, never the statistics"

    predicted = runner.invoke(cli, ["predict", str(next((tmp_path / "photos" / "cat").iterdir())), "--run", str(run)])
    assert predicted.exit_code == 0, predicted.output


@pytest.fixture(scope="session")
def never_stopped(tmp_path_factory):
    """`frozen_digits` at a tenth of the learning rate for fine-tuning, trained without a stop; once per session."""
    from click.testing import CliRunner

    root = tmp_path_factory.mktemp("never-stopped")
    sections = frozen_digits_sections(learning_rate=0.001)
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, **sections, "output": {"dir": str(root / "runs")}}, sort_keys=False))
    whole = CliRunner().invoke(cli, ["train", str(config)])
    assert whole.exit_code == 0, whole.output
    return last_line(whole)


@pytest.mark.slow
@pytest.mark.parametrize("stop_after", [1, 2], ids=["at the end of training", "while fine-tuning"])
def test_a_run_stopped_around_fine_tuning_resumes_to_the_same_model(
    runner, write_config, monkeypatch, stop_after, never_stopped
):
    config = frozen_digits(write_config, learning_rate=0.001)
    interrupt_after(monkeypatch, stop_after)
    stopped = runner.invoke(cli, ["train", str(config)])
    assert stopped.exit_code == 130, stopped.output
    run = next(p for p in (config.parent / "runs").iterdir() if p.is_dir() and not p.is_symlink())
    resumed = runner.invoke(cli, ["resume", str(run)])
    assert resumed.exit_code == 0, resumed.output

    assert [int(r["epoch"]) for r in history(run)] == [1, 2, 3]
    assert [float(r["learning_rate"]) for r in history(run)] == pytest.approx([1e-2, 1e-3, 1e-3])
    assert info(run)["fine_tune_after_epoch"] == 1
    weights = [keras().models.load_model(r / "model.keras").get_weights() for r in (run, never_stopped)]
    for a, b in zip(*weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_check_says_when_fine_tuning_begins(runner, write_config):
    config = write_config(
        model=[{"Dense": {"units": 8, "trainable": False}}, {"Dense": {"units": 3, "activation": "softmax"}}],
        training={"epochs": 4, "fine_tune": {"epochs": 2, "unfreeze": "all"}},
    )
    result = runner.invoke(cli, ["check", str(config)])
    assert result.exit_code == 0, result.output
    assert (
        "fine-tuning from epoch 5: all frozen layers unfrozen (BatchNormalization stays frozen), learning rate 0.0001"
        in result.stdout
    )


@pytest.mark.slow
def test_a_run_resumed_while_fine_tuning_trains_longer_by_its_fine_tuning_epochs(runner, write_config, monkeypatch):
    config = frozen_digits(write_config)
    interrupt_after(monkeypatch, 2)
    stopped = runner.invoke(cli, ["train", str(config)])
    assert stopped.exit_code == 130, stopped.output
    run = next(p for p in (config.parent / "runs").iterdir() if not p.is_symlink())

    refused = runner.invoke(cli, ["resume", str(run), "--set", "training.epochs=3"])
    assert refused.exit_code == 2, refused.output
    assert (
        "fine-tuning began after epoch 1, so training.epochs no longer counts; "
        "train longer with --set training.fine_tune.epochs=N" in refused.stderr
    )
    longer = runner.invoke(cli, ["resume", str(run), "--set", "training.fine_tune.epochs=3"])
    assert longer.exit_code == 0, longer.output
    assert [int(r["epoch"]) for r in history(run)] == [1, 2, 3, 4]
    assert info(run)["epochs"] == 4 and info(run)["epochs_completed"] == 4 and info(run)["status"] == "completed"


@pytest.mark.slow
def test_train_resume_if_possible_continues_a_fine_tuning_run(runner, write_config, monkeypatch):
    config = frozen_digits(write_config)
    interrupt_after(monkeypatch, 2)
    assert runner.invoke(cli, ["train", str(config)]).exit_code == 130
    again = runner.invoke(cli, ["train", str(config), "--resume-if-possible"])
    assert again.exit_code == 0, again.output
    assert "resuming the unfinished run" in again.stderr
    assert [int(r["epoch"]) for r in history(last_line(again))] == [1, 2, 3]


@pytest.mark.slow
def test_weights_that_are_not_this_networks_are_bad_input(runner, write_config, tmp_path):
    (tmp_path / "photo.weights.h5").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    other = keras().applications.MobileNetV2(include_top=False, weights=None, alpha=0.5, input_shape=(32, 32, 3))
    other.save_weights(tmp_path / "other.weights.h5")
    for file in ("photo.weights.h5", "other.weights.h5"):
        config = write_config(
            data={"source": "npz", "path": str(_colour_arrays(tmp_path))},
            model=[{"MobileNetV2": {**BACKBONE, "weights": str(tmp_path / file)}}, {"Dense": 2}],
        )
        result = runner.invoke(cli, ["check", str(config)])
        assert result.exit_code == 2, result.output
        assert f"argument 'weights': '{tmp_path / file}' are not weights of this MobileNetV2" in result.stderr


@pytest.mark.parametrize(
    "layers, data, message",
    [
        ([{"Dense": 16}, {"Dense": 10}], DIGITS, "training.fine_tune: no layer has trainable: false"),
        (
            [{"MobileNetV2": {**BACKBONE, "weights": None}}, {"Dense": 10}],
            DIGITS,
            "takes colour images (height, width, 3)",
        ),
        (
            [{"MobileNetV2": {**BACKBONE, "weights": "absent.weights.h5"}}],
            DIGITS,
            "argument 'weights': no file 'absent.weights.h5'",
        ),
        ([{"MobileNetV2": {**BACKBONE, "input_shape": [32, 32, 3]}}], DIGITS, "remove 'input_shape'"),
        ([{"MobileNetv2": {}}], DIGITS, "unknown layer 'MobileNetv2'; did you mean 'MobileNetV2'?"),
        (
            [{"MobileNetV2": {**BACKBONE, "trainabel": False}}],
            DIGITS,
            "unknown argument 'trainabel'; did you mean 'trainable'?",
        ),
        (
            [{"MobileNetV2": {**BACKBONE, "weights": "imagenett"}}],
            DIGITS,
            "no file 'imagenett'; did you mean 'imagenet'?",
        ),
        (
            [{"MobileNetV2": {**BACKBONE, "pooling": "average"}}],
            DIGITS,
            "argument 'pooling': expected avg, max or null; got 'average'",
        ),
    ],
)
def test_mistakes_are_named_at_check(runner, write_config, layers, data, message):
    config = write_config(data=data, model=layers, training={"fine_tune": {"epochs": 1}})
    result = runner.invoke(cli, ["check", str(config)])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output


@pytest.mark.slow  # ~10 s on JAX
def test_absent_imagenet_weights_say_which_file_to_put_where(runner, write_config, tmp_path, monkeypatch, no_network):
    keras()  # imported first: it reads KERAS_HOME once, at import
    (tmp_path / "keras").mkdir()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr("keras.src.backend.config._KERAS_DIR", str(tmp_path / "keras"))
    config = write_config(
        data={"source": "npz", "path": str(_colour_arrays(tmp_path))},
        model=[{"MobileNetV2": {**BACKBONE, "weights": "imagenet"}}, {"Dense": {"units": 2, "activation": "softmax"}}],
    )
    result = runner.invoke(cli, ["check", str(config)])
    assert result.exit_code == 2, result.output
    assert "model.layers[0] (MobileNetV2): the ImageNet weights are not in the Keras cache" in result.stderr
    assert "put mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5" in result.stderr
    assert f"in {tmp_path / 'keras' / 'models'}/" in result.stderr


def _colour_arrays(tmp_path):
    x = np.random.default_rng(0).integers(0, 255, (20, 32, 32, 3)).astype("uint8")
    np.savez(tmp_path / "colours.npz", x=x, y=np.arange(20) % 2)
    return tmp_path / "colours.npz"
