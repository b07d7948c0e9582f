"""`nnrun check CONFIG`, `nnrun schema` and the CLI's error handling, through CliRunner.

`check` validates a config, loads its data and builds its model without
training or writing anything; bad input is exit code 2 with one `error:` line.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nnrun.cli.main import cli

REPO = Path(__file__).parent.parent


def assert_one_error_line(result, *fragments, code=2):
    """Exit `code`, a single `error:` line on stderr naming the place, no traceback."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: "), result.output
    assert result.stdout == "", result.output  # errors go to stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# check on good configs ----------------------------------------------------------


@pytest.mark.backend
def test_check_shows_the_model_and_the_data(runner, write_config, tmp_path):
    path = write_config()
    result = runner.invoke(cli, ["check", str(path)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.count("(Dense)") == 2  # one row per layer (Keras numbers their names per session)
    assert "Total params: 67" in out
    assert "data: 108 train, 12 validation, 30 test samples of shape (4,); 3 classes" in out
    assert out.strip().splitlines()[-1] == f"{path}: ok"


@pytest.mark.backend
def test_check_writes_nothing(runner, write_config, tmp_path):
    path = write_config()
    result = runner.invoke(cli, ["check", str(path)])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "runs").exists()
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.backend
def test_check_with_the_default_output_dir_writes_nothing(runner, write_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_config(output={})  # runs would go to ./runs
    result = runner.invoke(cli, ["check", path.name])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "runs").exists()


@pytest.mark.backend
def test_check_applies_set_overrides(runner, write_config):
    path = write_config()
    result = runner.invoke(cli, ["check", str(path), "--set", "training.validation_split=0", "--set", "seed=1"])
    assert result.exit_code == 0, result.output
    assert "data: 120 train, 0 validation, 30 test samples" in result.stdout


@pytest.mark.backend
def test_set_reaches_the_model(runner, write_config):
    path = write_config()
    result = runner.invoke(cli, ["check", str(path), "--set", "model.layers.1.Dense.units=4"])
    assert_one_error_line(result, "model.layers[1] (Dense)", "set units: 3")


# check on bad configs ------------------------------------------------------------

THREE_CLASS_OUTPUT = {"Dense": {"units": 3, "activation": "softmax"}}

BAD = [
    pytest.param(
        {"trainig": {"epochs": 2}},
        ["{path}", "unknown key 'trainig'", "did you mean 'training'?"],
        id="unknown-top-level-key",
    ),
    pytest.param(
        {"model": {"layers": [{"Dnse": {"units": 3}}]}},
        ["model.layers[0]", "unknown layer 'Dnse'", "did you mean 'Dense'?"],
        id="layer-typo",
    ),
    pytest.param(
        {"model": {"layers": [{"Dense": {"unitz": 3}}]}},
        ["model.layers[0] (Dense): unknown argument 'unitz'; did you mean 'units'?"],
        id="argument-typo",
    ),
    pytest.param(
        {"optimizer": "adamm"}, ["optimizer: unknown optimizer 'adamm'; did you mean 'adam'?"], id="optimizer-typo"
    ),
    pytest.param({"training": {"epochs": -1}}, ["{path}", "training.epochs", "-1"], id="negative-epochs"),
    pytest.param({"training": {"epochs": "ten"}}, ["{path}", "training.epochs", "'ten'"], id="string-epochs"),
    pytest.param(
        {"model": {"layers": [{"Dense": 8}, {"Dense": {"units": 4, "activation": "softmax"}}]}},
        ["model.layers[1] (Dense)", "4 units", "3 classes", "set units: 3"],
        id="output-units",
    ),
    pytest.param(
        {"model": {"layers": [{"Dense": {"units": 1, "activation": "sigmoid"}}]}, "loss": "binary_crossentropy"},
        ["loss: 'binary_crossentropy' needs 2 classes, the data has 3"],
        id="binary-loss-on-3-classes",
    ),
    pytest.param(
        {"model": {"layers": [{"Lambda": {"function": "x"}}, THREE_CLASS_OUTPUT]}},
        ["model.layers[0]", "'Lambda' cannot be used"],
        id="lambda",
    ),
    pytest.param(
        {"model": {"layers": [{"BatchNormalization": {"axis": 3}}, THREE_CLASS_OUTPUT]}},
        ["model.layers[0] (BatchNormalization)"],
        id="axis-out-of-range",
    ),
]


@pytest.mark.backend
@pytest.mark.parametrize("sections, fragments", BAD)
def test_bad_config_is_one_error_line(runner, write_config, sections, fragments):
    path = write_config(**sections)
    result = runner.invoke(cli, ["check", str(path)])
    assert_one_error_line(result, *(f.format(path=path) for f in fragments))


def test_yaml_syntax_error_names_the_line(runner, write_config):
    path = write_config(text="seed: 7\ndata: {source: sklearn, name: iris}\nloss: sparse_categorical_crossentropy: x\n")
    result = runner.invoke(cli, ["check", str(path)])
    assert_one_error_line(result, f"{path}:3:", "YAML syntax error")


def test_missing_config_file(runner, tmp_path):
    path = tmp_path / "nope.yaml"
    result = runner.invoke(cli, ["check", str(path)])
    assert_one_error_line(result, str(path), "does not exist")


def test_directory_as_config(runner, tmp_path):
    result = runner.invoke(cli, ["check", str(tmp_path)])
    assert_one_error_line(result, str(tmp_path), "not a file")


@pytest.mark.parametrize("text", ["", "- a\n- b\n"], ids=["empty", "list"])
def test_config_that_is_not_a_mapping(runner, write_config, text):
    path = write_config(text=text)
    assert_one_error_line(runner.invoke(cli, ["check", str(path)]), str(path), "expected a mapping")


def test_python_yaml_tags_are_refused_and_not_run(runner, write_config, tmp_path):
    marker = tmp_path / "pwned"
    path = write_config(
        text=f"seed: 7\ndata: !!python/object/apply:os.system ['touch {marker}']\nmodel: [Dense]\nloss: mse\n"
    )
    result = runner.invoke(cli, ["check", str(path)])
    assert_one_error_line(result, f"{path}:2", "python/object/apply:os.system", "not allowed")
    assert not marker.exists()


# --set on check -------------------------------------------------------------------


def test_set_invalid_value(runner, write_config):
    path = write_config()
    result = runner.invoke(cli, ["check", str(path), "--set", "training.epochs=-1"])
    assert_one_error_line(result, "training.epochs", "--set")


@pytest.mark.parametrize("item", ["foo", "=3"])
def test_set_without_key_and_value(runner, write_config, item):
    path = write_config()
    result = runner.invoke(cli, ["check", str(path), "--set", item])
    assert_one_error_line(result, f"--set {item}", "key.path=value")


def test_set_unknown_key_suggests(runner, write_config):
    path = write_config()
    result = runner.invoke(cli, ["check", str(path), "--set", "training.epoch=3"])
    assert_one_error_line(result, "unknown key 'epoch'", "did you mean 'epochs'?")


# schema, help and usage errors ------------------------------------------------------


def test_schema_is_json(runner):
    result = runner.invoke(cli, ["schema"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert {"data", "model", "training"} <= set(schema["properties"])


def test_help_lists_the_commands(runner):
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    for command in ("train", "check", "schema"):
        assert f"  {command}" in result.output


def test_no_command_shows_help(runner):
    result = runner.invoke(cli, [])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and "check" in result.output


def test_unknown_command(runner):
    result = runner.invoke(cli, ["frobnicate"])
    assert_one_error_line(result, "'frobnicate'")


@pytest.mark.parametrize("command", ["train", "check"])
def test_command_without_config(runner, command):
    result = runner.invoke(cli, [command])
    assert_one_error_line(result, "CONFIG")


def test_unknown_option(runner, write_config):
    result = runner.invoke(cli, ["check", str(write_config()), "--sett", "x=1"])
    assert_one_error_line(result, "--sett")


# TensorFlow is imported only where it is needed --------------------------------------

RUN_CLI = """
import sys
from nnrun.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("imported:", "tensorflow" in sys.modules or "keras" in sys.modules)
"""

LOAD_CONFIG = """
import sys
from nnrun.config import loading as config
config.load(sys.argv[1], ["training.epochs=3"])
print("imported:", "tensorflow" in sys.modules or "keras" in sys.modules)
"""


def imports_tensorflow(script, *args):
    """Runs `script` in a fresh interpreter; whether it imported TensorFlow or Keras."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("imported: "), proc.stdout + proc.stderr
    return last == "imported: True"


def test_help_does_not_import_tensorflow():
    assert not imports_tensorflow(RUN_CLI, "--help")


def test_schema_does_not_import_tensorflow():
    assert not imports_tensorflow(RUN_CLI, "schema")


def test_config_validation_does_not_import_tensorflow(write_config):
    assert not imports_tensorflow(LOAD_CONFIG, write_config())


def test_check_of_an_invalid_config_does_not_import_tensorflow(write_config):
    assert not imports_tensorflow(RUN_CLI, "check", write_config(training={"epochs": 0}))


@pytest.mark.backend
def test_whole_number_targets_with_a_regression_loss_suggest_task_regression(runner, write_config, tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "ages.npz", x=rng.normal(size=(400, 3)).astype("float32"), y=rng.integers(1, 90, 400))
    config = write_config(
        data={"source": "npz", "path": str(tmp_path / "ages.npz")},
        loss="mse",
        metrics=[],
        model=[{"Dense": {"units": 1}}],
    )
    result = runner.invoke(cli, ["check", str(config)])
    assert result.exit_code == 2, result.output
    assert "loss: 'mean_squared_error' is for continuous targets" in result.output, result.output
    assert "set data.task: regression" in result.output, result.output
    fixed = runner.invoke(cli, ["check", str(config), "--set", "data.task=regression"])
    assert fixed.exit_code == 0, fixed.output
    wide = runner.invoke(cli, ["check", str(config), "--set", "loss=sparse_categorical_crossentropy"])
    assert wide.exit_code == 2 and "data.task: regression" in wide.output, wide.output
