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
