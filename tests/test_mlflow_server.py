"""Training against a real MLflow tracking server (`mlflow server` on a loopback port), read back through
its REST API with plain HTTP; and the server stopped mid-training.

The password of a tracking URI (http://user:password@host) is in $MLFLOW_TRACKING_URI, where a team
keeps it (the config refuses one): it never shows in the output nor in the run directory.
"""

import importlib.util
import json
import time
import urllib.parse

import pytest

from nnrun.cli.main import cli

from mlflow_server import MlflowServer

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("mlflow") is None, reason="the mlflow extra: pip install 'nnrun[mlflow]'"
    ),
    # What reaches the server is nnrun's own bookkeeping: the same on both backends (TensorFlow pass only).
    pytest.mark.slow,
    pytest.mark.any_backend,
]

PASSWORD = "s3cret-pw"


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """An `mlflow server` shared by this module's tests that leave it running; stopped at the session's end."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    try:
        server.wait_until_up()
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_mlflow_server(tmp_path):
    """An `mlflow server` of this test's own, to stop; stopped at its end if it is still running."""
    server = MlflowServer(tmp_path / "mlflow-server")
    try:
        server.wait_until_up()
        yield server
    finally:
        server.stop()


def with_password(uri):
    return uri.replace("http://", f"http://nnrun:{urllib.parse.quote(PASSWORD)}@")


def run_dir_of(result):
    from pathlib import Path

    return Path(result.stdout.strip().splitlines()[-1])


def assert_no_password(result, run):
    assert PASSWORD not in result.output
    for path in run.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path


def test_a_tracking_server_gets_params_metrics_per_epoch_artifacts_and_the_end(
    runner, write_config, mlflow_server, monkeypatch
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", with_password(mlflow_server.uri))
    result = runner.invoke(cli, ["train", str(write_config()), "--tracker", "mlflow"])
    assert result.exit_code == 0, result.output
    run = run_dir_of(result)
    recorded = json.loads((run / "run.json").read_text())["mlflow"]
    assert recorded["tracking_uri"] == mlflow_server.uri, "recorded without the user and password"
    assert f"View run {run.name} at: {mlflow_server.uri}/#/experiments/" in result.stderr
    assert_no_password(result, run)

    logged = mlflow_server.get("runs/get", run_id=recorded["run_id"])["run"]
    assert logged["info"]["status"] == "FINISHED" and logged["info"]["run_name"] == run.name
    params = {p["key"]: p["value"] for p in logged["data"]["params"]}
    assert params["training.epochs"] == "2" and params["model.layers.0.Dense.units"] == "8"
    assert params["data.name"] == "iris" and params["optimizer.learning_rate"] == "0.01"
    with open(run / "history.csv") as f:
        header, *rows = [line.strip().split(",") for line in f]
    for name in ("loss", "val_accuracy"):
        history = mlflow_server.get("metrics/get-history", run_id=recorded["run_id"], metric_key=name)["metrics"]
        steps = sorted((m["step"], m["value"]) for m in history)
        assert [step for step, _ in steps] == [1, 2], "each epoch once, as its step"
        assert [value for _, value in steps] == pytest.approx([float(r[header.index(name)]) for r in rows], rel=1e-6)
    test = json.loads((run / "metrics.json").read_text())["test"]
    metrics = {m["key"]: m["value"] for m in logged["data"]["metrics"]}
    assert metrics["test_accuracy"] == pytest.approx(test["accuracy"])
    files = mlflow_server.get("artifacts/list", run_id=recorded["run_id"])["files"]
    assert {"config.yaml", "run.json", "model.keras", "history.csv", "metrics.json"} <= {f["path"] for f in files}
    sizes = {f["path"]: int(f["file_size"]) for f in files if not f["is_dir"]}
    assert sizes["model.keras"] == (run / "model.keras").stat().st_size, "uploaded whole"


def test_a_server_gone_mid_training_is_one_warning_and_the_run_completes_whole(
    runner, write_config, own_mlflow_server, monkeypatch
):
    from nnrun.training import mlflow_run

    log_epoch = mlflow_run.MlflowRun.log_epoch

    def frozen_then_stopped(self, row, step):
        log_epoch(self, row, step)
        if step == 1:  # it hangs: takes connections, never answers (a host or network gone); a call times out
            own_mlflow_server.freeze()
        if step == 2:  # then it is stopped: its port refuses connections
            own_mlflow_server.stop()

    monkeypatch.setattr(mlflow_run.MlflowRun, "log_epoch", frozen_then_stopped)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")  # nnrun's default is 10 s
    monkeypatch.setenv("MLFLOW_TRACKING_URI", with_password(own_mlflow_server.uri))
    started = time.monotonic()
    result = runner.invoke(cli, ["train", str(write_config()), "--tracker", "mlflow", "--set", "training.epochs=3"])
    took = time.monotonic() - started
    assert result.exit_code == 0, result.output
    assert took < 60, f"{took:.0f} s: MLflow's retries were not cut short"
    assert "Traceback" not in result.output
    (warning,) = [line for line in result.stderr.splitlines() if "warning" in line.lower()]
    assert warning.startswith(f"warning: mlflow ({own_mlflow_server.uri}): ")
    assert "Read timed out. (read timeout=2)" in warning and warning.endswith(
        "; training goes on, the run directory has everything"
    )
    run = run_dir_of(result)
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "completed"
    run_id = info["mlflow"]["run_id"]
    assert f"MLflow run {run_id} could not be ended FINISHED (it still does not answer)" in result.stderr
    # The password is in $MLFLOW_TRACKING_URI, which the client reads when the command is run.
    assert f'MlflowClient().set_terminated("{run_id}", "FINISHED", ' in result.stderr
    assert set(json.loads((run / "metrics.json").read_text())) >= {"train", "validation", "test"}
    assert len((run / "history.csv").read_text().splitlines()) == 1 + 3
    assert (run / "model.keras").is_file() and not (run / "backup").exists()
    assert_no_password(result, run)
