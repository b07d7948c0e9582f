"""End to end: `nnrun train` on tiny data writes a complete, truthful run directory."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import yaml

from nnrun.backend import keras
from nnrun.cli.main import cli

from conftest import full_disk, signalled

RUN_FILES = ["config.yaml", "run.json", "model.keras", "history.csv", "metrics.json", "preprocessing.json"]


def train(runner, config, *args):
    result = runner.invoke(cli, ["train", str(config), *args])
    return result, Path(result.stdout.strip().splitlines()[-1]) if result.exit_code == 0 else None


@pytest.mark.slow
@pytest.mark.plots
@pytest.mark.compiled  # the one end-to-end run in process as users run it: traced step functions and figures
def test_train_writes_every_file_with_sane_contents(runner, write_config):
    result, run = train(runner, write_config())
    assert result.exit_code == 0, result.output
    assert run.is_dir() and run.name.startswith("tiny-")
    for name in RUN_FILES:
        assert (run / name).is_file(), name
    assert sorted(p.name for p in (run / "plots").iterdir()) == ["confusion_matrix.png", "learning_curves.png"]
    assert all((run / "plots" / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in os.listdir(run / "plots"))
    assert not [p for p in run.iterdir() if p.name.startswith(".")], "temporary files left behind"

    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "completed"
    assert info["epochs_completed"] == 2 and info["seed"] == 7
    assert info["data_fingerprint"].startswith("sha256:")
    assert set(info["versions"]) >= {"python", "tensorflow", "keras", "nnrun"}
    assert info["duration_s"] > 0 and info["ended_at"] >= info["started_at"]

    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"train", "validation", "test"}
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0 and metrics["test"]["loss"] > 0

    rows = list(csv.DictReader((run / "history.csv").read_text().splitlines()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"} <= set(rows[0])

    prep = json.loads((run / "preprocessing.json").read_text())
    assert prep["class_names"] == ["setosa", "versicolor", "virginica"]
    assert prep["input_shape"] == [4] and prep["scaling"]["method"] == "standard"

    assert (run.parent / "latest").resolve() == run.resolve()
    assert "final metrics" in result.stderr and str(run) not in result.stderr.splitlines()[-1]


@pytest.mark.slow
def test_saved_model_loads_safely_and_reproduces_test_metrics(runner, write_config):
    import keras

    from nnrun import data
    from nnrun.config import loading as config

    path = write_config()
    result, run = train(runner, path)
    assert result.exit_code == 0, result.output
    model = keras.models.load_model(run / "model.keras", safe_mode=True)
    resolved = config.load(run / "config.yaml")
    ds = data.load(resolved.data, resolved.training.validation_split, resolved.seed)
    loss, accuracy = model.evaluate(ds.x_test, ds.y_test, verbose=0)
    metrics = json.loads((run / "metrics.json").read_text())["test"]
    assert accuracy == pytest.approx(metrics["accuracy"]) and loss == pytest.approx(metrics["loss"], rel=1e-4)


@pytest.mark.slow
def test_overrides_are_typed_and_land_in_the_resolved_config(runner, write_config):
    path = write_config(optimizer="adam")
    result, run = train(runner, path, "--set", "training.epochs=3", "--set", "optimizer.learning_rate=0.02")
    assert result.exit_code == 0, result.output
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["training"]["epochs"] == 3
    assert resolved["optimizer"] == {"name": "adam", "learning_rate": 0.02}
    assert resolved["training"]["batch_size"] == 16 and resolved["output"]["name"] == "tiny"
    assert len((run / "history.csv").read_text().splitlines()) == 1 + 3
    # The resolved config is itself a valid config.
    again, _ = train(runner, run / "config.yaml", "--set", "training.epochs=1")
    assert again.exit_code == 0, again.output


def test_bad_override_exits_2_without_a_run(runner, write_config, tmp_path):
    result, _ = train(runner, write_config(), "--set", "training.epochs=-1")
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "training.epochs" in result.output and "-1" in result.output
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
@pytest.mark.compiled
def test_same_config_and_seed_give_the_same_metrics(runner, write_config):
    path = write_config()
    # A fresh process (nothing carried over: random state, compiled graphs) and this one train at the
    # same time; each gets a complete run directory of its own.
    fresh = subprocess.Popen(
        [sys.executable, "-m", "nnrun", "train", str(path), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        here, run2 = train(runner, path)
        out, err = fresh.communicate(timeout=300)
    finally:
        if fresh.poll() is None:  # this one failed: the other is not left training
            fresh.kill()
            fresh.wait()
    assert fresh.returncode == 0 and here.exit_code == 0, err + here.output
    run1 = Path(out.strip().splitlines()[-1])
    assert run1 != run2, "two processes shared a run directory"
    for run in (run1, run2):
        assert json.loads((run / "run.json").read_text())["status"] == "completed"
        assert (run / "model.keras").is_file() and (run / "metrics.json").is_file()
    assert (run1.parent / "latest").resolve() in {run1.resolve(), run2.resolve()}
    assert not [p for p in run1.parent.iterdir() if p.name.startswith(".")], "temporary files left behind"
    # And once more in this process, after a run has trained in it.
    again, run3 = train(runner, path)
    assert again.exit_code == 0, again.output
    for run in (run2, run3):
        for name in ["metrics.json", "history.csv"]:
            assert (run / name).read_bytes() == (run1 / name).read_bytes(), f"{run.name}/{name}"
    weights = [keras().models.load_model(run / "model.keras").get_weights() for run in (run1, run2, run3)]
    for a, b, c in zip(*weights, strict=True):
        assert np.array_equal(a, b) and np.array_equal(a, c)
    # Another seed trains differently (so the equalities above say something).
    _, other = train(runner, path, "--set", "seed=8")
    assert (other / "history.csv").read_bytes() != (run1 / "history.csv").read_bytes()
    assert (other / "metrics.json").read_bytes() != (run1 / "metrics.json").read_bytes()


@pytest.mark.slow
def test_runs_in_the_same_second_never_overwrite(runner, write_config, monkeypatch):
    from types import SimpleNamespace

    from nnrun.rundir import files as rundir

    # Every run directory is named in the same second, as when runs start together.
    second = time.localtime()
    frozen = SimpleNamespace(strftime=lambda fmt, t=None: time.strftime(fmt, second), time=time.time)
    monkeypatch.setattr(rundir, "time", frozen)
    stem = f"tiny-{time.strftime('%Y%m%d-%H%M%S', second)}"
    path = write_config()
    runs = []
    for epochs in (1, 2, 3):  # a different run each time, to tell whose files are whose
        result, run = train(runner, path, "--set", f"training.epochs={epochs}")
        assert result.exit_code == 0, result.output
        runs.append(run)
    assert [r.name for r in runs] == [stem, f"{stem}-2", f"{stem}-3"]
    assert len({r.resolve() for r in runs}) == 3
    for epochs, run in enumerate(runs, start=1):
        for name in RUN_FILES:
            assert (run / name).is_file(), f"{run.name}/{name}"
        info = json.loads((run / "run.json").read_text())
        assert info["status"] == "completed" and info["epochs"] == epochs and info["epochs_completed"] == epochs
        assert yaml.safe_load((run / "config.yaml").read_text())["training"]["epochs"] == epochs
        rows = csv.DictReader((run / "history.csv").read_text().splitlines())
        assert [r["epoch"] for r in rows] == [str(e + 1) for e in range(epochs)]


@pytest.mark.slow
def test_quiet_prints_one_line_per_epoch_and_the_path_last(runner, write_config):
    result, run = train(runner, write_config(), "--quiet", "--set", "training.epochs=3")
    assert result.exit_code == 0, result.output
    epoch_lines = [line for line in result.stderr.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epoch_lines] == ["1/3", "2/3", "3/3"]
    assert "loss" in epoch_lines[0] and "val_accuracy" in epoch_lines[0]
    assert result.stdout.strip() == str(run)


@pytest.mark.slow
def test_h5_on_request_and_best_model_checkpoint(runner, write_config):
    import keras

    from nnrun import data
    from nnrun.config import loading as config

    # A learning rate so high that val_loss rises after its best epoch, which EarlyStopping
    # (patience 1) then ends on: the best model is not the last one.
    path = write_config(
        optimizer={"name": "adam", "learning_rate": 0.3},
        training={
            "epochs": 8,
            "batch_size": 16,
            "callbacks": [{"ModelCheckpoint": {"monitor": "val_loss"}}, {"EarlyStopping": {"patience": 1}}],
        },
        output={"dir": str(write_config().parent / "runs"), "save_h5": True},
    )
    result, run = train(runner, path)
    assert result.exit_code == 0, result.output
    val_losses = [float(r["val_loss"]) for r in csv.DictReader((run / "history.csv").read_text().splitlines())]
    best = int(np.argmin(val_losses))
    assert best < len(val_losses) - 1, f"the best epoch must not be the last one to test anything: {val_losses}"

    resolved = config.load(run / "config.yaml")
    ds = data.load(resolved.data, resolved.training.validation_split, resolved.seed)
    final = keras.models.load_model(run / "model.keras", safe_mode=True)
    h5 = keras.models.load_model(run / "model.h5")
    best_model = keras.models.load_model(run / "model.best.keras", safe_mode=True)
    for model in (h5, best_model):
        assert model.input_shape == final.input_shape == (None, 4) and model.output_shape == (None, 3)
    # model.h5 is the final model in another format: it predicts exactly as model.keras does.
    np.testing.assert_allclose(
        h5.predict(ds.x_test, verbose=0), final.predict(ds.x_test, verbose=0), rtol=1e-6, atol=1e-7
    )
    # model.best.keras is the model of the best epoch; model.keras that of the last.
    best_loss = best_model.evaluate(ds.x_val, ds.y_val, verbose=0)[0]
    final_loss = final.evaluate(ds.x_val, ds.y_val, verbose=0)[0]
    assert best_loss == pytest.approx(val_losses[best], rel=1e-4)
    assert final_loss == pytest.approx(val_losses[-1], rel=1e-4)
    assert best_loss < final_loss


def early_stopping(best_epoch, best, restore=True):
    """What `results.kept` reads of Keras's EarlyStopping once `fit` ended (`best_epoch` from 0)."""
    weights = [] if restore else None
    return types.SimpleNamespace(
        monitor="val_loss", restore_best_weights=restore, best_weights=weights, best_epoch=best_epoch, best=best
    )


def test_the_epoch_whose_weights_earlystopping_kept_is_said_unless_it_is_the_last():
    from nnrun.training import results

    rows = [{"epoch": e + 1, "val_loss": v} for e, v in enumerate([0.5, 0.3, 0.4, 0.45])]
    kept = results.kept([object(), early_stopping(1, 0.3)], rows)
    assert (kept.epoch, kept.epochs) == (2, 4)
    assert str(kept) == (
        "EarlyStopping kept the weights of epoch 2 of 4 (val_loss 0.3): "
        "model.keras and the final metrics are that epoch's"
    )
    # Nothing is restored, or the last epoch's weights: the model is the last epoch's.
    for callbacks in ([], [early_stopping(1, 0.3, restore=False)], [early_stopping(3, 0.45)]):
        assert results.kept(callbacks, rows) is None
    # Resumed after epoch 2, EarlyStopping had no weights of its best epoch: it took those of epoch 3.
    resumed = results.kept([early_stopping(2, 0.3)], rows)
    assert str(resumed) == (
        "EarlyStopping kept the weights of epoch 3 of 4 (val_loss 0.4): model.keras and the final metrics are that "
        "epoch's; its best val_loss, 0.3, came before the resume, and a backup keeps only the last epoch's weights"
    )


@pytest.mark.slow
def test_categorical_crossentropy_on_integer_labels_is_one_hot_encoded(runner, write_config):
    result, run = train(runner, write_config(loss="categorical_crossentropy"))
    assert result.exit_code == 0, result.output
    assert "one-hot" in result.stderr
    assert json.loads((run / "preprocessing.json").read_text())["one_hot_labels"] is True


@pytest.mark.slow
@pytest.mark.plots
def test_npz_regression_trains(runner, write_config, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3)).astype("float32")
    np.savez(tmp_path / "reg.npz", x=x, y=x @ np.array([1.0, -2.0, 0.5], dtype="float32"))
    path = write_config(
        data={"source": "npz", "path": str(tmp_path / "reg.npz")},
        model=[{"Dense": {"units": 4, "activation": "relu"}}, {"Dense": 1}],
        loss="mse",
        metrics=["mae"],
    )
    result, run = train(runner, path)
    assert result.exit_code == 0, result.output
    assert json.loads((run / "preprocessing.json").read_text())["task"] == "regression"
    assert not (run / "plots" / "confusion_matrix.png").exists()
    assert "mae" in json.loads((run / "metrics.json").read_text())["test"]


@pytest.mark.slow
def test_diverging_loss_fails_with_exit_1_and_status_failed(runner, write_config, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3)).astype("float32")
    np.savez(tmp_path / "reg.npz", x=x, y=x.sum(axis=1))
    path = write_config(
        data={"source": "npz", "path": str(tmp_path / "reg.npz")},
        model=[{"Dense": 8}, {"Dense": 1}],
        optimizer={"name": "sgd", "learning_rate": 1e8},
        loss="mse",
        metrics=[],
    )
    result = runner.invoke(cli, ["train", str(path)])
    assert result.exit_code == 1, result.output
    (run,) = (tmp_path / "runs").glob("tiny-*")
    info = json.loads((run / "run.json").read_text())
    assert "training diverged" in result.stderr and "learning_rate" in result.stderr, (result.stderr, info)
    assert not (tmp_path / "runs" / "latest").exists(), "latest points only at completed runs"
    assert info["status"] == "failed" and "diverged" in info["error"]
    assert not (run / "model.keras").exists(), "no epoch finished with a finite loss: no model to keep"


@pytest.mark.slow
def test_ctrl_c_saves_the_last_finished_epoch_and_says_interrupted(runner, write_config, tmp_path):
    path = write_config(
        data={"source": "sklearn", "name": "digits"},
        model=[{"Dense": 32}, {"Dense": {"units": 10, "activation": "softmax"}}],
    )
    # SIGINT from outside, as Ctrl-C sends it, once two epochs are done (the handler is nnrun's, in this process).
    with signalled(signal.SIGINT, epochs=2):
        result = runner.invoke(cli, ["train", str(path), "--quiet", "--set", "training.epochs=10000"])
    out, err = result.stdout, result.stderr
    assert result.exit_code == 130, result.output
    (run,) = (tmp_path / "runs").glob("tiny-*")
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "interrupted" and info["epochs_completed"] >= 2
    assert "interrupted (Ctrl-C) after" in err and "Traceback" not in err
    assert info["signal"] == "SIGINT" and f"nnrun resume {run}" in err
    assert out.strip() == str(run), "stdout names the run directory, to resume it"
    assert len((run / "history.csv").read_text().splitlines()) - 1 >= info["epochs_completed"]
    assert not [p for p in run.iterdir() if p.name.startswith(".")], "temporary files left behind"
    import keras

    model = keras.models.load_model(run / "model.keras", safe_mode=True)
    assert model.output_shape == (None, 10)


@pytest.mark.slow
def test_a_regression_learns_targets_far_from_zero_in_their_own_units(runner, write_config, tmp_path):
    # Body masses around 4200 g: a network starting near 0 spends its epochs reaching the mean, unless the
    # targets are standardized; a Rescaling layer at the end keeps loss, metrics and predictions in grams.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3)).astype("float32")
    y = 4200 + 600 * x[:, 0] + rng.normal(0, 50, 300)
    np.savez(tmp_path / "mass.npz", x=x, y=y)
    config = write_config(
        data={"source": "npz", "path": str(tmp_path / "mass.npz"), "task": "regression"},
        model=[{"Dense": {"units": 8, "activation": "relu"}}, {"Dense": {"units": 1}}],
        loss="mse",
        metrics=["mae"],
        training={"epochs": 3, "batch_size": 16, "validation_split": 0},
    )
    maes, runs = {}, {}
    for scaled in (True, False):
        result = runner.invoke(cli, ["train", str(config), "--quiet", "--set", f"data.scale_target={scaled}"])
        assert result.exit_code == 0, result.output
        runs[scaled] = Path(result.stdout.strip().splitlines()[-1])
        maes[scaled] = json.loads((runs[scaled] / "metrics.json").read_text())["test"]["mae"]
    assert maes[True] < 300 < 3000 < maes[False], maes  # the std of y is about 600
    np.save(tmp_path / "rows.npy", x[:20])
    predicted = runner.invoke(cli, ["predict", str(tmp_path / "rows.npy"), "--run", str(runs[True]), "--json"])
    assert predicted.exit_code == 0, predicted.output
    values = np.array([json.loads(line)["value"] for line in predicted.stdout.splitlines()])
    assert np.abs(values - y[:20]).mean() < 300, values  # grams, not standardized units


def test_importing_any_nnrun_module_imports_no_keras():
    # A fresh interpreter: in this one, other tests have loaded Keras already.
    code = (
        "import importlib, pkgutil, sys, nnrun\n"
        "names = [m.name for m in pkgutil.walk_packages(nnrun.__path__, 'nnrun.') if m.name != 'nnrun.__main__']\n"
        "for name in names: importlib.import_module(name)\n"
        "assert 'nnrun.training.callbacks' in names and len(names) > 40, names\n"
        "print(sorted(m for m in ('keras', 'tensorflow', 'jax') if m in sys.modules))\n"
    )
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "[]", (
        "importing nnrun's modules loaded Keras, so import order would pick the backend"
    )


# How a run ends (nnrun.training.outcome), on a run directory that never trained: what it records and raises.


class _Untrained:
    """An `outcome.LastEpoch` with no epoch finished: nothing to keep, no Keras."""

    def __init__(self, source="sklearn"):
        from types import SimpleNamespace

        self.recorder = SimpleNamespace(rows=[], weights=None, weights_epoch=0)
        self.config = SimpleNamespace(data=SimpleNamespace(source=source))
        self.kept = 0

    def keep(self, run_dir):
        self.kept += 1
        return ""


def _ending(tmp_path, raised, source="sklearn", writer=True, report=None):
    from nnrun import atomic
    from nnrun.reporter import Reporter
    from nnrun.training import outcome

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    atomic.write_json(run_dir / "run.json", {"status": "running"})
    last = _Untrained(source)
    report = report or Reporter(quiet=True)
    with pytest.raises(BaseException) as caught:
        with outcome.Outcome(run_dir, time.time(), report, last, writer, streamed=False):
            raise raised
    return caught.value, json.loads((run_dir / "run.json").read_text()), run_dir, last


def test_a_plain_ctrl_c_leaves_as_interrupted_carrying_the_run_directory(tmp_path):
    from nnrun.errors import Interrupted

    error, info, run_dir, last = _ending(tmp_path, KeyboardInterrupt())
    assert isinstance(error, Interrupted) and error.run_dir == run_dir and error.exit_code == 130
    assert (info["status"], info["signal"], info["error"], info["epochs_completed"]) == (
        "interrupted",
        "SIGINT",
        "interrupted (Ctrl-C)",
        0,
    )
    assert last.kept == 1 and len(info["attempts"]) == 1


def test_a_stop_signal_on_another_process_leaves_without_the_run_directory(tmp_path):
    from nnrun.errors import Interrupted

    error, info, _, _ = _ending(tmp_path, Interrupted(signal.SIGTERM), writer=False)
    assert isinstance(error, Interrupted) and error.run_dir is None and error.exit_code == 143
    assert (info["status"], info["error"]) == ("interrupted", "stopped by SIGTERM")


def test_nnrun_errors_leave_as_they_were_raised_carrying_the_run_directory(tmp_path):
    from nnrun.errors import DataError

    raised = DataError("data.path: gone")
    error, info, run_dir, last = _ending(tmp_path, raised)
    assert type(error) is DataError and str(error) == "data.path: gone" and error.exit_code == 2
    assert error.run_dir == run_dir and raised.run_dir is None, "a new error carries it; the raised one is unchanged"
    assert (info["status"], info["error"], last.kept) == ("failed", "data.path: gone", 0)


def test_a_divergence_keeps_the_last_epoch_and_fails_with_exit_1(tmp_path):
    from nnrun.errors import Diverged

    error, info, run_dir, last = _ending(
        tmp_path, Diverged("the loss became nan at epoch 3, batch 1: training diverged")
    )
    assert type(error) is Diverged and error.exit_code == 1 and error.run_dir == run_dir
    assert last.kept == 1 and info["status"] == "failed" and info["error"] == str(error)


def test_an_unexpected_error_is_recorded_with_its_reason_and_traceback(tmp_path):
    from nnrun.errors import RunFailed

    error, info, run_dir, _ = _ending(tmp_path, ZeroDivisionError("division by zero"))
    assert type(error) is RunFailed and error.run_dir == run_dir and error.exit_code == 1
    assert str(error) == (
        f"ZeroDivisionError: division by zero (details in {run_dir / 'run.json'}; nnrun resume {run_dir} continues it)"
    )
    assert info["error"] == "ZeroDivisionError: division by zero" and "ZeroDivisionError" in info["traceback"]
    assert isinstance(error.__cause__, ZeroDivisionError)


def test_what_is_not_a_runs_ending_passes_through_unrecorded(tmp_path):
    error, info, _, last = _ending(tmp_path, SystemExit(3))
    assert type(error) is SystemExit and info == {"status": "running"} and last.kept == 0


def test_an_ending_that_cannot_be_recorded_is_said_in_the_same_line(tmp_path, monkeypatch, capsys):
    from nnrun.reporter import Reporter

    full_disk(monkeypatch, "run.json", after=1)  # the run's first run.json is written
    error, info, run_dir, _ = _ending(tmp_path, ZeroDivisionError("division by zero"), report=Reporter())
    assert info == {"status": "running"} and error.exit_code == 1, "nothing could be recorded; the run still fails"
    assert str(error) == (
        f"ZeroDivisionError: division by zero (details in {run_dir / 'run.json'}; nnrun resume {run_dir} continues it) "
        f"(could not record 'failed' in {run_dir / 'run.json'}: No space left on device)"
    )
    assert capsys.readouterr() == ("", ""), "one line, the error's own"


def test_an_interruption_that_cannot_be_recorded_is_said_before_how_to_continue(tmp_path, monkeypatch, capsys):
    from nnrun.reporter import Reporter

    full_disk(monkeypatch, "run.json", after=1)
    _, info, run_dir, _ = _ending(tmp_path, KeyboardInterrupt(), report=Reporter())
    assert info == {"status": "running"}
    said = capsys.readouterr().err.splitlines()
    assert said[0] == (
        f"error: could not record 'interrupted' in {run_dir / 'run.json'}: No space left on device; "
        "the run interrupted: interrupted (Ctrl-C)"
    )
    assert said[1].startswith("interrupted (Ctrl-C) after 0 epochs") and len(said) == 2


def test_a_completed_run_that_cannot_be_recorded_is_an_error(tmp_path, monkeypatch):
    from nnrun import atomic
    from nnrun.errors import WriteFailed
    from nnrun.reporter import Reporter
    from nnrun.training import outcome

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    atomic.write_json(run_dir / "run.json", {"status": "running"})
    full_disk(monkeypatch, "run.json")
    with pytest.raises(WriteFailed) as caught:
        with outcome.Outcome(run_dir, time.time(), Reporter(quiet=True), _Untrained("sklearn"), True, streamed=False):
            pass
    assert caught.value.run_dir == run_dir, "nnrun prints its path: the model and metrics are there"
    assert str(caught.value) == (
        f"no space left on device writing '{run_dir / 'run.json'}'; "
        "the run's model and metrics are saved, but its run.json could not record that it completed"
    )


# Backend errors known by their class (nnrun.training.reasons), never by their name.


def _fake_module(monkeypatch, name, **classes):
    from types import ModuleType

    module = ModuleType(name)
    for key, value in classes.items():
        setattr(module, key, value)
    monkeypatch.setitem(sys.modules, name, module)


def test_tensorflow_errors_are_known_by_class_only_once_tensorflow_is_loaded(monkeypatch):
    from types import SimpleNamespace

    from nnrun.training import reasons

    class ResourceExhaustedError(Exception):  # TensorFlow's name, not its class
        pass

    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    assert not reasons.is_backend_error(ResourceExhaustedError("OOM"), "out_of_memory")
    assert "tensorflow" not in sys.modules, "asking imports nothing"
    assert reasons.reason(ResourceExhaustedError("OOM when allocating"), streamed=False) == (
        "ResourceExhaustedError: OOM when allocating"
    )

    class OutOfMemory(Exception):
        pass

    class Unreadable(Exception):
        pass

    _fake_module(
        monkeypatch,
        "tensorflow",
        errors=SimpleNamespace(ResourceExhaustedError=OutOfMemory, InvalidArgumentError=Unreadable),
    )
    assert reasons.is_backend_error(OutOfMemory(), "out_of_memory")
    assert not reasons.is_backend_error(ResourceExhaustedError(), "out_of_memory")
    assert reasons.reason(OutOfMemory("OOM"), streamed=False) == "ran out of memory; try a smaller training.batch_size"
    assert reasons.reason(Unreadable("jpeg::Uncompress failed"), streamed=True) == (
        "a file of the data could not be read during training (a corrupt image?): jpeg::Uncompress failed"
    )
    assert reasons.reason(Unreadable("shapes differ"), streamed=False) == "Unreadable: shapes differ"


def test_jax_running_out_of_memory_is_known_by_its_class_and_xla_status(monkeypatch):
    from nnrun.training import reasons

    class JaxRuntimeError(RuntimeError):
        pass

    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    _fake_module(monkeypatch, "jax.errors", JaxRuntimeError=JaxRuntimeError)
    assert reasons.is_backend_error(
        JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 8 bytes"), "out_of_memory"
    )
    assert not reasons.is_backend_error(JaxRuntimeError("INTERNAL: something else"), "out_of_memory")
    assert not reasons.is_backend_error(RuntimeError("RESOURCE_EXHAUSTED: Out of memory"), "out_of_memory")
    assert not reasons.is_backend_error(JaxRuntimeError("INVALID_ARGUMENT: x"), "invalid_argument")


@pytest.mark.slow  # imports TensorFlow and JAX
def test_the_real_backend_errors_are_known():
    from nnrun.backend import tensorflow
    from nnrun.training import reasons

    tf = tensorflow()
    import jax.errors

    assert reasons.is_backend_error(tf.errors.ResourceExhaustedError(None, None, "OOM"), "out_of_memory")
    assert reasons.is_backend_error(tf.errors.InvalidArgumentError(None, None, "bad jpeg"), "invalid_argument")
    assert not reasons.is_backend_error(tf.errors.InvalidArgumentError(None, None, "x"), "out_of_memory")
    assert reasons.is_backend_error(jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory"), "out_of_memory")


def test_errors_carry_their_run_directory_from_where_they_are_raised(tmp_path):
    from nnrun.errors import ConfigError, Interrupted, RunFailed

    assert RunFailed("diverged", run_dir=tmp_path).run_dir == tmp_path and RunFailed("diverged").run_dir is None
    assert Interrupted(signal.SIGTERM, run_dir=tmp_path).run_dir == tmp_path
    raised = ConfigError("model.layers[0]: unknown")
    again = raised.within(tmp_path)
    assert (type(again), str(again), again.run_dir, raised.run_dir) == (ConfigError, str(raised), tmp_path, None)
