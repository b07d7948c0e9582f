"""Keras's backend: chosen in the config, recorded, and a run trained on one is used on the other."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nnrun import backend
from nnrun.cli.main import cli

from conftest import BACKEND

OTHER = {"tensorflow": "jax", "jax": "tensorflow"}


def running():
    import keras

    return keras.backend.backend()


def train_in_a_process(config, backend_name):
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    done = subprocess.run(
        [sys.executable, "-m", "nnrun", "train", str(config), "--quiet", "--set", f"backend={backend_name}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_run_trained_on_the_other_backend_evaluates_and_predicts_here(runner, write_config, tmp_path):
    other = OTHER[running()]
    run = train_in_a_process(write_config(), other)
    info = json.loads((run / "run.json").read_text())
    assert info["backend"] == other
    assert ("jax" in info["versions"]) == (other == "jax")
    assert f"backend: {other}" in (run / "config.yaml").read_text()

    scored = runner.invoke(cli, ["evaluate", str(run), "--json"])
    assert scored.exit_code == 0, scored.output
    test = json.loads((run / "metrics.json").read_text())["test"]
    assert json.loads(scored.stdout)["metrics"]["accuracy"] == pytest.approx(test["accuracy"])
    assert json.loads(scored.stdout)["metrics"]["loss"] == pytest.approx(test["loss"], rel=1e-4)
    np.save(tmp_path / "x.npy", np.array([[5.1, 3.5, 1.4, 0.2]], dtype="float32"))
    predicted = runner.invoke(cli, ["predict", str(tmp_path / "x.npy"), "--run", str(run), "--json"])
    assert predicted.exit_code == 0, predicted.output


@pytest.mark.backend
def test_check_says_which_backend_a_run_will_use_and_why(runner, write_config):
    result = runner.invoke(cli, ["check", str(write_config())])
    assert result.exit_code == 0, result.output
    assert f"backend: {BACKEND} ($KERAS_BACKEND)" in result.stdout.splitlines()  # conftest sets it for the pass
    named = runner.invoke(cli, ["check", str(write_config()), "--set", f"backend={BACKEND}"])
    assert named.exit_code == 0, named.output
    assert f"backend: {BACKEND} (named in the config)" in named.stdout.splitlines()


def test_a_backend_not_installed_names_the_extra(runner, write_config, monkeypatch):
    real = backend.importlib.util.find_spec
    monkeypatch.setattr(backend.importlib.util, "find_spec", lambda name: None if name == "jax" else real(name))
    result = runner.invoke(cli, ["check", str(write_config()), "--set", "backend=jax"])
    assert result.exit_code == 2
    assert result.output == "error: backend: jax is not installed; pip install 'nnrun[jax]'\n"


def test_another_backend_than_the_one_running_is_refused_in_one_line(runner, write_config):
    import keras  # noqa: F401  (this test process runs Keras already)

    other = OTHER[running()]
    result = runner.invoke(cli, ["check", str(write_config()), "--set", f"backend={other}"])
    assert result.exit_code == 2
    assert f"backend: {other}, but this process already runs Keras on {running()}" in result.output


@pytest.mark.slow
@pytest.mark.skipif(BACKEND != "tensorflow", reason="its process runs on JAX whatever the pass: the TF pass runs it")
def test_auto_trains_a_dense_network_on_jax_says_why_and_evaluates_there_without_tensorflow(write_config, tmp_path):
    # A user's shell: no $KERAS_BACKEND, a config that names no backend. TensorFlow's import is 2-3 s of every
    # JAX run that does not stream images; evaluate and predict, in a process of their own, load the model
    # on the backend run.json names.
    np.save(tmp_path / "x.npy", np.array([[5.1, 3.5, 1.4, 0.2]], dtype="float32"))
    script = (
        "import sys\n"
        "from nnrun.cli.main import main\n"
        "for args in sys.argv[1:]:\n"
        "    try:\n"
        "        main(args.split())\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, (args, e.code)\n"
        "print(sys.modules['keras'].backend.backend(), 'tensorflow' in sys.modules)\n"
    )
    run = tmp_path / "runs" / "latest"
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    for commands in ([f"train {write_config()} -q"], [f"evaluate {run}", f"predict {tmp_path / 'x.npy'} --run {run}"]):
        done = subprocess.run(
            [sys.executable, "-c", script, *commands], capture_output=True, text=True, env=env, timeout=300
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[-1] == "jax False", (commands, done.stdout)
    info = json.loads((run / "run.json").read_text())
    assert info["backend"] == "jax" and info["versions"]["tensorflow"]
    assert info["backend_reason"].startswith("auto: dense layers only; JAX measured")
    assert "backend: jax" in (run / "config.yaml").read_text()


@pytest.mark.backend
def test_the_keras_internal_that_spares_jax_a_tensorflow_import_is_still_there():
    """backend._tell_keras_whether_tensorflow_is_loaded sets Keras's private lazy-module flag (keras.src);
    a Keras release that renames it would bring back the 2-3 s TensorFlow import on JAX without a word."""
    backend.keras()
    from keras.src.utils import module_utils

    lazy = module_utils.tensorflow
    assert hasattr(lazy, "_available"), "keras.src.utils.module_utils.tensorflow has no _available any more"
    backend._tell_keras_whether_tensorflow_is_loaded()
    assert lazy._available == ("tensorflow" in sys.modules)
