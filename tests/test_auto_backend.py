"""`backend: auto`: the backend chosen per model before Keras loads, and the precedence over $KERAS_BACKEND."""

import pytest
import yaml
from click.testing import CliRunner

from nnrun.cli.main import cli
from nnrun.config import auto_backend
from nnrun.config import loading as config

CONV = [{"Conv2D": {"filters": 4, "kernel_size": 3}}, "Flatten", {"Dense": {"units": 3, "activation": "softmax"}}]


@pytest.fixture
def auto(monkeypatch):
    """Loads a config (TINY, updated) with $KERAS_BACKEND unset, as a user's shell has it."""
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.delenv(auto_backend.PROCESSES, raising=False)

    def load(write_config, **sections):
        return config.load(write_config(**sections))

    return load


def test_a_dense_network_trains_on_jax_and_says_why(auto, write_config):
    loaded = auto(write_config)
    assert loaded.backend == "jax"
    assert loaded.backend_reason.startswith("auto: dense layers only; JAX measured 0.")
    assert "(bench/README.md)" in loaded.backend_reason


@pytest.mark.parametrize(
    "sections, named",
    [
        ({"model": CONV}, "Conv2D layers"),
        ({"model": [{"LSTM": {"units": 4}}, {"Dense": {"units": 3}}]}, "LSTM layers"),
        ({"data": {"source": "images", "path": "x"}}, "an image folder"),
    ],
)
def test_convolutions_other_layers_and_image_folders_keep_tensorflow(auto, write_config, sections, named):
    loaded = auto(write_config, **sections)
    assert loaded.backend == "tensorflow"
    assert loaded.backend_reason.startswith(f"auto: {named}")
    assert "TensorFlow measured 6x faster than JAX" in loaded.backend_reason


def test_augmentation_is_not_a_dense_layer(write_config, monkeypatch):
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    loaded = config.load(write_config(), ["data={source: npz, path: x.npz, augmentation: [{RandomFlip: horizontal}]}"])
    assert (loaded.backend, loaded.backend_reason.split(";")[0]) == ("tensorflow", "auto: RandomFlip layers")


def test_several_processes_need_jax_whatever_the_layers(auto, write_config, monkeypatch):
    monkeypatch.setenv(auto_backend.PROCESSES, "2")
    loaded = auto(write_config, model=CONV, distribution="data_parallel")
    assert loaded.backend == "jax" and "several processes" in loaded.backend_reason


def test_without_jax_installed_a_dense_network_stays_on_tensorflow(auto, write_config, monkeypatch):
    real = auto_backend.importlib.util.find_spec
    monkeypatch.setattr(auto_backend.importlib.util, "find_spec", lambda name: None if name == "jax" else real(name))
    loaded = auto(write_config)
    assert loaded.backend == "tensorflow" and loaded.backend_reason.startswith("auto: JAX is not installed")


def test_the_config_wins_over_keras_backend_which_wins_over_auto(write_config, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    loaded = config.load(write_config())
    assert (loaded.backend, loaded.backend_reason) == ("tensorflow", "$KERAS_BACKEND")
    loaded = config.load(write_config(), ["backend=jax"])
    assert (loaded.backend, loaded.backend_reason) == ("jax", "named in the config")
    monkeypatch.delenv("KERAS_BACKEND")
    loaded = config.load(write_config(model=CONV, backend="jax"))
    assert loaded.backend == "jax"


def test_the_resolved_config_names_the_backend_chosen_so_a_resume_or_evaluate_keeps_it(
    auto, write_config, monkeypatch, tmp_path
):
    """resume, evaluate and sweeps read the run's config.yaml (or run.json): a later $KERAS_BACKEND changes nothing."""
    written = config.dump(auto(write_config))
    assert yaml.safe_load(written)["backend"] == "jax"
    (tmp_path / "config.yaml").write_text(written)
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    again = config.load(tmp_path / "config.yaml")
    assert (again.backend, again.backend_reason) == ("jax", "named in the config")


def test_a_sweeps_trials_keep_the_sweeps_reason(auto, write_config):
    from nnrun.sweep import space

    sweep = {"metric": "val_accuracy", "trials": 2, "parameters": {"optimizer.learning_rate": [0.01, 0.1]}}
    loaded = auto(write_config, sweep=sweep)
    trial = space.apply(loaded, {"optimizer.learning_rate": 0.1}, "trial 1")
    assert (trial.backend, trial.backend_reason) == ("jax", loaded.backend_reason)


def test_a_keras_backend_nnrun_does_not_train_on_is_named_as_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    path = tmp_path / "dense.yaml"
    path.write_text(
        "data: {source: sklearn, name: digits}\nmodel: [{Dense: {units: 10, activation: softmax}}]\n"
        "loss: sparse_categorical_crossentropy\n"
    )
    result = CliRunner().invoke(cli, ["check", str(path)])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1] == (
        "error: $KERAS_BACKEND: nnrun trains on tensorflow or jax; unset it for backend: auto; got 'torch'"
    )
