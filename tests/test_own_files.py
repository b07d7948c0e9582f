"""A run directory's own files: never read through a link, never past a bound, never echoed in a message."""

import json
import os

import numpy as np
import pytest

from nnrun.cli.main import cli
from nnrun.errors import RunDirError
from nnrun.rundir import files as rundir

from conftest import linked_elsewhere

SECRET = "root:x:0:0:secret-line:/root:/bin/bash\n"
REFUSED = "is a symbolic link; a run directory holds its own files"


def made_run(root, name, **files):
    """A run directory written by hand (no training): a completed run.json, a config and two epochs."""
    run = root / name
    run.mkdir(parents=True)
    contents = {
        rundir.RUN: json.dumps({"status": "completed", "name": name, "started_at": "2026-01-01T00:00:00"}),
        rundir.CONFIG: "data: {source: sklearn, name: iris}\nmodel: [{Dense: 3}]\n",
        rundir.HISTORY: "epoch,loss\n1,0.9\n2,0.5\n",
        rundir.METRICS: json.dumps({"test": {"loss": 0.5, "accuracy": 0.8}}),
        **files,
    }
    for file, text in contents.items():
        (run / file).write_text(text)
    return run


@pytest.fixture
def secret(tmp_path):
    """A file outside every run directory that nothing may show."""
    path = tmp_path / "passwd"
    path.write_text(SECRET)
    return path


def linked(run, file, target):
    (run / file).unlink(missing_ok=True)
    (run / file).symlink_to(target)
    return run / file


def test_runs_compare_never_reads_a_linked_history_nor_shows_it(runner, tmp_path, secret):
    a, b = made_run(tmp_path, "a"), made_run(tmp_path, "b")
    link = linked(b, rundir.HISTORY, secret)
    result = runner.invoke(cli, ["runs", "compare", str(a), str(b), "--output", str(tmp_path / "c.png")])
    assert result.exit_code == 2, result.output
    assert result.output == f"error: '{link}' {REFUSED}\n"
    assert not (tmp_path / "c.png").exists()


@pytest.mark.parametrize("file", [rundir.RUN, rundir.CONFIG, rundir.METRICS])
def test_runs_diff_never_reads_a_linked_file_nor_shows_it(runner, tmp_path, secret, file):
    a, b = made_run(tmp_path, "a"), made_run(tmp_path, "b")
    link = linked(b, file, secret)
    result = runner.invoke(cli, ["runs", "diff", str(a), str(b)])
    assert "secret-line" not in result.output and f"'{link}' {REFUSED}" in result.output, result.output
    if file == rundir.CONFIG:  # the configs are what diff compares: without one it has no answer
        assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    else:  # the rest is shown, and what could not be read is said on stderr
        assert result.exit_code == 0, result.output
        assert result.stderr == f"warning: '{link}' {REFUSED}\n"


@pytest.mark.parametrize(
    "file, text, expected",
    [
        (rundir.METRICS, "[1, 2]", "metrics.json': expected a JSON object, got list"),
        (rundir.METRICS, "{not json", "metrics.json': cannot read: not JSON"),
        (rundir.RUN, '{"status": "done"}', "run.json': status: input should be"),
    ],
)
def test_runs_diff_says_what_it_could_not_read(runner, tmp_path, file, text, expected):
    a, b = made_run(tmp_path, "a"), made_run(tmp_path, "b", **{file: text})
    result = runner.invoke(cli, ["runs", "diff", str(a), str(b), "--json"])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(f"warning: '{b}") and expected in result.stderr, result.stderr
    assert json.loads(result.stdout)["problems"] == [result.stderr.removeprefix("warning: ").strip()]


def test_a_history_that_is_not_numbers_names_the_line_not_its_text(tmp_path):
    run = made_run(tmp_path, "a", **{rundir.HISTORY: "epoch,loss\n1,0.5\n2,hunter2\n"})
    with pytest.raises(RunDirError) as info:
        rundir.read_history(run / rundir.HISTORY)
    assert str(info.value) == f"'{run / rundir.HISTORY}': cannot be read: line 3 is not 2 numbers"


@pytest.mark.parametrize(
    "file, size",
    [
        (rundir.RUN, 1 << 30),
        (rundir.PREPROCESSING, 1 << 30),
        (rundir.HISTORY, (4 << 20) + 1),
        (rundir.METRICS, 1 << 21),
    ],
)
def test_an_oversized_file_is_refused_before_it_is_read(tmp_path, monkeypatch, file, size):
    run = made_run(tmp_path, "a")
    with open(run / file, "wb") as f:  # sparse: costs no disk
        f.truncate(size)
    opened = os.fdopen

    class Unread:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def fileno(self):
            return self.f.fileno()

        def read(self, size=-1):
            pytest.fail("read past the bound")

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: Unread(opened(fd, mode)))
    with pytest.raises(RunDirError) as info:
        rundir.read_text(run / file)
    limit = rundir.MAX_FILE_BYTES.get(file, rundir.MAX_BYTES)
    assert str(info.value) == f"'{run / file}': {size} bytes, more than a {file} may have ({limit})"


def test_nnrun_runs_skips_an_oversized_run_json_naming_it(runner, tmp_path):
    made_run(tmp_path, "good")
    huge = made_run(tmp_path, "huge")
    with open(huge / rundir.RUN, "r+b") as f:
        f.truncate(1 << 30)
    result = runner.invoke(cli, ["runs", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    assert [row["name"] for row in json.loads(result.stdout)] == ["good"]
    assert f"warning: {huge}: skipped: '{huge / rundir.RUN}': {1 << 30} bytes, more than" in result.stderr


def test_what_is_not_a_file_is_refused_without_waiting_on_it(tmp_path):
    run = made_run(tmp_path, "a")
    (run / rundir.METRICS).unlink()
    os.mkfifo(run / rundir.METRICS)  # opening a pipe to read would wait for a writer
    with pytest.raises(RunDirError, match="metrics.json' is not a file"):
        rundir.read_json(run / rundir.METRICS)


@pytest.mark.any_backend
@pytest.mark.parametrize("model", ["model.keras", "model.best.keras"])
def test_a_linked_model_is_refused_by_evaluate_and_predict(runner, tiny_run, tmp_path, model):
    import shutil

    shutil.copy(tiny_run / rundir.MODEL, tmp_path / "elsewhere.keras")
    link = linked(tiny_run, model, tmp_path / "elsewhere.keras")
    np.save(tmp_path / "x.npy", np.ones((1, 4), dtype="float32"))
    best = ["--model", "best"] if model == rundir.BEST_MODEL else []
    for args in (
        ["evaluate", str(tiny_run), *best],
        ["predict", str(tmp_path / "x.npy"), "--run", str(tiny_run), *best],
    ):
        result = runner.invoke(cli, args)
        assert result.exit_code == 2, result.output
        assert f"'{link}' {REFUSED}" in result.output and "Traceback" not in result.output, result.output


def test_preprocessing_notes_are_bounded(tmp_path):
    from nnrun.data import schema

    prep = {"kind": "array", "input_shape": [4], "task": "regression", "notes": ["x"] * 100_001}
    with pytest.raises(RunDirError, match="notes: list should have at most 100000 items"):
        schema.check(prep, tmp_path / rundir.PREPROCESSING)


@pytest.mark.any_backend
def test_export_never_writes_through_a_linked_export_folder(runner, tiny_run, tmp_path):
    link, elsewhere = linked_elsewhere(tiny_run, "export", tmp_path)
    result = runner.invoke(cli, ["export", str(tiny_run), "--format", "onnx"])
    assert result.exit_code == 2, result.output
    assert result.output == f"error: '{link}' {REFUSED}\n"
    assert list(elsewhere.iterdir()) == []


def test_runs_latest_that_points_outside_its_runs_folder_is_refused(tmp_path):
    elsewhere = made_run(tmp_path / "someone", "theirs")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / rundir.LATEST).symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(RunDirError) as info:
        rundir.check_run_dir(tmp_path / "runs" / rundir.LATEST)
    assert str(info.value) == (
        f"'{tmp_path / 'runs' / 'latest'}' points outside its runs folder (at '{elsewhere}'); name that run instead"
    )
    mine = made_run(tmp_path / "runs", "mine")
    rundir.point_latest(mine)
    assert rundir.check_run_dir(tmp_path / "runs" / rundir.LATEST) == tmp_path / "runs" / rundir.LATEST


@pytest.mark.parametrize(
    "text, expected",
    [("[" * 100_000 + "]" * 100_000, "cannot read: nested too deeply"), ("9" * 5000, "cannot read: a number too long")],
)
def test_a_run_json_that_json_cannot_take_is_skipped_by_nnrun_runs(runner, tmp_path, text, expected):
    made_run(tmp_path, "good")
    odd = made_run(tmp_path, "odd", **{rundir.RUN: text})
    result = runner.invoke(cli, ["runs", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    assert [row["name"] for row in json.loads(result.stdout)] == ["good"]
    assert result.stderr == f"warning: {odd}: skipped: '{odd / rundir.RUN}': {expected}\n"


def test_a_model_or_config_that_is_not_a_file_is_named_so(tmp_path):
    from nnrun.rundir import record

    run = made_run(tmp_path, "a")
    os.mkfifo(run / rundir.MODEL)
    with pytest.raises(RunDirError, match=f"^'{run / rundir.MODEL}' is not a file$"):
        record.read(run)


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda p: p.update(class_names=["cat", "\x1b[2Jdog"]), "class_names.1: string should match pattern"),
        (lambda p: p.update(rescale="XYZZY"), "rescale: input should be a valid number"),
    ],
)
def test_preprocessing_is_checked_without_quoting_it_and_names_hold_no_escapes(tmp_path, change, expected):
    from nnrun.data import schema

    prep = {"kind": "array", "input_shape": [4], "task": "classification", "class_names": ["cat", "dog"]}
    change(prep)
    with pytest.raises(RunDirError) as info:
        schema.check(prep, tmp_path / rundir.PREPROCESSING)
    assert expected in str(info.value) and "XYZZY" not in str(info.value) and "\x1b" not in str(info.value)


def test_a_pid_no_process_can_have_is_not_running():
    from nnrun.rundir import liveness

    assert not liveness.alive(2**31) and not liveness.alive(2**70)


@pytest.mark.parametrize("kind", ["fifo", "not npy"])
def test_predict_reads_no_pipe_and_quotes_no_file(tmp_path, kind):
    from nnrun.errors import DataError
    from nnrun.inference import predict

    path = tmp_path / "x.npy"
    if kind == "fifo":
        os.mkfifo(path)  # opening it to read would wait for a writer
    else:
        path.write_text(SECRET)
    with pytest.raises(DataError) as info:
        next(predict._read(path, {"kind": "array", "input_shape": [4]}, None, []))
    wanted = "not a file" if kind == "fifo" else "not a .npy array (it does not begin as one)"
    assert str(info.value) == f"{path}: {wanted}"


@pytest.mark.any_backend
def test_a_model_file_that_is_no_keras_file_is_named_so(runner, tiny_run):
    with open(tiny_run / rundir.MODEL, "r+b") as f:
        f.truncate(0)
        f.truncate(2 << 30)  # sparse
    result = runner.invoke(cli, ["evaluate", str(tiny_run)])
    assert result.exit_code == 2, result.output
    assert result.output == (
        f"error: '{tiny_run / rundir.MODEL}' is not a Keras model file (a .keras file is a zip archive)\n"
    )


def test_a_history_the_csv_module_refuses_is_named_not_shown(tmp_path):
    run = made_run(tmp_path, "a", **{rundir.HISTORY: "epoch,loss\n1," + "9" * 200_000 + "\n"})
    with pytest.raises(RunDirError) as info:
        rundir.read_history(run / rundir.HISTORY)
    assert str(info.value) == f"'{run / rundir.HISTORY}': cannot be read: not CSV"


def test_keys_from_the_file_are_named_only_when_short_and_printable(tmp_path):
    from nnrun.data import schema

    prep = {"kind": "table", "input_shape": [1], "task": "regression", "columns": ["age"], "categorical": {}}
    for key, shown in (("age", "numeric.age.fill"), ("\x1b[31mSECRET", "numeric.[...].fill")):
        with pytest.raises(RunDirError) as info:
            schema.check({**prep, "numeric": {key: {"fill": "zz"}}}, tmp_path / rundir.PREPROCESSING)
        assert f": {shown}: input should be a valid number" in str(info.value), str(info.value)


def test_marking_a_cut_off_trial_never_stops_the_sweep(tmp_path):
    import optuna

    from nnrun.sweep import study as sweep_study

    study = optuna.create_study()
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    run = made_run(tmp_path / "trials", "trial-001")
    linked(run, rundir.RUN, tmp_path / "elsewhere.json")  # unreadable as the run's own
    (tmp_path / "elsewhere.json").write_text("{}")
    sweep_study.again(study, trial, run)  # raises nothing: the point is queued again all the same
    (queued,) = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert queued.user_attrs == {"retry_of": trial.number + 1}
    assert (tmp_path / "elsewhere.json").read_text() == "{}"


def test_plots_that_cannot_be_drawn_leave_a_completed_run_and_say_so(tmp_path, monkeypatch):
    from nnrun.errors import RunFailed
    from nnrun.training import results

    def out_of_memory(*args):
        raise MemoryError("the test split")

    monkeypatch.setattr(results, "learning_curves", out_of_memory)
    with pytest.raises(RunFailed) as info:
        results.draw(
            None,
            None,
            type("Recorder", (), {"history": []})(),
            tmp_path,
            type("C", (), {"output": type("O", (), {"name": "x"})})(),
        )
    assert str(info.value) == (
        "its plots could not be drawn (MemoryError: the test split); the run completed: its model and metrics are saved"
    )
    assert info.value.run_dir == tmp_path
