"""Which run is used, and `nnrun runs` / `runs diff` / `runs compare`."""

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from nnrun.cli.main import cli

from conftest import copy_run

# Listing, comparing and naming runs reads run directories: the same on both backends.
pytestmark = pytest.mark.any_backend


def trained(runner, config, *args):
    result = runner.invoke(cli, ["train", str(config), *args])
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip().splitlines()[-1])


def edit_run(run, **fields):
    info = json.loads((run / "run.json").read_text())
    info.update(fields)
    (run / "run.json").write_text(json.dumps(info))


def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def four_runs(tiny_run, tmp_path):
    """completed, failed, interrupted and crashed runs of one config, in that order of start."""
    completed, runs = tiny_run, tiny_run.parent
    failed = copy_run(completed, runs, "tiny-20300101-000001")
    edit_run(failed, status="failed", error="the loss became nan", started_at="2030-01-01T00:00:01+00:00")
    interrupted = copy_run(completed, runs, "tiny-20300101-000002")
    edit_run(interrupted, status="interrupted", started_at="2030-01-01T00:00:02+00:00", epochs_completed=1)
    crashed = copy_run(completed, runs, "tiny-20300101-000003")
    (crashed / "model.keras").unlink()
    (crashed / "metrics.json").unlink()
    edit_run(
        crashed,
        status="running",
        started_at="2030-01-01T00:00:03+00:00",
        pid=dead_pid(),
        host=socket.gethostname(),
        epochs_completed=1,
    )
    return {"completed": completed, "failed": failed, "interrupted": interrupted, "crashed": crashed}


def test_runs_lists_every_status_newest_first(runner, four_runs, tmp_path):
    result = runner.invoke(cli, ["runs", str(tmp_path / "runs"), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert list(rows[0]) == [  # the keys, in the order --json always had, new ones last
        "run",
        "name",
        "status",
        "started_at",
        "duration_s",
        "epochs_completed",
        "epochs",
        "metric",
        "test",
        "data",
        "resumes",
        "hint",
        "retried_as_trial",  # added last: a sweep's trial that its sweep tries again
    ]
    assert [r["status"] for r in rows] == ["crashed", "interrupted", "failed", "completed"]
    assert [Path(r["run"]) for r in rows] == [four_runs[s] for s in ("crashed", "interrupted", "failed", "completed")]
    done = rows[-1]
    assert done["metric"] == "accuracy" and 0 <= done["test"] <= 1 and done["epochs_completed"] == done["epochs"] == 2
    assert done["data"] == "sklearn:iris" and done["hint"] is None and done["duration_s"] > 0
    assert rows[0]["hint"] == f"nnrun resume {four_runs['crashed']}" and rows[0]["test"] is None

    table = runner.invoke(cli, ["runs", str(tmp_path / "runs")])
    assert table.exit_code == 0, table.output
    for name, run in four_runs.items():
        line = next(line for line in table.stdout.splitlines() if run.name in line and "continue" not in line)
        assert name in line, (name, line)
    assert f"continue it with: nnrun resume {four_runs['crashed']}" in table.stdout
    assert "2/2" in table.stdout and "test accuracy" in table.stdout


def test_runs_filters_by_status_and_name(runner, four_runs, tmp_path):
    result = runner.invoke(cli, ["runs", str(tmp_path / "runs"), "--json", "--status", "crashed", "--status", "failed"])
    assert result.exit_code == 0, result.output
    assert sorted(r["status"] for r in json.loads(result.stdout)) == ["crashed", "failed"]
    named = runner.invoke(cli, ["runs", str(tmp_path / "runs"), "--json", "--name", "nothing*"])
    assert json.loads(named.stdout) == []
    bad = runner.invoke(cli, ["runs", str(tmp_path / "runs"), "--status", "finished"])
    assert bad.exit_code == 2 and "finished" in bad.output


def test_runs_skips_a_broken_run_json_with_a_warning(runner, four_runs, tmp_path):
    (four_runs["failed"] / "run.json").write_text("{not json")
    result = runner.invoke(cli, ["runs", str(tmp_path / "runs"), "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 3
    assert f"{four_runs['failed']}: skipped" in result.stderr


def test_a_run_json_whose_name_is_null_is_listed_by_its_folder(runner, four_runs, tmp_path):
    edit_run(four_runs["failed"], name=None)  # run.json's schema allows it
    result = runner.invoke(cli, ["runs", str(tmp_path / "runs"), "--json", "--status", "failed"])
    assert result.exit_code == 0, result.output
    assert [r["name"] for r in json.loads(result.stdout)] == [four_runs["failed"].name]


def test_runs_of_a_missing_or_empty_folder(runner, tmp_path):
    missing = runner.invoke(cli, ["runs", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    (tmp_path / "empty").mkdir()
    empty = runner.invoke(cli, ["runs", str(tmp_path / "empty")])
    assert empty.exit_code == 0 and "no runs in" in empty.stdout


def test_predict_and_evaluate_default_to_the_newest_completed_run(runner, four_runs, tmp_path):
    (tmp_path / "rows.csv").write_text("a,b,c,d\n5.1,3.5,1.4,0.2\n")
    rows = tmp_path / "x.npy"
    import numpy as np

    np.save(rows, np.array([[5.1, 3.5, 1.4, 0.2]], dtype="float32"))
    result = runner.invoke(cli, ["predict", str(rows), "--runs-dir", str(tmp_path / "runs"), "--json"])
    assert result.exit_code == 0, result.output
    (row,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert row["run"] == str(four_runs["completed"]) and row["run_status"] == "completed"
    assert "warning" not in result.stderr

    scored = runner.invoke(cli, ["evaluate", "--runs-dir", str(tmp_path / "runs"), "--json"])
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.stdout)["run"] == str(four_runs["completed"])


def test_an_unfinished_run_named_explicitly_is_used_with_a_warning(runner, four_runs, tmp_path):
    import numpy as np

    np.save(tmp_path / "x.npy", np.array([[5.1, 3.5, 1.4, 0.2]], dtype="float32"))
    run = four_runs["interrupted"]
    result = runner.invoke(cli, ["predict", str(tmp_path / "x.npy"), "--run", str(run), "--json"])
    assert result.exit_code == 0, result.output
    assert f"warning: {run} is interrupted (1 of 2 epochs)" in result.stderr
    assert json.loads(result.stdout)["run_status"] == "interrupted"
    scored = runner.invoke(cli, ["evaluate", str(run), "--json"])
    assert scored.exit_code == 0, scored.output
    assert (
        json.loads(scored.stdout)["run_status"] == "interrupted"
        and "interrupted" in json.loads(scored.stdout)["warning"]
    )
    crashed = runner.invoke(cli, ["evaluate", str(four_runs["crashed"])])
    assert crashed.exit_code == 2 and "has no model.keras: the run is crashed" in crashed.output


def test_no_completed_run_is_an_error_that_says_what_there_is(runner, four_runs, tmp_path):
    edit_run(four_runs["completed"], status="failed")
    result = runner.invoke(cli, ["predict", "x.npy", "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert "no completed runs in" in result.output and "4 not completed: crashed, failed, interrupted" in result.output


@pytest.mark.slow
def test_runs_diff_shows_config_differences_and_metrics(runner, write_config, tmp_path):
    config = write_config()
    a = trained(runner, config)
    b = trained(runner, config, "--set", "optimizer.learning_rate=0.05", "--set", "model.layers.0.Dense.units=4")
    result = runner.invoke(cli, ["runs", "diff", str(a), str(b), "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert list(found) == [
        "a",
        "b",
        "status",
        "config",
        "metrics",
        "problems",
    ]  # the keys, in the order --json always had
    changed = {row["key"]: (row["a"], row["b"]) for row in found["config"]}
    assert changed == {"optimizer.learning_rate": (0.01, 0.05), "model.layers.0.Dense.units": (8, 4)}
    metrics = {row["key"]: (row["a"], row["b"]) for row in found["metrics"]}
    a_metrics = json.loads((a / "metrics.json").read_text())
    assert metrics["test.accuracy"][0] == a_metrics["test"]["accuracy"]
    table = runner.invoke(cli, ["runs", "diff", str(a), str(b)])
    assert table.exit_code == 0 and "optimizer.learning_rate" in table.stdout and "test.accuracy" in table.stdout
    same = runner.invoke(cli, ["runs", "diff", str(a), str(a)])
    assert "the configs are the same" in same.stdout
    missing = runner.invoke(cli, ["runs", "diff", str(a), str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "does not exist" in missing.output


@pytest.mark.slow
@pytest.mark.plots
def test_runs_compare_draws_one_png(runner, write_config, tmp_path):
    config = write_config()
    a = trained(runner, config)
    b = trained(runner, config, "--set", "training.epochs=3")
    result = runner.invoke(cli, ["runs", "compare", str(a), str(b)])
    assert result.exit_code == 0, result.output
    png = Path(result.stdout.strip())
    assert png.parent == a.parent and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    chosen = runner.invoke(cli, ["runs", "compare", str(a), str(b), "--output", str(tmp_path / "c.png")])
    assert chosen.exit_code == 0 and (tmp_path / "c.png").is_file()
    one = runner.invoke(cli, ["runs", "compare", str(a)])
    assert one.exit_code == 2 and "at least two" in one.output
    same = runner.invoke(cli, ["runs", "compare", str(a), str(a)])
    assert same.exit_code == 2 and "at least two different" in same.output
    listed = runner.invoke(cli, ["runs", str(a.parent), "--json"])
    assert len(json.loads(listed.stdout)) == 2, "the PNG beside the runs is not a run"


@pytest.mark.slow
def test_the_runs_commands_never_import_tensorflow(runner, write_config):
    config = write_config()
    a, b = trained(runner, config), trained(runner, config, "--set", "seed=8")
    code = f"""
import sys
from nnrun.cli.main import main
for args in (
    ["runs", {str(a.parent)!r}],
    ["runs", "diff", {str(a)!r}, {str(b)!r}],
    ["runs", "compare", {str(a)!r}, {str(b)!r}],
):
    try:
        main(args)
    except SystemExit as e:
        assert not e.code, (args, e.code)
print("imported:", sorted(m for m in ("tensorflow", "keras") if m in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "imported: []" in done.stdout
