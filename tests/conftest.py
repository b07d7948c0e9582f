"""Shared fixtures: a CLI runner and tiny configs that train in seconds."""

import os
import shutil

import pytest
import yaml
from click.testing import CliRunner

from nnrun import backend

# Runs trained once per session, shared by the evaluate and predict tests.
from trained_runs import churn_run, digits_run, image_run, iris_run, regression_run  # noqa: F401

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Fixtures that train: a test that uses one, directly or through another fixture, is marked slow.
TRAINING_FIXTURES = {
    "tiny_template",
    "iris_run",
    "churn_run",
    "image_run",
    "regression_run",
    "digits_run",
    "interrupted_template",
    "interrupted_here",
    "augmented_image_run",
}


def pytest_collection_modifyitems(items):
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


_may_train = True  # whether the test being set up, run or torn down is marked slow


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Before the test's fixtures: a test not marked slow may not call `fit`, so `pytest -m "not slow"` stays fast."""
    global _may_train
    _may_train = item.get_closest_marker("slow") is not None


def _guarding_fit(load_keras):
    """`nnrun.backend.keras`, which every nnrun module loads Keras through, with `Model.fit` guarded once loaded.

    A test that trains in a child process is beyond it: mark that one by hand.
    """

    def keras():
        module = load_keras()
        fit = module.Model.fit
        if not getattr(fit, "guarded", False):

            def guarded_fit(self, *args, **kwargs):
                if not _may_train:  # pytest.fail: a BaseException, which nnrun's `except Exception` lets through
                    pytest.fail("this test trains (Model.fit) but is not marked slow: add @pytest.mark.slow", False)
                return fit(self, *args, **kwargs)

            guarded_fit.guarded = True
            module.Model.fit = guarded_fit
        return module

    return keras


# Before any test module imports nnrun's modules, which bind `keras` from nnrun.backend at import.
backend.keras = _guarding_fit(backend.keras)


TINY = {
    "seed": 7,
    "data": {"source": "sklearn", "name": "iris", "scale": "standard"},
    "model": {
        "layers": [{"Dense": {"units": 8, "activation": "relu"}}, {"Dense": {"units": 3, "activation": "softmax"}}]
    },
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


@pytest.fixture(scope="session")
def tiny_template(tmp_path_factory):
    """A completed TINY run trained once per session; tests get copies (`tiny_run`)."""
    from pathlib import Path

    from nnrun.cli.main import cli

    root = tmp_path_factory.mktemp("tiny-template")
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, "output": {"dir": str(root / "runs")}}, sort_keys=False))
    result = CliRunner().invoke(cli, ["train", str(config)])
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def tiny_run(tiny_template, tmp_path):
    """A completed TINY run of this test's own, in `tmp_path/runs` (a copy of the session's)."""
    return copy_run(tiny_template, tmp_path / "runs")


def copy_run(run, runs, name=None):
    """Copies a run directory into the folder `runs`, as `name` (default its own)."""
    copy = runs / (name or run.name)
    shutil.copytree(run, copy, symlinks=True)
    return copy


def interrupt_after(monkeypatch, epochs):
    """Makes the next training stop as Ctrl-C would, once `epochs` epochs are done and backed up."""
    import signal

    from nnrun.errors import Interrupted
    from nnrun.training import callbacks

    own = callbacks.StopOnSignal.on_epoch_end

    def stop(self, epoch, logs=None):
        if epoch + 1 == epochs:
            monkeypatch.setattr(callbacks.StopOnSignal, "on_epoch_end", own)
            raise Interrupted(signal.SIGINT)
        own(self, epoch, logs)

    monkeypatch.setattr(callbacks.StopOnSignal, "on_epoch_end", stop)
