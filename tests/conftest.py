"""Shared fixtures: a CLI runner and tiny configs that train in seconds."""

import os

import pytest
import yaml
from click.testing import CliRunner

# Runs trained once per session, shared by the evaluate and predict tests.
from trained_runs import churn_run, digits_run, image_run, iris_run, regression_run  # noqa: F401

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TINY = {
    "seed": 7,
    "data": {"source": "sklearn", "name": "iris", "scale": "standard"},
    "model": {"layers": [{"Dense": {"units": 8, "activation": "relu"}}, {"Dense": {"units": 3, "activation": "softmax"}}]},
    "optimizer": {"name": "adam", "learning_rate": 0.01},
    "loss": "sparse_categorical_crossentropy",
    "metrics": ["accuracy"],
    "training": {"epochs": 2, "batch_size": 16},
}


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def write_config(tmp_path):
    """Returns a function that writes a config (TINY, updated) and gives its path.

    Runs go to `tmp_path/runs`. Pass `text=` to write raw YAML instead.
    """

    def write(name="tiny.yaml", text=None, **sections):
        path = tmp_path / name
        if text is None:
            config = {**TINY, "output": {"dir": str(tmp_path / "runs")}, **sections}
            text = yaml.safe_dump(config, sort_keys=False)
        path.write_text(text)
        return path

    return write
