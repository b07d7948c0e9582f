"""An MLflow run through a tracking server that goes away, and what MLflow prints: with a fake of MLflow's
client in this process (a real server costs a child process and seconds; the slow tests of test_tracking.py
log to a real SQLite store)."""

import collections
import functools
import shlex
import sys
import types
from pathlib import PurePath
from types import SimpleNamespace

import pytest


class FakeServer:
    """An MLflow tracking server as MLflowClient sees it, in memory. While `down`, every call fails as MLflow's
    client fails on a stopped server (an MlflowException raised while handling a refused connection); ending
    a run prints MLflow 3's "View run" lines on stdout, as its client does for a server."""

    def __init__(self):
        self.down, self.calls_while_down = False, 0
        self.experiments, self.runs = {}, {}

    def answer(self, what):
        if self.down:
            self.calls_while_down += 1
            try:
                raise ConnectionRefusedError(111, "Connection refused")
            except OSError:  # raised while handling it, as MLflow's client does
                raise RuntimeError(f"API request to http://127.0.0.1:5077/api/2.0/mlflow/{what} failed")  # noqa: B904


class FakeClient:
    def __init__(self, server, tracking_uri):
        self.server = server

    def get_experiment_by_name(self, name):
        self.server.answer("experiments/get-by-name")
        found = self.server.experiments.get(name)
        return found and SimpleNamespace(experiment_id=found)

    def create_experiment(self, name, artifact_location=None):
        self.server.answer("experiments/create")
        self.server.experiments[name] = str(len(self.server.experiments) + 1)
        return self.server.experiments[name]

    def create_run(self, experiment_id, run_name=None, tags=None):
        self.server.answer("runs/create")
        run_id = f"{len(self.server.runs) + 1:032x}"
        self.server.runs[run_id] = SimpleNamespace(status="RUNNING", end_time=None, metrics=[], params={}, files=[])
        return SimpleNamespace(info=SimpleNamespace(run_id=run_id))

    def log_batch(self, run_id, metrics=(), params=()):
        self.server.answer("runs/log-batch")
        self.server.runs[run_id].metrics += metrics
        self.server.runs[run_id].params.update(params)

    def log_artifact(self, run_id, path, artifact_path=None):
        self.server.answer("artifacts")
        self.server.runs[run_id].files.append(str(PurePath(artifact_path or "", PurePath(path).name)))

    def set_terminated(self, run_id, status=None, end_time=None):
        self.server.answer("runs/get")
        sys.stdout.write(f"🏃 View run at: http://127.0.0.1:5077/#/experiments/1/runs/{run_id}\n")
        self.server.answer("runs/update")
        self.server.runs[run_id].status, self.server.runs[run_id].end_time = status, end_time


@pytest.fixture
def server(monkeypatch):
    """A `FakeServer` that `import mlflow` gets the client of (importing MLflow itself takes seconds)."""
    fake = FakeServer()
    mlflow, tracking, entities = (types.ModuleType(n) for n in ("mlflow", "mlflow.tracking", "mlflow.entities"))
    mlflow.MlflowClient = tracking.MlflowClient = functools.partial(FakeClient, fake)
    entities.Metric = collections.namedtuple("Metric", "key value timestamp step")
    entities.Param = collections.namedtuple("Param", "key value")
    for module in (mlflow, tracking, entities):
        monkeypatch.setitem(sys.modules, module.__name__, module)
    return fake


def mlflow_for(write_config, tmp_path):
    """An MlflowRun (on a server at 127.0.0.1:5077) for a new run directory, as training opens it."""
    from nnrun.config import loading
    from nnrun.reporter import Reporter
    from nnrun.rundir import record
    from nnrun.training import mlflow_run

    config = loading.load(write_config(tracking={"mlflow": {"tracking_uri": "http://127.0.0.1:5077"}}))
    run = tmp_path / "runs" / "tiny-20260101-000000"
    run.mkdir(parents=True)
    record.write_info(run, status="running")
    return run, mlflow_run.MlflowRun(config, run, Reporter())


def train(run, mlflow, server, epochs, down_at=(), status="completed"):
    """Logs `epochs` epochs as training does (history.csv written first), the server down at those in `down_at`."""
    from nnrun import atomic
    from nnrun.rundir import files, record

    rows = []
    for epoch in range(1, epochs + 1):
        server.down = epoch in down_at
        rows.append({"epoch": epoch, "loss": 1 / epoch, "accuracy": epoch / epochs})
        atomic.write_text(run / "history.csv", files.history_text(rows))
        mlflow.log_epoch({k: v for k, v in rows[-1].items() if k != "epoch"}, epoch)
    atomic.write_json(run / "metrics.json", {"test": {"accuracy": 0.5, "loss": 2.0}})
    record.update_info(run, status=status)


def steps(logged, name):
    return sorted(m.step for m in logged.metrics if m.key == name)


def test_mlflows_console_output_goes_to_stderr_stdout_is_the_commands(server, write_config, tmp_path, capfd):
    run, mlflow = mlflow_for(write_config, tmp_path)
    train(run, mlflow, server, 2)
    mlflow.end()
    out, err = capfd.readouterr()
    assert out == "", "RUN=$(nnrun train cfg.yaml --tracker mlflow) gets the run directory alone"
    assert "View run at: http://127.0.0.1:5077/" in err
    (logged,) = server.runs.values()
    assert logged.status == "FINISHED" and steps(logged, "loss") == [1, 2] and steps(logged, "test_accuracy") == [0]


def test_a_server_that_comes_back_gets_the_epochs_it_missed_and_the_run_ends_as_it_did(
    server, write_config, tmp_path, capfd, monkeypatch
):
    from nnrun.training import mlflow_run

    monkeypatch.setattr(mlflow_run, "RETRY_S", 0)  # tried again at the next epoch
    run, mlflow = mlflow_for(write_config, tmp_path)
    train(run, mlflow, server, 6, down_at={2, 3, 4})
    mlflow.end()
    out, err = capfd.readouterr()
    assert out == ""
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: mlflow (http://127.0.0.1:5077): RuntimeError: API request to "
        "http://127.0.0.1:5077/api/2.0/mlflow/runs/log-batch failed; training goes on, the run directory has everything"
    ]
    assert "mlflow: http://127.0.0.1:5077 answers again; the epochs it missed (2-4) logged from history.csv" in err
    (logged,) = server.runs.values()
    assert steps(logged, "loss") == [1, 2, 3, 4, 5, 6], "each epoch once"
    assert {m.value for m in logged.metrics if m.key == "loss" and m.step == 3} == {1 / 3}
    assert logged.status == "FINISHED" and steps(logged, "test_accuracy") == [0]
    assert "history.csv" in logged.files and "metrics.json" in logged.files


def test_a_server_still_down_at_the_end_is_one_warning_then_how_to_end_the_mlflow_run(
    server, write_config, tmp_path, capfd
):
    run, mlflow = mlflow_for(write_config, tmp_path)
    train(run, mlflow, server, 8, down_at=range(3, 9), status="interrupted")
    mlflow.end()
    assert server.calls_while_down == 2, "one call while training (then none until a retry is due), one at the end"
    out, err = capfd.readouterr()
    assert out == ""
    (warning,) = [line for line in err.splitlines() if line.startswith("warning:")]
    assert "training goes on" in warning, "one outage is one warning"
    (run_id, logged), *_ = server.runs.items()
    assert logged.status == "RUNNING" and steps(logged, "loss") == [1, 2]
    (how,) = [line for line in err.splitlines() if "once the server answers" in line]
    said, command = how.split("; once the server answers, end it with: ")
    assert said == (
        f"mlflow (http://127.0.0.1:5077): MLflow run {run_id} could not be ended KILLED "
        "(it still does not answer) and stays RUNNING there"
    )
    python, flag, code = shlex.split(command)
    assert (python, flag) == ("python", "-c")
    server.down = False
    exec(code, {})  # what the user runs once the server is back
    assert logged.status == "KILLED" and logged.end_time is not None


def test_a_server_gone_only_at_the_end_is_one_warning(server, write_config, tmp_path, capfd):
    run, mlflow = mlflow_for(write_config, tmp_path)
    train(run, mlflow, server, 2)
    server.down = True
    mlflow.end()
    warnings = [line for line in capfd.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "could not be ended FINISHED (it does not answer) and stays RUNNING" in warnings[0]
    assert server.calls_while_down == 1, "nothing more is tried once it does not answer"


def test_params_name_each_setting_as_set_does_and_a_list_of_names_whole(write_config, tmp_path):
    from nnrun.config import loading
    from nnrun.training import mlflow_run

    data = {"source": "csv", "path": str(tmp_path / "t.csv"), "target": "y", "drop": ["id", "name"]}
    params = mlflow_run._params(loading.load(write_config(data=data)))
    assert params["data.drop"] == '["id", "name"]'  # one param, as --set 'data.drop=[id, name]' writes it
    assert params["model.layers.0.Dense.units"] == "8" and "data.drop.0" not in params
