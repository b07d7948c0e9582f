"""nnrun sweep: trials as runs, the table, the best config, stopping and continuing."""

import csv
import importlib.util
import json
import os
import shutil
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from nnrun.cli.main import cli

from conftest import TINY, copy_run

# Found, not imported: importing Optuna costs every collection a second.
pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("optuna") is None, reason="the sweep extra: pip install 'nnrun[sweep]'"
    ),
    # A sweep's bookkeeping is the same on both backends; the two tests that train and prune through
    # Keras callbacks are marked backend and run in the JAX pass too.
    pytest.mark.any_backend,
]

SPACE = {
    "metric": "val_accuracy",
    "trials": 4,
    "seed": 3,
    "parameters": {
        "optimizer.learning_rate": {"low": 1e-3, "high": 1e-1, "log": True},
        "model.layers.0.Dense.units": [4, 8, 16],
    },
}


def sweep_config(write_config, **sweep):
    return write_config(sweep={**SPACE, **sweep}, training={"epochs": 2, "batch_size": 16})


def table(sweep_dir):
    with open(sweep_dir / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


def sweep_dir_of(result):
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.mark.plots
@pytest.mark.slow
@pytest.mark.backend
def test_a_sweep_runs_its_trials_as_runs_and_writes_a_best_config(runner, write_config, tmp_path):
    result = runner.invoke(cli, ["sweep", str(sweep_config(write_config))])
    assert result.exit_code == 0, result.output
    sweep_dir = sweep_dir_of(result)
    assert sweep_dir.parent == tmp_path / "runs" and sweep_dir.name.startswith("tiny-sweep-")
    rows = table(sweep_dir)
    assert [r["trial"] for r in rows] == ["1", "2", "3", "4"]
    assert all(r["state"] == "complete" for r in rows), rows
    for row in rows:
        run = sweep_dir / row["run_dir"]
        info = json.loads((run / "run.json").read_text())
        assert info["status"] == "completed" and run.parent == sweep_dir / "trials"
        kept = json.loads((run / "metrics.json").read_text())["validation"]
        assert float(row["val_accuracy"]) == pytest.approx(kept["accuracy"])
        assert f"units: {row['model.layers.0.Dense.units']}" in (run / "config.yaml").read_text()
        assert 1e-3 <= float(row["optimizer.learning_rate"]) <= 1e-1
    # One line per trial, with its parameters, its result and the best so far.
    assert result.stderr.count("] trial ") == 4 and "best " in result.stderr
    best = max(rows, key=lambda r: float(r["val_accuracy"]))
    state = json.loads((sweep_dir / "sweep.json").read_text())
    assert state["status"] == "completed" and state["best"]["value"] == pytest.approx(float(best["val_accuracy"]))
    text = (sweep_dir / "best.yaml").read_text()
    assert "sweep:" not in text and f"units: {best['model.layers.0.Dense.units']}" in text
    last = result.stderr.splitlines()[-1]  # the best trial, named last on stderr; stdout is the sweep directory
    chosen = state["best"]
    assert last.startswith(f"best: trial {chosen['trial']}, val_accuracy {chosen['value']:.4g}, optimizer.")
    assert f"model.layers.0.Dense.units={chosen['params']['model.layers.0.Dense.units']};" in last
    assert last.endswith(f"; train it with: nnrun train {sweep_dir / 'best.yaml'}")
    assert result.stdout == f"{sweep_dir}\n", "stdout carries the sweep directory alone"
    assert (sweep_dir / "sweep.png").stat().st_size > 10_000
    check = runner.invoke(cli, ["check", str(sweep_dir / "best.yaml")])
    assert check.exit_code == 0, check.output


@pytest.mark.slow
def test_a_stopped_sweep_continues_where_it_stopped(runner, write_config, monkeypatch):
    from nnrun.errors import Interrupted
    from nnrun.training import train

    real, calls = train.train, []

    def third_is_stopped(config, *args, **kwargs):
        calls.append(config)
        if len(calls) == 3:
            raise Interrupted(signal.SIGINT)
        return real(config, *args, **kwargs)

    monkeypatch.setattr(train, "train", third_is_stopped)
    result = runner.invoke(cli, ["sweep", str(sweep_config(write_config))])
    assert result.exit_code == 130, result.output
    sweep_dir = sweep_dir_of(result)
    assert f"continue with: nnrun sweep {sweep_dir}" in result.stderr
    rows = table(sweep_dir)
    assert [r["state"] for r in rows] == ["complete", "complete", "interrupted"]
    assert json.loads((sweep_dir / "sweep.json").read_text())["status"] == "interrupted"

    result = runner.invoke(cli, ["sweep", str(sweep_dir)])
    assert result.exit_code == 0, result.output
    rows = table(sweep_dir)
    assert [r["state"] for r in rows] == ["complete", "complete", "interrupted", "complete", "complete"]
    # The cut-off point is tried again first.
    for key in SPACE["parameters"]:
        assert rows[3][key] == rows[2][key]
    assert len(list((sweep_dir / "trials").glob("trial-*"))) == 4


def test_a_trial_that_meets_a_full_disk_stops_the_sweep(write_config, tmp_path, monkeypatch):
    import errno

    import optuna

    from nnrun.config import loading
    from nnrun.errors import WriteFailed
    from nnrun.reporter import Reporter
    from nnrun.signals import Stop
    from nnrun.sweep import trial
    from nnrun.training import train

    full = WriteFailed(tmp_path / "model.keras", OSError(errno.ENOSPC, "No space left on device"))

    def train_on_a_full_disk(config, *args, **kwargs):
        raise full

    monkeypatch.setattr(train, "train", train_on_a_full_disk)
    study = optuna.create_study(direction="maximize")
    with pytest.raises(WriteFailed) as caught:
        trial.work(tmp_path, loading.load(sweep_config(write_config)), study, Reporter(quiet=True), Stop())
    assert caught.value is full
    (failed,) = study.get_trials()  # no trial after it: each would fail the same way
    assert failed.state.name == "FAIL" and failed.user_attrs["error"] == str(full)


@pytest.mark.any_backend
def test_a_sweep_whose_reports_meet_a_full_disk_ends_failed_naming_the_file(runner, write_config, monkeypatch):
    from nnrun.sweep import command

    from conftest import full_disk

    monkeypatch.setattr(command, "work", lambda *args: None)  # no trial: the reports are what fails
    full_disk(monkeypatch, "trials.csv")
    result = runner.invoke(cli, ["sweep", str(sweep_config(write_config))])
    assert result.exit_code == 1, result.output
    (sweep_dir,) = (p.parent for p in (write_config().parent / "runs").glob("*/sweep.json"))
    line = f"error: no space left on device writing '{sweep_dir / 'trials.csv'}'"
    assert result.stderr.strip().splitlines()[-1] == line, result.stderr
    state = json.loads((sweep_dir / "sweep.json").read_text())
    assert state["status"] == "failed" and state["error"] == line.removeprefix("error: ")


@pytest.mark.slow
def test_a_sweep_killed_mid_trial_continues(runner, write_config):
    result = runner.invoke(cli, ["sweep", str(sweep_config(write_config, trials=1))])
    assert result.exit_code == 0, result.output
    sweep_dir = sweep_dir_of(result)
    # As a kill -9 leaves it: a trial asked for, its run directory begun, never told.
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    study = optuna.load_study(study_name="nnrun", storage=f"sqlite:///{sweep_dir / 'study.db'}")
    lost = study.ask(
        {
            "optimizer.learning_rate": FloatDistribution(1e-3, 1e-1, log=True),
            "model.layers.0.Dense.units": CategoricalDistribution([4, 8, 16]),
        }
    )
    (sweep_dir / "trials" / "trial-002-20261130-120000").mkdir()
    result = runner.invoke(cli, ["sweep", str(sweep_dir), "--set", "sweep.trials=2"])
    assert result.exit_code == 0, result.output
    assert f"trial {lost.number + 1} was cut off when the sweep stopped: it runs again" in result.stderr
    rows = table(sweep_dir)
    assert [r["state"] for r in rows] == ["complete", "interrupted", "complete"]
    assert rows[1]["run_dir"] == "trials/trial-002-20261130-120000"
    for key in SPACE["parameters"]:
        assert float(rows[2][key]) == pytest.approx(lost.params[key]), "the cut-off point is tried again"


@pytest.mark.slow
def test_a_time_budget_stops_starting_trials(runner, write_config):
    config = write_config(sweep={**SPACE, "trials": None, "time_budget": "1s"}, training={"epochs": 1})
    result = runner.invoke(cli, ["sweep", str(config)])
    assert result.exit_code == 0, result.output
    assert 1 <= len(table(sweep_dir_of(result))) <= 2


@pytest.mark.slow
def test_a_metric_that_is_not_logged_stops_the_sweep_naming_those_that_are(runner, write_config, capfd):
    result = runner.invoke(cli, ["sweep", str(sweep_config(write_config, metric="val_precision"))])
    assert result.exit_code == 2, result.output
    assert "note: sweep.metric 'val_precision' is none of loss, accuracy, val_loss, val_accuracy" in result.stderr
    assert "sweep.metric: 'val_precision' is not among the metrics logged each epoch (" in result.output
    assert "val_accuracy" in result.output and "Traceback" not in result.output
    sweep_dir = sweep_dir_of(result)  # the sweep began: its directory is on stdout, as after any sweep
    assert json.loads((sweep_dir / "sweep.json").read_text())["status"] == "failed"

    # A worker of `--jobs` meets it in the same place, says it in one line on its log and exits 2.
    from nnrun.sweep import workers

    capfd.readouterr()  # what the sweep above wrote is not the worker's
    assert workers.worker(str(sweep_dir), 0, 0.0) == 2
    (line,) = capfd.readouterr().err.strip().splitlines()
    assert line.startswith("error: sweep.metric: 'val_precision' is not among the metrics logged each epoch (")


@pytest.mark.backend
@pytest.mark.parametrize(
    "parameters, message",
    [
        (
            {"optimizr.learning_rate": [0.1]},
            "sweep.parameters['optimizr.learning_rate']: 'optimizr' is not in the config; did you mean 'optimizer'?",
        ),
        ({"model.layers.5.Dense.units": [1]}, "'model.layers.5' is not in the config (model.layers is a list of 2)"),
        (
            {"training.epoch": [1, 2]},
            "sweep.parameters['training.epoch']: with 1: training: unknown key 'epoch'; did you mean 'epochs'?",
        ),
        ({"training.batch_size": [8, 1.5]}, "with 1.5: training.batch_size: input should be a valid integer"),
        ({"optimizer.learning_rate": {"low": 1, "high": 0.1}}, "low must be less than high; got low 1, high 0.1"),
        ({"optimizer.learning_rate": {"lo": 0.1, "high": 1}}, "unknown key 'lo'; did you mean 'low'?"),
        ({"optimizer.learning_rate": {"low": 0, "high": 1, "log": True}}, "log: true needs low above 0; got 0"),
        ({"output.dir": ["a", "b"]}, "sweep.parameters['output.dir']: output cannot be swept"),
        (
            {"optimizer.learnin_rate": [0.1]},
            "sweep.parameters['optimizer.learnin_rate']: with 0.1: optimizer (Adam): "
            "unknown argument 'learnin_rate'; did you mean 'learning_rate'?",
        ),
        (
            {"model.layers.0.Dense.activation": ["relu", "rellu"]},
            "with 'rellu': model.layers[0] (Dense): argument 'activation': unknown activation 'rellu'",
        ),
        (
            {"training.batch_size": {"low": 16, "high": 64, "step": 100}},
            "high - low (48) must be a whole number of steps",
        ),
        ({"model.layers.0.Dense.units": {"min": 4, "max": 16}}, "unknown key 'max'; a range is {low: ..., high: ...}"),
    ],
)
def test_check_names_a_bad_parameter(runner, write_config, parameters, message):
    result = runner.invoke(cli, ["check", str(sweep_config(write_config, parameters=parameters))])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


@pytest.mark.backend
def test_check_describes_the_sweep(runner, write_config):
    result = runner.invoke(cli, ["check", str(sweep_config(write_config))])
    assert result.exit_code == 0, result.output
    assert (
        "sweep: maximize val_accuracy over optimizer.learning_rate, model.layers.0.Dense.units; 4 trials; "
        "median pruning"
    ) in result.stdout


def test_a_config_without_a_sweep_section_is_refused(runner, write_config):
    result = runner.invoke(cli, ["sweep", str(write_config())])
    assert result.exit_code == 2
    assert "has no sweep section" in result.output


@pytest.mark.slow
def test_trials_run_in_parallel_worker_processes(runner, write_config):
    config = write_config(sweep={**SPACE, "trials": 2}, training={"epochs": 1})
    result = runner.invoke(cli, ["sweep", str(config), "--jobs", "2"])
    assert result.exit_code == 0, result.output
    sweep_dir = sweep_dir_of(result)
    rows = table(sweep_dir)
    assert len(rows) == 2 and all(r["state"] == "complete" for r in rows), rows
    assert len(list((sweep_dir / "workers").glob("worker-*.log"))) == 2


@pytest.mark.slow
def test_a_diverging_trial_fails_and_a_sweep_without_results_says_so(runner, write_config):
    config = write_config(  # SGD far too fast on a linear regression: the loss is NaN within an epoch
        data={"source": "sklearn", "name": "iris", "scale": "standard", "task": "regression"},
        model=[{"Dense": {"units": 8}}, {"Dense": {"units": 1}}],
        loss="mse",
        metrics=[],
        optimizer={"name": "sgd"},
        training={"epochs": 2, "batch_size": 16},
        sweep={"trials": 2, "parameters": {"optimizer.learning_rate": {"low": 10.0, "high": 100.0}}},
    )
    result = runner.invoke(cli, ["sweep", str(config)])
    assert result.exit_code == 1, result.output
    sweep_dir = sweep_dir_of(result)
    rows = table(sweep_dir)
    assert [r["state"] for r in rows] == ["fail", "fail"]
    assert "training diverged" in rows[0]["error"] and rows[0]["run_dir"].startswith("trials/trial-001-")
    assert "no trial completed" in result.output and "Traceback" not in result.output
    assert json.loads((sweep_dir / "sweep.json").read_text())["status"] == "completed"


@pytest.mark.slow
@pytest.mark.backend
def test_a_pruned_trial_stops_early_and_is_recorded(runner, write_config, monkeypatch):
    import optuna

    # The pruner says so for the second trial (as Optuna's median pruner would for a poor one).
    monkeypatch.setattr(optuna.trial.Trial, "should_prune", lambda self: self.number == 1)
    config = write_config(sweep={**SPACE, "trials": 2}, training={"epochs": 6, "batch_size": 16})
    result = runner.invoke(cli, ["sweep", str(config)])
    assert result.exit_code == 0, result.output
    sweep_dir = sweep_dir_of(result)
    rows = table(sweep_dir)
    assert [r["state"] for r in rows] == ["complete", "pruned"]
    assert rows[1]["pruned_at_epoch"] == "1" and "pruned at epoch 1" in result.stderr
    info = json.loads((sweep_dir / rows[1]["run_dir"] / "run.json").read_text())
    assert info["epochs_completed"] == 1 and info["pruned_at_epoch"] == 1


# A session fixture: xdist hands out one test at a time, and would tear a module fixture down in between.
@pytest.fixture(scope="session")
def finished_template(tmp_path_factory):
    """A sweep of two trials that completed; made once per session."""
    from click.testing import CliRunner

    root = tmp_path_factory.mktemp("finished-sweep")
    config = root / "tiny.yaml"
    sections = {**TINY, "sweep": {**SPACE, "trials": 2}, "training": {"epochs": 2, "batch_size": 16}}
    config.write_text(yaml.safe_dump({**sections, "output": {"dir": str(root / "runs")}}, sort_keys=False))
    result = CliRunner().invoke(cli, ["sweep", str(config)])
    assert result.exit_code == 0, result.output
    return sweep_dir_of(result)


@pytest.fixture
def finished_sweep(finished_template, tmp_path):
    """A copy of the finished sweep of this test's own."""
    return copy_run(finished_template, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize(
    "plant, message",
    [
        (lambda d: (d / "study.db").unlink() or (d / "study.db").symlink_to(d / "elsewhere.db"), "is a symbolic link"),
        (lambda d: (d / "study.db").write_text("not a database"), "not a study nnrun can read"),
        (lambda d: (d / "sweep.json").write_text("[1, 2]"), "expected a JSON object, got list"),
        (lambda d: (d / "trials").rename(d / "t") and (d / "trials").symlink_to(d / "t"), "trials' is a symbolic link"),
    ],
)
def test_a_damaged_sweep_directory_is_refused_in_one_line(runner, finished_sweep, plant, message):
    plant(finished_sweep)
    result = runner.invoke(cli, ["sweep", str(finished_sweep), "--set", "sweep.trials=3"])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


@pytest.mark.backend
@pytest.mark.parametrize(
    "metric, message",
    [
        ("val_acuracy", "sweep.metric: 'val_acuracy' is not a metric the runs log; did you mean 'val_accuracy'?"),
        ("test_accuracy", "a sweep chooses on the validation split, never the test split"),
    ],
)
def test_check_refuses_a_metric_the_sweep_cannot_use(runner, write_config, metric, message):
    config = sweep_config(write_config, metric=metric)
    result = runner.invoke(cli, ["check", str(config)])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert result.output.startswith(f"error: {config}: sweep.metric: "), "the file is named once, first"


@pytest.mark.slow
def test_continuing_with_fewer_trials_than_done_is_refused(runner, finished_sweep):
    result = runner.invoke(cli, ["sweep", str(finished_sweep), "--set", "sweep.trials=1"])
    assert result.exit_code == 2 and "--set sweep.trials=1: 2 trials are done already" in result.output
    assert "trials: 2" in (finished_sweep / "config.yaml").read_text(), "the sweep's config unchanged"


def test_a_missing_optuna_is_named_at_check(runner, write_config, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "optuna" else real(name, *a))
    result = runner.invoke(cli, ["check", str(sweep_config(write_config))])
    assert result.exit_code == 2, result.output
    assert "tiny.yaml: sweep: needs optuna, which is not installed; pip install 'nnrun[sweep]'" in result.output


def test_a_sweep_under_several_processes_launch_variables_is_refused(runner, write_config):
    env = {
        "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
        "KERAS_DISTRIBUTION_PROCESS_ID": "0",
        "KERAS_DISTRIBUTION_JOB_ADDRESSES": "127.0.0.1:7777",
    }
    config = write_config(sweep=SPACE, backend="jax", distribution="data_parallel")
    result = runner.invoke(cli, ["sweep", str(config)], env=env)
    assert result.exit_code == 2, result.output
    assert "nnrun sweep runs in one process; unset the KERAS_DISTRIBUTION_* variables" in result.output
    assert not (config.parent / "runs").exists(), "refused before any sweep directory"


# A worker that fails is made here by a stand-in process; what a real worker says when it fails is in
# test_a_metric_that_is_not_logged_stops_the_sweep_naming_those_that_are, and real workers run in
# test_trials_run_in_parallel_worker_processes.
# Worker 0 fails once worker 1 is past its start-up: a SIGINT during start-up can be lost (coverage's
# .pth imports coverage in every child under a bare `except:`), and the stand-in would sleep on.
FAILING_WORKER = """
import os, sys, time
for _ in range(3000):  # at most 30 s
    if os.path.exists(sys.argv[1]):
        break
    time.sleep(0.01)
print('starting'); print('error: data.path: no file'); sys.exit(2)
"""
BUSY_WORKER = """
import sys, time
try:
    open(sys.argv[1], 'w').close()
    time.sleep(120)
except KeyboardInterrupt:
    raise SystemExit(130)
"""


def test_a_worker_that_fails_stops_the_others_and_the_sweep_naming_its_log(tmp_path, monkeypatch):
    import subprocess
    import sys
    import time

    from nnrun.errors import ConfigError
    from nnrun.reporter import Reporter
    from nnrun.rundir import liveness
    from nnrun.signals import stopping
    from nnrun.sweep import workers

    started, asked, popen = [], [], subprocess.Popen

    def stand_in(args, **kwargs):  # worker 0 fails at once; worker 1 would work for minutes
        asked.append((args, kwargs))
        code = (FAILING_WORKER, BUSY_WORKER)[int(args[-3])]
        started.append(popen([sys.executable, "-c", code, str(tmp_path / "busy")], **kwargs))
        return started[-1]

    monkeypatch.setattr(workers.subprocess, "Popen", stand_in)
    monkeypatch.setattr(workers, "POLL_S", 0.1)
    study = SimpleNamespace(get_trials=lambda deepcopy: [])
    began = time.monotonic()
    with liveness.claim(tmp_path) as claim, stopping() as stop, pytest.raises(ConfigError) as failed:
        workers.supervise(tmp_path, study, None, Reporter(quiet=True), 2, stop, None, claim)
    log = tmp_path / "workers" / "worker-0.log"
    assert str(failed.value) == f"sweep worker 0 stopped: error: data.path: no file (log: {log})"
    assert failed.value.exit_code == 2
    # Asked to stop (SIGINT), the other one did.
    assert started[0].returncode == 2 and started[1].returncode == 130
    assert time.monotonic() - began < 60
    # Each was told its supervisor and shared its claim on the sweep directory; sweep.json names them.
    assert all(args[-1] == str(os.getpid()) and kwargs["pass_fds"] == (claim,) for args, kwargs in asked)
    recorded = json.loads((tmp_path / "sweep.json").read_text())["workers"]
    assert [w["pid"] for w in recorded] == [w.pid for w in started]


@pytest.mark.parametrize("recorded", [False, True])
def test_a_sweep_directory_another_process_holds_is_refused(tmp_path, recorded):
    from nnrun.errors import RunDirBusy
    from nnrun.reporter import Reporter
    from nnrun.rundir import liveness
    from nnrun.sweep import command, study

    # Recorded: this process stands for a live supervisor and its worker, as sweep.json names them.
    state = {**liveness.process(), "workers": [liveness.process(), gone()]} if recorded else {}
    (tmp_path / study.STATE).write_text(json.dumps(state))
    with liveness.claim(tmp_path), pytest.raises(RunDirBusy) as refused:
        command.run(tmp_path, Reporter(quiet=True))
    named = f" (process {os.getpid()}, workers {os.getpid()})" if recorded else ""
    assert str(refused.value) == f"{tmp_path}: another nnrun sweep is running in it{named}"
    assert refused.value.exit_code == 2


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_optunas_private_api_that_a_sweep_recovers_with_is_still_there(tmp_path, storage):
    # A sweep that continues after a crash notes, on a trial the dead sweep asked for, that it was
    # cut off: Optuna's private API (nnrun.sweep.optuna_private). A release that changes it fails here.
    import optuna

    from nnrun.sweep import optuna_private

    url = f"sqlite:///{tmp_path / 'study.db'}" if storage == "sqlite" else None
    asked = optuna.create_study(storage=url, study_name="nnrun").ask()  # by the sweep that died
    study = optuna.load_study(storage=url, study_name="nnrun") if url else asked.study
    (frozen,) = study.get_trials(deepcopy=False)  # all a continuing sweep has of it
    assert optuna_private.trial_id(frozen) == optuna_private.trial_id(asked)
    optuna_private.set_user_attr(study, frozen, "interrupted", True)
    optuna_private.set_user_attr(study, frozen, "run_dir", "trials/trial-001-20260101-000000")
    assert study.get_trials()[0].user_attrs == {"interrupted": True, "run_dir": "trials/trial-001-20260101-000000"}


def made_sweep(write_config, tmp_path, status="completed", values=(0.9, 0.8)):
    """A sweep directory as `nnrun sweep` leaves it, made without training: its config, its state, and a
    study with a completed trial per value. Returns the directory and the study."""
    import optuna

    from nnrun.sweep import study as study_lib

    sweep_dir = tmp_path / "runs" / "tiny-sweep-20300101-000000"
    (sweep_dir / "trials").mkdir(parents=True)
    sweep_config(write_config, trials=len(values)).rename(sweep_dir / "config.yaml")
    (sweep_dir / "sweep.json").write_text(json.dumps({"status": status, "used_s": 10.0}))
    study = study_lib.open_study(sweep_dir, study_lib.load(sweep_dir, ()))
    for n, value in enumerate(values):
        params = {"optimizer.learning_rate": 0.01, "model.layers.0.Dense.units": [4, 8, 16][n % 3]}
        run_dir = f"trials/trial-{n + 1:03d}-20300101-00000{n}"
        study.add_trial(
            optuna.trial.create_trial(
                params=params, distributions=distributions(), value=value, user_attrs={"run_dir": run_dir}
            )
        )
    return sweep_dir, study


def distributions():
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    return {
        "optimizer.learning_rate": FloatDistribution(1e-3, 1e-1, log=True),
        "model.layers.0.Dense.units": CategoricalDistribution([4, 8, 16]),
    }


def gone():
    """A process as sweep.json and run.json record one, that no longer runs (this pid, started at another time)."""
    import socket

    return {"pid": os.getpid(), "host": socket.gethostname(), "process_started": -1}


@pytest.mark.parametrize("status", ["completed", "running"])
def test_continuing_a_sweep_whose_trials_are_all_done_says_so_and_starts_no_worker(
    runner, write_config, tmp_path, monkeypatch, status
):
    from nnrun.sweep import workers

    # "running": its supervisor was killed after the last trial (or its orphaned workers ran them).
    sweep_dir, _ = made_sweep(write_config, tmp_path, status=status)
    monkeypatch.setattr(workers, "supervise", lambda *a, **k: pytest.fail("started workers"))
    result = runner.invoke(cli, ["sweep", str(sweep_dir), "--jobs", "2"])
    assert result.exit_code == 0, result.output
    done = f"all 2 trials are done; lengthen the sweep with nnrun sweep {sweep_dir} --set sweep.trials=N"
    assert result.stderr.splitlines()[0] == done and result.stdout == f"{sweep_dir}\n"
    assert not (sweep_dir / "workers").exists()
    state = json.loads((sweep_dir / "sweep.json").read_text())
    assert state["status"] == "completed"
    if status == "running":  # what its supervisor did not live to write
        assert [r["state"] for r in table(sweep_dir)] == ["complete", "complete"]
        assert state["best"]["trial"] == 1 and (sweep_dir / "best.yaml").is_file()
    else:  # nothing to run, nothing to record
        assert state == {"status": "completed", "used_s": 10.0} and not (sweep_dir / "trials.csv").exists()


def test_a_trial_its_sweep_tries_again_is_not_offered_to_resume(runner, write_config, tmp_path):
    from nnrun.reporter import Reporter
    from nnrun.sweep import study as study_lib

    sweep_dir, study = made_sweep(write_config, tmp_path, status="running", values=(0.9,))
    # As a kill -9 of the sweep leaves its second trial: asked for, its run begun, never told.
    cut_off = study.ask(distributions())
    cut_off.set_user_attr("process", gone())
    run = sweep_dir / "trials" / "trial-002-20300101-000001"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"status": "running", "name": "trial-002", **gone()}))
    failed = sweep_dir / "trials" / "trial-001-20300101-000000"  # a result (it diverged), not cut off
    failed.mkdir()
    (failed / "run.json").write_text(json.dumps({"status": "failed", "name": "trial-001"}))

    # Before the sweep continues: the run continues with its sweep, not by itself.
    listed = runner.invoke(cli, ["runs", str(sweep_dir / "trials"), "--json"])
    assert listed.exit_code == 0, listed.output
    row, other = sorted(json.loads(listed.stdout), key=lambda r: r["name"], reverse=True)
    assert row["status"] == "crashed" and row["hint"] == f"nnrun sweep {sweep_dir}"
    assert other["status"] == "failed" and other["hint"] == f"nnrun resume {failed}"
    shutil.rmtree(failed)
    resumed = runner.invoke(cli, ["resume", str(run)])
    assert resumed.exit_code == 2, resumed.output
    assert resumed.output == (
        f"error: {run}: a trial of the sweep {sweep_dir}, which tries its point again when it continues: "
        f"nnrun sweep {sweep_dir}\n"
    )

    # A study.db from elsewhere whose cut-off trial names a run outside the sweep: that run is left alone.
    planted = study.ask(distributions())
    planted.set_user_attr("process", gone())
    planted.set_user_attr("run_dir", "../elsewhere")
    (tmp_path / "runs" / "elsewhere").mkdir()
    (tmp_path / "runs" / "elsewhere" / "run.json").write_text('{"status": "interrupted"}')

    study_lib.recover(study, sweep_dir, study_lib.load(sweep_dir, ()).sweep, Reporter(quiet=True))
    assert (tmp_path / "runs" / "elsewhere" / "run.json").read_text() == '{"status": "interrupted"}'
    (retry,) = [t for t in study.get_trials() if t.user_attrs.get("retry_of") == 2]
    assert retry.system_attrs["fixed_params"] == cut_off.params, "queued: its point runs next"
    info = json.loads((run / "run.json").read_text())
    assert info["retried_as_trial"] == retry.number + 1 == 4 and info["status"] == "running", "its own story kept"
    listed = runner.invoke(cli, ["runs", str(sweep_dir / "trials"), "--json"])
    (row,) = json.loads(listed.stdout)
    assert row["hint"] is None and row["retried_as_trial"] == 4
    shown = runner.invoke(cli, ["runs", str(sweep_dir / "trials")])
    assert f"{run} is crashed: its sweep tries its point again as trial 4" in shown.stdout
    assert "continue it with" not in shown.stdout
    resumed = runner.invoke(cli, ["resume", str(run)])
    assert resumed.exit_code == 2, resumed.output
    assert resumed.output == (
        f"error: {run}: a sweep's trial, whose point its sweep tries again as trial 4; there is nothing to resume "
        f"(the sweep: {sweep_dir})\n"
    )


def test_continuing_while_the_workers_of_a_killed_sweep_live_is_refused_naming_them(tmp_path):
    import subprocess

    from nnrun.errors import RunDirBusy
    from nnrun.reporter import Reporter
    from nnrun.rundir import liveness
    from nnrun.sweep import command

    # As a supervisor starts a worker (it shares the supervisor's claim) and is killed: the worker holds it alone.
    with liveness.claim(tmp_path) as claim:
        worker = subprocess.Popen(["sleep", "60"], pass_fds=(claim,))
    try:
        (tmp_path / "sweep.json").write_text(
            json.dumps({"status": "running", **gone(), "workers": [liveness.of(worker.pid)]})
        )
        with pytest.raises(RunDirBusy) as refused:
            command.run(tmp_path, Reporter(quiet=True))
        assert str(refused.value) == (
            f"{tmp_path}: the workers of a sweep whose supervisor is gone still run in it (processes {worker.pid}); "
            "continue it once they have ended"
        )
        assert refused.value.exit_code == 2
    finally:
        worker.kill()
        worker.wait()
    with liveness.claim(tmp_path):
        pass  # free once the last of them has ended


def test_a_worker_whose_supervisor_is_killed_as_it_starts_runs_no_trial(tmp_path):
    import subprocess
    import sys
    import time

    from nnrun.rundir import liveness
    from nnrun.sweep import worker_start

    # A supervisor that dies (kill -9) the moment it has started its worker. The worker either gets the
    # parent-death signal (nothing on its log) or finds its parent gone; it never opens the sweep.
    log = tmp_path / "worker-0.log"
    supervisor = (
        "import os, signal, subprocess, sys\n"
        f"w = subprocess.Popen([sys.executable, '-m', 'nnrun.sweep.worker_start', {str(tmp_path)!r}, '0', '0',"
        f" str(os.getpid())], stdout=open({str(log)!r}, 'wb'), stderr=subprocess.STDOUT)\n"
        "print(os.getpid(), w.pid, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = subprocess.run([sys.executable, "-c", supervisor], capture_output=True, text=True, timeout=60)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    supervisor_pid, pid = map(int, killed.stdout.split())
    for _ in range(300):
        if not liveness.alive(pid):
            break
        time.sleep(0.1)
    assert not liveness.alive(pid), "the worker outlived its supervisor"
    gone_line = f"error: its sweep's supervisor (process {supervisor_pid}) is gone; this worker runs no trial\n"
    assert log.read_text() in ("", gone_line)

    # The second case, made certain: a worker whose parent is not the supervisor it was given.
    orphan = subprocess.run(
        [sys.executable, "-m", "nnrun.sweep.worker_start", str(tmp_path), "0", "0", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert orphan.returncode == worker_start.ORPHANED == 143
    assert orphan.stderr == "error: its sweep's supervisor (process 1) is gone; this worker runs no trial\n"
