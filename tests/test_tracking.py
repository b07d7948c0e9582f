"""tracking: TensorBoard event files and MLflow runs, read back with their own readers."""

import csv
import importlib.util
import json
from pathlib import PurePath

import pytest

from nnrun.cli.main import cli

from conftest import interrupt_after


def last_path(result):
    from pathlib import Path

    return Path(result.stdout.strip().splitlines()[-1])


def history(run):
    with open(run / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_tensorboard_writes_each_epochs_scalars(runner, write_config):
    pytest.importorskip("tensorboard", reason="the tensorboard extra: pip install 'nnrun[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util.tensor_util import make_ndarray

    from nnrun.training import tracking

    result = runner.invoke(cli, ["train", str(write_config()), "--tracker", "tensorboard"])
    assert result.exit_code == 0, result.output
    run = last_path(result)
    rows = history(run)
    for folder, prefix in (("train", ""), ("validation", "val_")):
        events = EventAccumulator(str(run / "tensorboard" / folder))
        events.Reload()
        assert {"epoch_loss", "epoch_accuracy"} <= set(events.Tags()["tensors"])
        loss = [(e.step, float(make_ndarray(e.tensor_proto))) for e in events.Tensors("epoch_loss")]
        assert [step for step, _ in loss] == [0, 1]
        assert [value for _, value in loss] == pytest.approx([float(r[f"{prefix}loss"]) for r in rows], rel=1e-5)
        assert not events.Tags()["histograms"] and not events.Tags()["graph"], "off unless asked"
    assert f"(tensorboard --logdir {run.parent}, then {tracking.TENSORBOARD_VIEW})" in result.stderr


@pytest.mark.slow  # TensorBoard's walk imports TensorFlow
@pytest.mark.any_backend
def test_tensorboards_run_filter_shows_each_run_once_though_it_follows_runs_latest(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard extra: pip install 'nnrun[tensorboard]'")
    import re
    from urllib.parse import parse_qs, urlsplit

    from tensorboard.backend.event_processing import io_wrapper
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    from nnrun.rundir import files
    from nnrun.training import tracking

    runs = tmp_path / "runs"
    names = ["tiny-20260101-000000", "tiny-20260102-000000"]
    for name in names:
        for folder in ("train", "validation"):
            EventFileWriter(str(runs / name / files.TENSORBOARD / folder)).close()
    files.point_latest(runs / names[-1])
    # Found as `tensorboard --logdir runs` finds them (TensorBoard's walk; its Rust loader's follows links too).
    found = [str(PurePath(p).relative_to(runs)) for p in io_wrapper.GetLogdirSubdirectories(str(runs))]
    assert f"{files.LATEST}/tensorboard/train" in found, "the link is followed"
    (regex,) = parse_qs(urlsplit(tracking.TENSORBOARD_VIEW).query)["runFilter"]
    shown = sorted(name for name in found if re.search(regex, name, re.IGNORECASE))  # as its page filters runs
    assert shown == [f"{name}/tensorboard/{folder}" for name in names for folder in ("train", "validation")]


@pytest.mark.slow
def test_tracker_none_turns_the_configs_off(runner, write_config):
    result = runner.invoke(cli, ["train", str(write_config(tracking=["tensorboard"])), "--tracker", "none"])
    assert result.exit_code == 0, result.output
    assert not (last_path(result) / "tensorboard").exists()


@pytest.mark.backend
def test_a_missing_extra_is_named_at_check(runner, write_config, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    result = runner.invoke(cli, ["check", str(write_config(tracking={"mlflow": True}))])
    assert result.exit_code == 2, result.output
    assert "tracking.mlflow: needs mlflow, which is not installed; pip install 'nnrun[mlflow]'" in result.output
    assert "Traceback" not in result.output


@pytest.mark.backend
@pytest.mark.parametrize(
    "tracking, names",
    [
        ({"mlflow": None, "tensorboard": None}, "tensorboard, mlflow"),  # `mlflow:` with nothing after it: on
        (["tensorboard"], "tensorboard"),
        ({"tensorboard": True, "mlflow": False}, "tensorboard"),
        ("none", None),
    ],
)
def test_the_ways_to_write_tracking(runner, write_config, tracking, names):
    result = runner.invoke(cli, ["check", str(write_config(tracking=tracking))])
    assert result.exit_code == 0, result.output
    shown = [line for line in result.stdout.splitlines() if line.startswith("tracking: ")]
    if names is None:
        assert not shown
    else:
        assert [part.split(" (")[0] for part in shown[0].removeprefix("tracking: ").split("), ")] == names.split(", ")


def test_a_tracking_uri_that_is_a_file_name_is_refused(runner, write_config):
    result = runner.invoke(cli, ["check", str(write_config(tracking={"mlflow": {"tracking_uri": "other.db"}}))])
    assert result.exit_code == 2
    assert "tracking.mlflow.tracking_uri: not a tracking URI MLflow can use; e.g. sqlite:///other.db" in result.output


def test_a_password_in_the_configs_tracking_uri_is_refused_and_not_echoed(runner, write_config):
    uri = "http://nnrun:s3cret@mlflow.example:5000"
    result = runner.invoke(cli, ["check", str(write_config(tracking={"mlflow": {"tracking_uri": uri}}))])
    assert result.exit_code == 2, result.output
    assert (
        "tracking.mlflow.tracking_uri: holds a password, which the run's config.yaml would keep; set the URI in "
        "$MLFLOW_TRACKING_URI instead, or the user and password in $MLFLOW_TRACKING_USERNAME and "
        "$MLFLOW_TRACKING_PASSWORD; got 'http://nnrun:***@mlflow.example:5000'"
    ) in " ".join(result.output.split())
    assert "s3cret" not in result.output


def test_tracking_typos_are_refused_with_a_suggestion(runner, write_config):
    result = runner.invoke(cli, ["check", str(write_config(tracking={"tensorbord": True}))])
    assert result.exit_code == 2
    assert "tracking: unknown key 'tensorbord'; did you mean 'tensorboard'?" in result.output


# Found, not imported: importing MLflow costs every collection seconds.
needs_mlflow = pytest.mark.skipif(
    importlib.util.find_spec("mlflow") is None, reason="the mlflow extra: pip install 'nnrun[mlflow]'"
)


# What reaches MLflow is nnrun's own bookkeeping (params, per-epoch metrics, artifacts, how the run ended):
# the same on both backends, so those tests run in the TensorFlow pass only (any_backend).
@pytest.fixture
def store(tmp_path, monkeypatch):
    """The default MLflow store of runs in tmp_path/runs: tmp_path/mlflow.db."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path / "..")  # the store is beside output.dir, never where the shell stands
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def client_of(store):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=store)


@pytest.mark.plots
@needs_mlflow
@pytest.mark.slow
@pytest.mark.any_backend
def test_mlflow_records_params_metrics_per_epoch_test_metrics_and_artifacts(runner, write_config, store, tmp_path):
    result = runner.invoke(cli, ["train", str(write_config()), "--tracker", "mlflow"])
    assert result.exit_code == 0, result.output
    run = last_path(result)
    recorded = json.loads((run / "run.json").read_text())["mlflow"]
    assert recorded["tracking_uri"] == store
    client = client_of(store)
    logged = client.get_run(recorded["run_id"])
    assert logged.info.status == "FINISHED" and logged.info.run_name == run.name
    assert client.get_experiment(logged.info.experiment_id).name == "tiny"
    params = logged.data.params
    assert params["model.layers.0.Dense.units"] == "8" and params["training.epochs"] == "2"
    assert params["data.name"] == "iris" and params["optimizer.learning_rate"] == "0.01"
    val_loss = client.get_metric_history(recorded["run_id"], "val_loss")
    assert [m.step for m in sorted(val_loss, key=lambda m: m.step)] == [1, 2]
    assert [m.value for m in sorted(val_loss, key=lambda m: m.step)] == pytest.approx(
        [float(r["val_loss"]) for r in history(run)], rel=1e-6
    )
    test = json.loads((run / "metrics.json").read_text())["test"]
    assert logged.data.metrics["test_accuracy"] == pytest.approx(test["accuracy"])
    artifacts = {a.path for a in client.list_artifacts(recorded["run_id"])}
    assert {"model.keras", "history.csv", "metrics.json", "run.json", "plots"} <= artifacts
    assert (tmp_path / "mlartifacts").is_dir(), "artifacts beside the store, not in the working directory"


@needs_mlflow
@pytest.mark.slow
@pytest.mark.any_backend
def test_a_failed_run_ends_its_mlflow_run_failed(runner, write_config, store, monkeypatch):
    from nnrun.training import callbacks

    def broken(self, epoch, logs=None):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(callbacks.SeedEachEpoch, "on_epoch_begin", broken)
    result = runner.invoke(cli, ["train", str(write_config()), "--tracker", "mlflow"])
    assert result.exit_code == 1, result.output
    run = last_path(result)
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "failed"
    assert client_of(store).get_run(info["mlflow"]["run_id"]).info.status == "FAILED"


@needs_mlflow
@pytest.mark.slow
@pytest.mark.any_backend
def test_an_interrupted_run_is_killed_then_resumed_into_the_same_mlflow_run(runner, write_config, store, monkeypatch):
    interrupt_after(monkeypatch, 1)
    result = runner.invoke(cli, ["train", str(write_config(tracking=["mlflow"])), "--set", "training.epochs=3"])
    assert result.exit_code == 130, result.output
    run = last_path(result)
    run_id = json.loads((run / "run.json").read_text())["mlflow"]["run_id"]
    client = client_of(store)
    assert client.get_run(run_id).info.status == "KILLED"

    result = runner.invoke(cli, ["resume", str(run), "--set", "training.epochs=4"])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "run.json").read_text())["mlflow"]["run_id"] == run_id
    logged = client.get_run(run_id)
    assert logged.info.status == "FINISHED"
    assert logged.data.params["training.epochs"] == "3", "MLflow never changes a param"
    assert logged.data.tags["nnrun.resumed.training.epochs"] == "4", "so the resume's change is a tag"
    steps = sorted(m.step for m in client.get_metric_history(run_id, "loss"))
    assert steps == [1, 2, 3, 4]
    assert len(client.search_runs([client.get_run(run_id).info.experiment_id])) == 1


@needs_mlflow
@pytest.mark.slow
@pytest.mark.any_backend
def test_an_unreachable_server_is_a_warning_and_training_goes_on(runner, write_config, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens on the discard port
    result = runner.invoke(cli, ["train", str(write_config(tracking=["mlflow"]))])
    assert result.exit_code == 0, result.output
    assert "warning: mlflow (http://127.0.0.1:9):" in result.stderr
    assert "training goes on" in result.stderr
    info = json.loads((last_path(result) / "run.json").read_text())
    assert info["status"] == "completed" and "mlflow" not in info


@pytest.mark.plots
@needs_mlflow
@pytest.mark.slow
@pytest.mark.any_backend
def test_a_run_directory_from_elsewhere_uploads_only_its_own_files_into_a_run_of_its_own(
    runner, write_config, store, tmp_path, monkeypatch
):
    interrupt_after(monkeypatch, 1)
    result = runner.invoke(cli, ["train", str(write_config()), "--set", "training.epochs=2"])
    assert result.exit_code == 130, result.output
    run = last_path(result)
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "id_rsa").write_text("private")
    (run / "plots" / "notes").symlink_to(secret)  # a link planted in a shared run directory
    (run / "history.txt").write_text("not a run file")
    info = json.loads((run / "run.json").read_text())
    other = client_of(store)
    someone_else = other.create_run(other.create_experiment("theirs")).info.run_id
    info["mlflow"] = {"run_id": someone_else, "tracking_uri": store}  # planted: not this directory's run
    (run / "run.json").write_text(json.dumps(info))

    result = runner.invoke(cli, ["resume", str(run), "--tracker", "mlflow"])
    assert result.exit_code == 0, result.output
    run_id = json.loads((run / "run.json").read_text())["mlflow"]["run_id"]
    assert run_id != someone_else and other.get_run(someone_else).info.status == "RUNNING", "theirs untouched"

    def paths(folder=None):
        for a in other.list_artifacts(run_id, folder):
            yield from paths(a.path) if a.is_dir else [a.path]

    uploaded = set(paths())
    assert "plots/learning_curves.png" in uploaded and "model.keras" in uploaded
    assert not any("id_rsa" in p or "history.txt" in p for p in uploaded), uploaded
