"""nnrun.rundir.files: new run directories, atomic writes, run.json, finding the newest run (nnrun.rundir.finding)."""

import json
import os
import re
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from nnrun import atomic
from nnrun.errors import BadInput, RunDirError
from nnrun.rundir import files as rundir
from nnrun.rundir import finding, record
from nnrun.rundir.status import Status

from conftest import full_disk


def leftovers(folder):
    """Temporary files an atomic write may have left behind."""
    return [p.name for p in folder.iterdir() if ".tmp" in p.name or p.name.startswith(".")]


@pytest.fixture
def frozen_clock(monkeypatch):
    """Every run directory is made in the same second."""
    monkeypatch.setattr(
        rundir, "time", SimpleNamespace(strftime=lambda fmt: time.strftime(fmt, (2024, 1, 2, 3, 4, 5, 0, 2, -1)))
    )


# --- create ---------------------------------------------------------------------


def test_create_makes_name_and_timestamp_with_plots(tmp_path):
    before = datetime.now().replace(microsecond=0)
    path = rundir.create(tmp_path / "runs", "mnist")
    after = datetime.now()
    assert path.parent == tmp_path / "runs"  # the runs folder is made when missing
    assert path.is_dir()
    match = re.fullmatch(r"mnist-(\d{8}-\d{6})", path.name)
    assert match, path.name
    made = datetime.strptime(match.group(1), "%Y%m%d-%H%M%S")
    # A second of slack: this machine's clock has been seen to step back between two readings.
    assert before - timedelta(seconds=1) <= made <= after + timedelta(seconds=1)
    assert (path / rundir.PLOTS).is_dir()
    assert [p.name for p in path.iterdir()] == ["plots"]  # otherwise empty


def test_create_in_the_same_second_gets_a_suffix(tmp_path, frozen_clock):
    first = rundir.create(tmp_path, "exp")
    second = rundir.create(tmp_path, "exp")
    third = rundir.create(tmp_path, "exp")
    assert first.name == "exp-20240102-030405"
    assert second.name == "exp-20240102-030405-2"
    assert third.name == "exp-20240102-030405-3"
    assert all((p / "plots").is_dir() for p in (first, second, third))


def test_creates_racing_in_the_same_second_each_get_their_own(tmp_path, frozen_clock):
    # As two `nnrun train` or `nnrun evaluate` started together: os.mkdir decides, whoever is first.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        paths = list(pool.map(lambda _: rundir.create(tmp_path, "exp"), range(16)))
    assert len(set(paths)) == 16
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)
    assert all([q.name for q in p.iterdir()] == ["plots"] for p in paths)


def test_create_never_reuses_a_directory(tmp_path, frozen_clock):
    first = rundir.create(tmp_path, "exp")
    (first / "model.keras").write_text("precious")
    second = rundir.create(tmp_path, "exp")
    assert second != first
    assert (first / "model.keras").read_text() == "precious"
    assert list(second.iterdir()) == [second / "plots"]


def test_many_quick_creates_are_all_distinct(tmp_path):
    paths = [rundir.create(tmp_path, "quick") for _ in range(5)]
    assert len(set(paths)) == 5
    assert all(p.is_dir() for p in paths)


def test_concurrent_creates_are_all_distinct(tmp_path, frozen_clock):
    paths, errors = [], []

    def make():
        try:
            paths.append(rundir.create(tmp_path, "par"))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(paths)) == 8


def test_create_where_the_runs_folder_is_a_file(tmp_path):
    blocker = tmp_path / "runs"
    blocker.write_text("not a folder")
    with pytest.raises(RunDirError) as info:
        rundir.create(blocker / "inner", "exp")
    assert "output.dir" in str(info.value)
    assert "inner" in str(info.value)
    assert isinstance(info.value, BadInput)


# --- atomic writes ------------------------------------------------------------------


def test_atomic_success(tmp_path):
    target = tmp_path / "metrics.json"
    with atomic.atomic(target) as tmp:
        assert tmp.parent == tmp_path  # same folder: the rename is atomic
        assert tmp.suffix == ".json"  # writers that pick a format by suffix still work
        assert not target.exists()  # nothing visible until the body is done
        tmp.write_text('{"a": 1}')
    assert target.read_text() == '{"a": 1}'
    assert leftovers(tmp_path) == []


def test_atomic_replaces_an_existing_file(tmp_path):
    target = tmp_path / "run.json"
    target.write_text("old")
    atomic.write_text(target, "new")
    assert target.read_text() == "new"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_atomic_failure_keeps_the_original(tmp_path, error):
    target = tmp_path / "model.keras"
    target.write_text("the good model")
    with pytest.raises(error):
        with atomic.atomic(target) as tmp:
            tmp.write_text("half a mod")
            raise error("crash")
    assert target.read_text() == "the good model"
    assert leftovers(tmp_path) == []
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]


def test_atomic_failure_without_an_original(tmp_path):
    target = tmp_path / "history.csv"
    with pytest.raises(ValueError):
        with atomic.atomic(target) as tmp:
            tmp.write_text("epoch,loss\n")
            raise ValueError("boom")
    assert list(tmp_path.iterdir()) == []


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_file_mode_follows_umask(tmp_path):
    target = tmp_path / "config.yaml"
    atomic.write_text(target, "seed: 1\n")
    mode = stat.S_IMODE(target.stat().st_mode)
    assert mode != 0o600 or current_umask() == 0o177
    assert mode == 0o666 & ~current_umask()
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert mode == stat.S_IMODE(plain.stat().st_mode)  # like any file the user writes


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_atomic_file_mode_with_a_given_umask(tmp_path, umask, expected):
    target = tmp_path / "metrics.json"
    code = textwrap.dedent(
        f"""
        import os, stat
        os.umask({umask})
        from nnrun import atomic
        atomic.write_json({str(target)!r}, {{"a": 1}})
        print(oct(stat.S_IMODE(os.stat({str(target)!r}).st_mode)))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == oct(expected)


# --- JSON ------------------------------------------------------------------------


def test_write_json_and_read_json(tmp_path):
    target = tmp_path / "metrics.json"
    atomic.write_json(target, {"accuracy": 0.9, "names": ["a", "b"]})
    assert rundir.read_json(target) == {"accuracy": 0.9, "names": ["a", "b"]}
    assert target.read_text().endswith("\n")
    assert json.loads(target.read_text()) == {"accuracy": 0.9, "names": ["a", "b"]}


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_write_json_refuses_nan_without_leaving_a_file(tmp_path, bad):
    target = tmp_path / "metrics.json"
    with pytest.raises(ValueError):
        atomic.write_json(target, {"loss": bad})
    assert list(tmp_path.iterdir()) == []


def test_write_json_nan_keeps_the_previous_file(tmp_path):
    target = tmp_path / "metrics.json"
    atomic.write_json(target, {"loss": 0.5})
    with pytest.raises(ValueError):
        atomic.write_json(target, {"loss": float("nan")})
    assert rundir.read_json(target) == {"loss": 0.5}
    assert leftovers(tmp_path) == []


def test_read_json_missing_names_the_directory(tmp_path):
    run = tmp_path / "not-a-run"
    run.mkdir()
    with pytest.raises(RunDirError) as info:
        rundir.read_json(run / rundir.RUN)
    message = str(info.value)
    assert str(run) in message
    assert "not a run directory" in message
    assert "run.json" in message
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: None, "run directory '{p}' does not exist"),
        (lambda p: p.write_text("a file"), "run directory '{p}' is a file, not a directory"),
        (lambda p: p.mkdir(), "'{p}' is not a run directory: no run.json"),
        (lambda p: (p.mkdir(), (p / rundir.SWEEP).write_text("{}")), "'{p}' is a sweep directory, not a run"),
    ],
)
def test_what_is_not_a_run_directory_is_named_once_for_every_command(tmp_path, make, expected):
    path = tmp_path / "candidate"
    make(path)
    assert not rundir.is_run_dir(path)
    with pytest.raises(RunDirError) as info:
        rundir.check_run_dir(path)
    assert str(info.value).startswith(expected.format(p=path))
    with pytest.raises(RunDirError) as info:
        rundir.read_config_yaml(path)  # runs diff and the listing's data column read through it
    assert str(info.value).startswith(expected.format(p=path))


def test_a_folder_with_a_run_json_is_a_run_directory_and_its_config_is_read_as_written(tmp_path):
    run = rundir.create(tmp_path, "run")
    (run / rundir.RUN).write_text("{}")
    (run / rundir.CONFIG).write_text("data: {source: sklearn, name: iris}\nmodel: [Dense: 3]\n")
    assert rundir.is_run_dir(run) and rundir.check_run_dir(str(run)) == run
    assert rundir.read_config_yaml(run) == {"data": {"source": "sklearn", "name": "iris"}, "model": [{"Dense": 3}]}
    with pytest.raises(RunDirError, match="its config.yaml is not valid"):
        rundir.read_config(run)  # no loss: read_config validates, as evaluate and resume need
    (run / rundir.CONFIG).write_bytes(b"data: \xff\n")
    with pytest.raises(RunDirError, match="config.yaml': cannot read: not UTF-8 text"):
        rundir.read_config_yaml(run)
    (run / rundir.CONFIG).write_text("notes: " + "x" * (1 << 20))
    with pytest.raises(RunDirError, match="bytes, more than a config.yaml may have"):
        rundir.read_config_yaml(run)


def test_read_json_of_a_broken_file(tmp_path):
    target = tmp_path / "run.json"
    target.write_text("{not json")
    with pytest.raises(RunDirError) as info:
        rundir.read_json(target)
    assert str(target) in str(info.value)
    assert "cannot read" in str(info.value)


# --- run.json, latest, newest -----------------------------------------------------------


def test_update_run_merges_fields(tmp_path):
    run = rundir.create(tmp_path, "exp")
    record.update_info(run, status=Status.RUNNING, started_at="2024-01-02T03:04:05", seed=7)
    first = record.read_info(run)
    assert (first.status, first.started_at, first.seed) == (Status.RUNNING, "2024-01-02T03:04:05", 7)
    record.update_info(run, status=Status.COMPLETED, finished_at="2024-01-02T03:05:00")
    merged = record.read_info(run)
    expected = {
        "status": "completed",
        "started_at": "2024-01-02T03:04:05",
        "seed": 7,
        "finished_at": "2024-01-02T03:05:00",
    }
    assert rundir.read_json(run / rundir.RUN) == expected, "the words written; unknown fields kept, in their order"
    assert merged.status is Status.COMPLETED and merged.finished_at == "2024-01-02T03:05:00"
    assert list(rundir.read_json(run / rundir.RUN)) == list(expected)
    assert leftovers(run) == []


def test_update_run_leaves_out_what_no_longer_holds(tmp_path):
    run = rundir.create(tmp_path, "exp")
    record.update_info(run, status=Status.FAILED, error="diverged", seed=7)
    record.update_info(run, ("error",), status=Status.RUNNING)
    assert rundir.read_json(run / rundir.RUN) == {"status": "running", "seed": 7}


def test_a_status_reads_as_its_word_and_a_dead_running_run_as_crashed(tmp_path):
    run = rundir.create(tmp_path, "exp")
    record.update_info(run, status=Status.RUNNING, pid=2**22 + 12345, host=socket.gethostname())
    info = record.read_info(run)
    assert record.status(info) is Status.CRASHED and f"{record.status(info)}" == "crashed"
    assert {"crashed": 1}[record.status(info)] == 1, "hashed as its word, so tables of words find it"
    record.update_info(run, pid=os.getpid())
    assert record.status(record.read_info(run)) is Status.RUNNING
    record.update_info(run, pid=1, host="another-host")
    assert record.status(record.read_info(run)) is Status.RUNNING, "another host's process cannot be checked here"


def test_a_run_json_damaged_while_training_still_gets_the_runs_ending(tmp_path):
    from nnrun.rundir import runinfo

    run = rundir.create(tmp_path, "exp")
    atomic.write_json(run / rundir.RUN, {"status": "running", "epochs": "ten"})  # a known field of the wrong type
    assert runinfo.finish(run, time.time(), Status.FAILED, error="boom") is None, "recorded: nothing to say"
    written = rundir.read_json(run / rundir.RUN)
    assert (written["status"], written["error"], written["epochs"]) == ("failed", "boom", "ten")
    with pytest.raises(RunDirError, match="epochs: input should be a valid integer"):
        record.read_info(run)  # readers still refuse it, naming the field


def test_an_ending_that_cannot_be_recorded_fails_naming_run_json(tmp_path, monkeypatch):
    from nnrun.errors import WriteFailed
    from nnrun.rundir import runinfo

    run = rundir.create(tmp_path, "exp")
    atomic.write_json(run / rundir.RUN, {"status": "running"})
    full_disk(monkeypatch, rundir.RUN)
    with pytest.raises(WriteFailed) as caught:
        runinfo.finish(run, time.time(), Status.INTERRUPTED, error="stopped by SIGTERM")
    assert str(caught.value) == f"no space left on device writing '{run / rundir.RUN}'"
    assert rundir.read_json(run / rundir.RUN) == {"status": "running"}


def test_records_are_written_back_as_they_were_written():
    export = {"file": "model.onnx", "sha256": "a", "max_abs_difference": 1e-6, "model_sha256": "b", "versions": {}}
    assert list(record.plain([record.Export.model_validate(export)])[0]) == list(export)
    info = record.RunInfo.model_validate({"status": "completed", "mlflow": "not a mapping"})
    assert info.mlflow == "not a mapping", "a field nnrun never relied on the type of is not refused"


def make_run(root, name, started_at, model=True):
    run = root / name
    (run / rundir.PLOTS).mkdir(parents=True)
    record.update_info(run, status="completed", started_at=started_at)
    if model:
        (run / rundir.MODEL).write_bytes(b"a stand-in: newest() only looks for the file")
    return run


def test_latest_points_at_the_newest_completed_run_whichever_completes_last(tmp_path):
    root = tmp_path / "runs"
    first = make_run(root, "a-20240101-000000", "2024-01-01T00:00:00")
    finding.update_latest(root)
    assert (root / "latest").resolve() == first.resolve()
    second = make_run(root, "b-20240102-000000", "2024-01-02T00:00:00")
    finding.update_latest(root)
    assert (root / "latest").resolve() == second.resolve()
    assert (root / "latest" / "run.json").exists()
    # A run started earlier that completes later (a longer one) does not take `latest`: evaluate's default agrees.
    record.update_info(first, ended_at="2024-01-03T00:00:00")
    finding.update_latest(root)
    assert (root / "latest").resolve() == second.resolve() == finding.newest(root).resolve()
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []


def test_two_runs_completing_together_leave_latest_at_the_newest(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    older = make_run(root, "a-20240101-000000", "2024-01-01T00:00:00")
    newer = make_run(root, "b-20240102-000000", "2024-01-02T00:00:00")
    record.update_info(newer, status="running")
    link, links = rundir.point_latest, []

    def slow_link(path):  # the older run found itself newest; the newer one completes before it links
        links.append(Path(path).name)
        if len(links) == 1:
            record.update_info(newer, status="completed")
            finding.update_latest(root)
        link(path)

    monkeypatch.setattr(rundir, "point_latest", slow_link)
    finding.update_latest(root)
    # The older run's stale link landed after the newer run's; its second look put `latest` right.
    assert links == [older.name, newer.name, newer.name]
    assert (root / "latest").resolve() == newer.resolve() == finding.newest(root).resolve()


def test_latest_survives_moving_the_runs_folder(tmp_path):
    root = tmp_path / "runs"
    run = make_run(root, "a-20240101-000000", "2024-01-01T00:00:00")
    finding.update_latest(root)
    moved = tmp_path / "moved"
    root.rename(moved)
    assert (moved / "latest").resolve() == (moved / run.name).resolve()


def test_newest_goes_by_start_time_not_name(tmp_path):
    root = tmp_path / "runs"
    make_run(root, "zzz-20240101-000000", "2024-01-01T10:00:00")
    later = make_run(root, "aaa-20240101-000000", "2024-01-01T11:00:00")
    make_run(root, "mmm-20240101-000000", "2024-01-01T09:00:00")
    assert finding.newest(root) == later


def test_newest_skips_runs_without_a_model(tmp_path):
    root = tmp_path / "runs"
    trained = make_run(root, "a-trained", "2024-01-01T00:00:00")
    make_run(root, "b-failed", "2024-06-01T00:00:00", model=False)
    assert finding.newest(root) == trained


def test_newest_ignores_latest_and_folders_that_are_not_runs(tmp_path):
    root = tmp_path / "runs"
    make_run(root, "a-old", "2024-01-01T00:00:00")
    new = make_run(root, "b-new", "2024-06-01T00:00:00")
    finding.update_latest(root)  # `latest` ties with b-new on start time and sorts after it by name
    (root / "scratch").mkdir()
    (root / "notes.txt").write_text("hi")
    found = finding.newest(root)
    assert found == new
    assert not found.is_symlink()  # the run's real directory, not the link


@pytest.mark.parametrize("make_root", [True, False])
def test_newest_without_runs(tmp_path, make_root):
    root = tmp_path / "runs"
    if make_root:
        root.mkdir()
        (root / "empty-dir").mkdir()
    with pytest.raises(RunDirError) as info:
        finding.newest(root)
    message = str(info.value)
    assert "no completed runs" in message
    assert str(root) in message
    assert "nnrun train" in message and "--run" in message


def test_the_command_run_json_records_never_holds_a_database_password():
    from nnrun.rundir import runinfo

    # `nnrun sweep --storage URL` with the password in it is documented use; each trial's run.json records
    # the command line, and MLflow is given the run directory's files.
    argv = [
        "nnrun",
        "sweep",
        "cfg.yaml",
        "--storage",
        "postgresql://nnrun:s3cret@db:5432/optuna",
        "--set",
        "sweep.storage=postgresql://nnrun@db/optuna?sslmode=require&password=s3cret",
        "--storage=postgresql://nnrun:p@ss@db/optuna",  # unescaped: SQLAlchemy splits at the last @
        "--set",
        "data.path=data/a:b@c.csv",  # no URL: kept
    ]
    assert runinfo.recorded_command(argv) == [
        "nnrun",
        "sweep",
        "cfg.yaml",
        "--storage",
        "postgresql://nnrun:***@db:5432/optuna",
        "--set",
        "sweep.storage=postgresql://nnrun@db/optuna?sslmode=require&password=***",
        "--storage=postgresql://nnrun:***@db/optuna",
        "--set",
        "data.path=data/a:b@c.csv",
    ]
