"""A full disk: each write that fails is one line naming its file (exit 1), run.json tells the truth,
and nothing half-made is left behind.

The disk fills through `conftest.full_disk` (a flush that fails with ENOSPC). No test here trains:
those that need a trained run use the shared ones. A full disk while a run trains, or as it ends, is in test_resume.py.
"""

import errno
import io
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from nnrun import atomic
from nnrun.cli.main import cli
from nnrun.errors import NnrunError, WriteFailed

from conftest import copy_run, full_disk

ENOSPC = os.strerror(errno.ENOSPC)


def leftovers(folder):
    """The temporary files (and folders) of nnrun's writes under `folder`."""
    return sorted(p.name for p in Path(folder).rglob(f"*{atomic.TMP_MARK}*"))


def one_error_line(result, code=1):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and result.stderr.endswith(lines[0] + "\n"), result.stderr
    return lines[0]


def full_disk_line(result, folder, name, advice):
    """Asserts that the command's one error line names the file (`name`, a pattern) in `folder`, then `advice`."""
    line = one_error_line(result)
    where = rf"{re.escape(str(folder))}/{name}"
    assert re.fullmatch(rf"error: no space left on device writing '{where}'; {re.escape(advice)}", line), line


def _cut_short():
    raise OSError(errno.ENOSPC, ENOSPC)


def _cut_short_then_closed():
    """As zipfile does: the write fails, then closing the archive fails over what the first left."""
    try:
        _cut_short()
    except OSError:
        raise ValueError("I/O operation on closed file")  # noqa: B904


@pytest.mark.parametrize("where", ["writing", "cleaning up", "flushing"])
def test_a_write_that_meets_a_full_disk_names_its_file_and_keeps_the_old_one(tmp_path, monkeypatch, where):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    if where == "flushing":
        full_disk(monkeypatch, "metrics.json")
    with pytest.raises(WriteFailed) as caught, atomic.atomic(target) as tmp:
        tmp.write_text("new")
        {"writing": _cut_short, "cleaning up": _cut_short_then_closed}.get(where, lambda: None)()
    assert str(caught.value) == f"no space left on device writing '{target}'"
    assert (caught.value.exit_code, caught.value.path) == (1, target)
    assert target.read_text() == "old" and leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "failing, code, exit_code",
    [("runs/exp-*", errno.ENOSPC, 1), ("runs/exp-*", errno.EACCES, 2), ("runs/exp-*/plots", errno.ENOSPC, 1)],
)
def test_a_run_directory_that_cannot_be_made_is_the_disks_fault_or_the_configs(
    tmp_path, monkeypatch, failing, code, exit_code
):
    from nnrun.rundir import files as rundir

    real = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self.match(str(tmp_path / failing)):
            raise OSError(code, os.strerror(code))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    with pytest.raises(NnrunError) as caught:
        rundir.create(tmp_path / "runs", "exp")
    assert caught.value.exit_code == exit_code, caught.value
    assert os.strerror(code).lower() in str(caught.value).lower()
    assert list((tmp_path / "runs").iterdir()) == [], "no run directory half-made"


def _compiled_model():
    from nnrun.backend import keras

    k = keras()
    model = k.Sequential([k.Input((4,)), k.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.optimizer.build(model.trainable_variables)
    return model


def _hdf5_opened(monkeypatch):
    """Records what h5py opens a file on, and how: `(file name or object, mode)`."""
    import h5py

    real, opened = h5py.File.__init__, []

    def init(self, name, mode="r", *args, **kwargs):
        opened.append((name, mode))
        real(self, name, mode, *args, **kwargs)

    monkeypatch.setattr(h5py.File, "__init__", init)
    return opened


@pytest.mark.backend
def test_a_backup_that_meets_a_full_disk_names_its_file_and_keeps_the_one_before(tmp_path, monkeypatch):
    from nnrun.training import backup

    model = _compiled_model()
    saver = backup.Backup(tmp_path / "backup")
    saver.set_model(model)
    opened = _hdf5_opened(monkeypatch)
    saver.on_epoch_end(0, {"loss": 1.0})
    full_disk(monkeypatch, "latest.weights.h5")
    with pytest.raises(WriteFailed) as caught:
        saver.on_epoch_end(1, {"loss": 0.5})
    assert str(caught.value) == f"no space left on device writing '{tmp_path / 'backup' / 'latest.weights.h5'}'"
    assert leftovers(tmp_path) == []
    assert backup.restore(model, tmp_path / "backup").epoch == 1, "the first epoch's backup is whole"
    # HDF5 crashes the process (SIGSEGV at exit) when the disk fills under a file it writes: it never writes one.
    written = [name for name, mode in opened if mode != "r"]
    assert len(written) == 2 and all(isinstance(name, io.BytesIO) for name in written), opened


@pytest.mark.backend
def test_the_legacy_h5_model_is_made_in_memory_and_named_when_it_cannot_be_written(tmp_path, monkeypatch):
    from nnrun.training import results

    opened = _hdf5_opened(monkeypatch)
    full_disk(monkeypatch, "model.h5")
    with pytest.raises(WriteFailed, match=re.escape(f"no space left on device writing '{tmp_path / 'model.h5'}'")):
        results.save_model(_compiled_model(), tmp_path, save_h5=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"] and leftovers(tmp_path) == []
    written = [name for name, mode in opened if mode != "r"]
    assert written and all(isinstance(name, io.BytesIO) for name in written), opened


@pytest.mark.backend
@pytest.mark.parametrize("name", ["run.json", "config.yaml", "preprocessing.json"])
def test_a_new_run_whose_first_files_cannot_be_written_is_removed(runner, write_config, tmp_path, monkeypatch, name):
    full_disk(monkeypatch, name)
    result = runner.invoke(cli, ["train", str(write_config())])
    advice = "nothing was trained, and the new run directory is removed"
    full_disk_line(result, tmp_path / "runs", rf"tiny-[0-9-]+/{re.escape(name)}", advice)
    assert list((tmp_path / "runs").iterdir()) == [], "no folder that `nnrun runs` would never list"


@pytest.mark.backend
def test_a_model_checkpoint_that_meets_a_full_disk_leaves_no_part_of_itself(tmp_path, monkeypatch):
    from nnrun.training.callbacks import AtomicModelCheckpoint

    model = _compiled_model()
    checkpoint = AtomicModelCheckpoint(str(tmp_path / "model.best.keras"), monitor="val_loss")
    checkpoint.set_model(model)

    def save(self, path, **kwargs):
        Path(path).write_bytes(b"PK part of a zip")
        raise OSError(errno.ENOSPC, ENOSPC)

    monkeypatch.setattr(type(model), "save", save)
    with pytest.raises(WriteFailed, match=re.escape(f"writing '{tmp_path / 'model.best.keras'}'")):
        checkpoint.on_epoch_end(0, {"val_loss": 0.5})
    assert list(tmp_path.iterdir()) == []


def test_a_resume_that_cannot_record_its_new_settings_keeps_the_old_ones(tmp_path, monkeypatch):
    from nnrun.training import resume

    run = tmp_path / "run"
    run.mkdir()
    atomic.write_text(run / "config.yaml", "old: config\n")
    atomic.write_json(run / "run.json", {"epochs": 2, "config_sha256": atomic.sha256_text("old: config\n")})
    full_disk(monkeypatch, "run.json")
    with pytest.raises(WriteFailed, match="run.json"):
        resume._rewrite_config(run, "new: config\n", 4)
    assert (run / "config.yaml").read_text() == "old: config\n", "config.yaml and run.json agree, as before"
    assert json.loads((run / "run.json").read_text())["epochs"] == 2
    assert leftovers(tmp_path) == []


def test_evaluate_on_a_full_disk_leaves_no_evaluation_folder(runner, iris_run, tmp_path, monkeypatch):
    run = copy_run(iris_run.path, tmp_path / "runs")
    shutil.rmtree(run / "evaluation", ignore_errors=True)  # other tests evaluate the shared run in place
    before = (run / "run.json").read_text()
    full_disk(monkeypatch, "metrics.json")
    result = runner.invoke(cli, ["evaluate", str(run)])
    made = r"evaluation-[0-9-]+/metrics\.json"
    full_disk_line(result, run / "evaluation", made, "nothing of this evaluation was kept")
    assert not (run / "evaluation").exists(), "the folder this evaluation made is gone"
    assert (run / "run.json").read_text() == before
