"""Runs that survive: backups, `nnrun resume`, stop signals, failures that are still recorded."""

import csv
import json
import math
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import yaml

from nnrun import atomic
from nnrun.cli.main import cli

from conftest import TINY, copy_run, full_disk, interrupt_after, linked_elsewhere, signalled
from processes import FOREVER, backed_up, run_dir, start, stop, wait_for

# What a resume restores (weights, optimizer and seed state, a backup cut mid-write) goes through the
# backend and runs in both passes; refusals and bookkeeping (a changed config or data, another host, a
# running run, damaged files, exit codes) are marked any_backend and run in the TensorFlow pass only.
DIGITS = {
    "data": {"source": "sklearn", "name": "digits", "scale": "standard"},
    "model": [{"Dense": 16}, {"Dense": {"units": 10, "activation": "softmax"}}],
    "training": {"epochs": 3, "batch_size": 64},
}


@pytest.fixture
def digits_config(write_config):
    return write_config("digits.yaml", **DIGITS)


def history_epochs(run):
    return [int(row["epoch"]) for row in csv.DictReader((run / "history.csv").read_text().splitlines())]


def info(run):
    return json.loads((run / "run.json").read_text())


def steps_per_epoch(run):
    """Batches per epoch of the DIGITS config: train split (80%) less validation (10%), batch 64."""
    return math.ceil(int(1797 * 0.8 - round(1797 * 0.8 * 0.1)) / 64)


def optimizer_iterations(run):
    import keras

    return int(keras.models.load_model(run / "model.keras", safe_mode=True).optimizer.iterations.numpy())


# The templates are session fixtures, not module ones: xdist hands out one test at a time, and a
# worker that ran a test of another file in between would tear a module fixture down and make it again.
@pytest.fixture(scope="session")
def killed_template(tmp_path_factory):
    """A DIGITS run killed (SIGKILL) in a child process once two epochs were backed up; made once per session."""
    root = tmp_path_factory.mktemp("killed")
    config = root / "digits.yaml"
    config.write_text(yaml.safe_dump({**TINY, **DIGITS, "output": {"dir": str(root / "runs")}}, sort_keys=False))
    proc = start(config, "--set", FOREVER)
    run = wait_for(proc, lambda: backed_up(root / "runs", epochs=2), "two epochs were backed up")
    stop(proc, signal.SIGKILL)
    return run


@pytest.fixture
def killed_run(killed_template, tmp_path):
    """A killed DIGITS run of this test's own, alone in `tmp_path/runs` (a copy of the module's)."""
    return copy_run(killed_template, tmp_path / "runs")


def test_sigkill_after_a_backup_then_resume_continues_where_it_stopped(runner, killed_run, tmp_path):
    run = killed_run
    backed = json.loads((run / "backup" / "training_metadata.json").read_text())["epoch"]

    listed = runner.invoke(cli, ["runs", str(tmp_path / "runs"), "--json"])
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.stdout)
    assert row["status"] == "crashed" and row["hint"] == f"nnrun resume {run}"

    epochs = backed + 2
    result = runner.invoke(cli, ["resume", str(run), "--set", f"training.epochs={epochs}"])
    assert result.exit_code == 0, result.output
    assert f"resuming {run.name} from epoch {backed}" in result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(run)
    assert history_epochs(run) == list(range(1, epochs + 1)), "each epoch exactly once"
    assert optimizer_iterations(run) == epochs * steps_per_epoch(run), "the optimizer's step count continued"
    record = info(run)
    assert record["status"] == "completed" and record["epochs_completed"] == epochs and record["epochs"] == epochs
    (resumed,) = record["resumes"]
    assert resumed["from_epoch"] == backed and resumed["previous_status"] == "crashed"
    assert resumed["from_step"] == backed * steps_per_epoch(run)
    assert [a["status"] for a in record["attempts"]] == ["crashed", "completed"]
    assert yaml.safe_load((run / "config.yaml").read_text())["training"]["epochs"] == epochs
    assert not (run / "backup").exists(), "a completed run's backup is removed"
    assert (run.parent / "latest").resolve() == run.resolve()
    assert not [p for p in run.rglob(".*")], "temporary files left behind"


KILL_AT_THIRD_METADATA = """
import os, signal
from nnrun import atomic
real = atomic.write_json
count = [0]
def write_json(path, value):
    if str(path).endswith("training_metadata.json"):
        count[0] += 1
        if count[0] == 3:  # the weights of epoch 3 are written, their metadata is not
            os.kill(os.getpid(), signal.SIGKILL)
    return real(path, value)
atomic.write_json = write_json
"""


@pytest.mark.slow
def test_a_kill_in_the_middle_of_a_backup_resumes_from_the_one_before(runner, digits_config, tmp_path):
    proc = start(digits_config, "--set", FOREVER, wrapper=KILL_AT_THIRD_METADATA)
    code, err = stop_when_dead(proc)
    assert code == -signal.SIGKILL, err
    run = run_dir(tmp_path / "runs")
    assert history_epochs(run) == [1, 2, 3], "history.csv is written before the backup"

    result = runner.invoke(cli, ["resume", str(run), "--set", "training.epochs=4"])
    assert result.exit_code == 0, result.output
    assert "the latest backup was unusable" in result.stderr and "using the one before it" in result.stderr
    assert "from epoch 2" in result.stderr
    assert history_epochs(run) == [1, 2, 3, 4]
    assert optimizer_iterations(run) == 4 * steps_per_epoch(run)


def stop_when_dead(proc, timeout=120):
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def test_a_torn_latest_backup_falls_back_to_the_previous_one(runner, killed_run):
    run = killed_run
    latest = run / "backup" / "latest.weights.h5"
    torn = latest.read_bytes()[:1000]  # as a power loss mid-write would leave it
    latest.unlink()  # a new file: the previous backup may be a hard link to this one
    latest.write_bytes(torn)
    backed = json.loads((run / "backup" / "training_metadata.json.bkp").read_text())["epoch"]
    # The kill may land after an epoch's records and before its backup: run.json
    # may count more epochs than either backup holds, and resume asks for at least those.
    epochs = max(backed, info(run)["epochs_completed"]) + 1
    result = runner.invoke(cli, ["resume", str(run), "--set", f"training.epochs={epochs}"])
    assert result.exit_code == 0, result.output
    assert f"from epoch {backed}" in result.stderr and "unusable" in result.stderr
    assert history_epochs(run) == list(range(1, epochs + 1))


@pytest.mark.slow
def test_sigterm_saves_the_last_epoch_and_exits_143_then_resumes(runner, digits_config, tmp_path):
    with signalled(signal.SIGTERM, epochs=2):
        stopped = runner.invoke(cli, ["train", str(digits_config), "--quiet", "--set", FOREVER])
    run = run_dir(tmp_path / "runs")
    err = stopped.stderr
    assert stopped.exit_code == 143, stopped.output
    assert "stopped by SIGTERM" in err and f"nnrun resume {run}" in err and "Traceback" not in err
    record = info(run)
    assert record["status"] == "interrupted" and record["signal"] == "SIGTERM"
    assert record["pid"] == os.getpid() and record["heartbeat_at"] >= record["started_at"]
    done = record["epochs_completed"]
    assert done == 2, "the signal came once two epochs were done, and nnrun stopped at the next safe point"
    assert history_epochs(run) == list(range(1, done + 1))
    assert (run / "model.keras").is_file() and (run / "backup" / "latest.weights.h5").is_file()
    assert not [p for p in run.rglob(".*")], "temporary files left behind"
    assert not (run.parent / "latest").exists(), "latest moves only when a run completes"

    result = runner.invoke(cli, ["resume", str(run), "--set", f"training.epochs={done + 1}"])
    assert result.exit_code == 0, result.output
    assert info(run)["resumes"][0]["previous_status"] == "interrupted"
    assert "signal" not in info(run) and "error" not in info(run)


@pytest.mark.slow
@pytest.mark.any_backend
def test_a_signal_after_the_last_epoch_stops_the_run_until_its_last_file_is_written(
    runner, write_config, tmp_path, monkeypatch
):
    from nnrun.training import results

    save, write, sent = results.save_model, atomic.write_json, []

    def save_under_fire(*args):  # every epoch is done; the final model is being written
        if not sent:
            sent.append("model")
            os.kill(os.getpid(), signal.SIGTERM)
        return save(*args)

    def write_under_fire(path, value):  # past the last safe point: metrics.json is the run's last file
        if Path(path).name == "metrics.json":
            sent.append("metrics")
            os.kill(os.getpid(), signal.SIGTERM)
        return write(path, value)

    monkeypatch.setattr(results, "save_model", save_under_fire)
    monkeypatch.setattr(atomic, "write_json", write_under_fire)
    stopped = runner.invoke(cli, ["train", str(write_config()), "--quiet"])
    assert stopped.exit_code == 143, stopped.output
    run = run_dir(tmp_path / "runs")
    assert (info(run)["status"], info(run)["signal"], info(run)["epochs_completed"]) == ("interrupted", "SIGTERM", 2)
    assert (run / "model.keras").is_file() and not (run / "metrics.json").exists(), "stopped before its last file"
    assert not (run.parent / "latest").exists()

    # Resumed, it has nothing left to train: the signal lands as its last file is written, and it completes.
    resumed = runner.invoke(cli, ["resume", str(run)])
    assert resumed.exit_code == 0, resumed.output
    assert sent == ["model", "metrics"] and history_epochs(run) == [1, 2]
    assert "SIGTERM came as the run completed: it is complete" in resumed.stderr
    assert info(run)["status"] == "completed" and "signal" not in info(run) and (run / "metrics.json").is_file()
    assert (run.parent / "latest").resolve() == run.resolve() and not (run / "backup").exists()


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGHUP, 129)])
@pytest.mark.any_backend
def test_a_second_signal_while_saving_is_ignored(runner, digits_config, tmp_path, monkeypatch, signum, code):
    from nnrun.backend import keras

    save, saves = keras().Model.save, []

    def save_under_fire(self, *args, **kwargs):  # the second signal lands while the model is written
        saves.append(args)
        os.kill(os.getpid(), signum)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(keras().Model, "save", save_under_fire)
    with signalled(signum, epochs=1):
        result = runner.invoke(cli, ["train", str(digits_config), "--quiet", "--set", FOREVER])
    assert result.exit_code == code, result.output
    assert saves, "the model was saved, with a signal sent during it"
    run = run_dir(tmp_path / "runs")
    record = info(run)
    assert record["status"] == "interrupted" and record["signal"] == signal.Signals(signum).name
    assert (run / "model.keras").is_file(), "the second signal cut the save short"
    keras().models.load_model(run / "model.keras", safe_mode=True)
    assert not [p for p in run.rglob(".*")], "temporary files left behind"


@pytest.mark.slow
@pytest.mark.any_backend
def test_a_completed_run_has_nothing_to_resume(runner, digits_config):
    result = runner.invoke(cli, ["train", str(digits_config)])
    assert result.exit_code == 0, result.output
    run = result.stdout.strip().splitlines()[-1]
    again = runner.invoke(cli, ["resume", run])
    assert again.exit_code == 2
    assert again.output.strip() == f"error: {run}: the run is completed; there is nothing to resume"


def interrupt(config, runs):
    """Trains `config` in this process, Ctrl-C (SIGINT) once an epoch is backed up; returns the run."""
    from click.testing import CliRunner

    with signalled(signal.SIGINT, epochs=1):
        result = CliRunner().invoke(cli, ["train", str(config), "--quiet", "--set", FOREVER])
    assert result.exit_code == 130, result.output
    return run_dir(runs)


@pytest.fixture(scope="session")
def interrupted_template(tmp_path_factory):
    root = tmp_path_factory.mktemp("interrupted")
    config = root / "digits.yaml"
    config.write_text(yaml.safe_dump({**TINY, **DIGITS, "output": {"dir": str(root / "runs")}}, sort_keys=False))
    return interrupt(config, root / "runs")


@pytest.fixture
def interrupted_run(interrupted_template, tmp_path):
    """An interrupted DIGITS run of this test's own (a copy of one made once per session)."""
    return copy_run(interrupted_template, tmp_path / "runs")


@pytest.fixture
def interrupted_here(digits_config, tmp_path):
    """An interrupted run of `digits_config`, in its own runs folder (for --resume-if-possible)."""
    return interrupt(digits_config, tmp_path / "runs")


@pytest.mark.any_backend
@pytest.mark.parametrize("folder", ["plots", "backup", "tensorboard"])
def test_resume_never_writes_through_a_symlinked_folder_of_the_run(runner, interrupted_run, tmp_path, folder):
    link, elsewhere = linked_elsewhere(interrupted_run, folder, tmp_path)
    assert folder == "tensorboard" or (tmp_path / f"{folder}.real").is_dir(), "the run had its own"
    result = runner.invoke(cli, ["resume", str(interrupted_run)])
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: '{link}' is a symbolic link; a run directory holds its own files\n"
    assert list(elsewhere.iterdir()) == [], "nothing written where the link points"
    assert info(interrupted_run)["status"] == "interrupted", "the run is left as it was"


@pytest.mark.any_backend
def test_resume_refuses_a_run_json_that_says_fine_tuning_when_the_config_has_none(runner, interrupted_run):
    info = json.loads((interrupted_run / "run.json").read_text())
    info["fine_tune_after_epoch"] = 1
    del info["config_sha256"]  # as a run.json from before the hash, or edited by hand
    (interrupted_run / "run.json").write_text(json.dumps(info))
    result = runner.invoke(cli, ["resume", str(interrupted_run)])
    assert result.exit_code == 2, result.output
    assert (
        "run.json says fine-tuning began after epoch 1, but its config.yaml has no training.fine_tune" in result.stderr
    )


@pytest.mark.any_backend
def test_a_backup_made_while_fine_tuning_for_a_config_without_it_is_named(runner, interrupted_run):
    for metadata in (interrupted_run / "backup").glob("training_metadata.json*"):  # the latest and the previous (.bkp)
        info = json.loads(metadata.read_text())
        metadata.write_text(json.dumps({**info, "fine_tuning": True}))  # as a backup from elsewhere would say
    result = runner.invoke(cli, ["resume", str(interrupted_run)])
    assert result.exit_code == 2, result.output
    assert "the backup was made while fine-tuning, but the config has no training.fine_tune" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.any_backend
def test_resume_refuses_a_changed_config(runner, interrupted_run):
    result = runner.invoke(cli, ["resume", str(interrupted_run), "--set", "optimizer.learning_rate=0.1"])
    assert result.exit_code == 2
    assert "'optimizer.learning_rate' cannot change when resuming" in result.output
    assert result.output.count("\n") == 1

    config = yaml.safe_load((interrupted_run / "config.yaml").read_text())
    config["data"]["scale"] = "minmax"  # a hand edit of the run's config
    (interrupted_run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    edited = runner.invoke(cli, ["resume", str(interrupted_run), "--set", "training.epochs=5"])
    assert edited.exit_code == 2 and "config.yaml' was edited since the run started" in edited.output
    assert info(interrupted_run)["status"] == "interrupted", "a refused resume changes nothing"


@pytest.mark.slow
@pytest.mark.any_backend
def test_resume_refuses_changed_data_unless_forced(runner, write_config, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype("float32")
    np.savez(tmp_path / "data.npz", x=x, y=(x[:, 0] > 0).astype("int64"))
    config = write_config(
        data={"source": "npz", "path": str(tmp_path / "data.npz")},
        model=[{"Dense": 4}, {"Dense": {"units": 2, "activation": "softmax"}}],
    )
    run = interrupt(config, tmp_path / "runs")
    np.savez(tmp_path / "data.npz", x=x[::-1], y=(x[::-1, 0] > 0).astype("int64"))

    changed = runner.invoke(cli, ["resume", str(run), "--set", "training.epochs=5"])
    assert changed.exit_code == 2, changed.output
    assert "the data differs from what the run was trained on" in changed.output and "--force" in changed.output
    assert info(run)["status"] == "interrupted", "a refused resume changes nothing"

    forced = runner.invoke(cli, ["resume", str(run), "--set", "training.epochs=5", "--force"])
    assert forced.exit_code == 0, forced.output
    assert "data changed" in forced.stderr and info(run)["status"] == "completed"


def test_resume_refuses_what_is_not_a_resumable_run(runner, tmp_path):
    missing = runner.invoke(cli, ["resume", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    (tmp_path / "empty").mkdir()
    empty = runner.invoke(cli, ["resume", str(tmp_path / "empty")])
    assert empty.exit_code == 2 and "is not a run directory: no run.json" in empty.output


@pytest.mark.any_backend
def test_resume_if_possible_resumes_the_same_config_and_otherwise_starts_anew(runner, interrupted_here, digits_config):
    interrupted_run = interrupted_here
    first = runner.invoke(cli, ["train", str(digits_config), "--resume-if-possible"])
    assert first.exit_code == 0, first.output
    assert first.stdout.strip().splitlines()[-1] == str(interrupted_run)
    assert "resuming the unfinished run" in first.stderr
    assert info(interrupted_run)["status"] == "completed" and info(interrupted_run)["epochs_completed"] == 3
    # Nothing left to resume: a new run.
    second = runner.invoke(cli, ["train", str(digits_config), "--resume-if-possible"])
    assert second.exit_code == 0, second.output
    assert second.stdout.strip().splitlines()[-1] != str(interrupted_run)


@pytest.mark.any_backend
def test_resume_if_possible_does_not_pick_another_config(runner, interrupted_here, digits_config):
    interrupted_run = interrupted_here
    other = runner.invoke(cli, ["train", str(digits_config), "--resume-if-possible", "--set", "seed=1"])
    assert other.exit_code == 0, other.output
    assert other.stdout.strip().splitlines()[-1] != str(interrupted_run)
    assert info(interrupted_run)["status"] == "interrupted"


@pytest.mark.any_backend
def test_a_running_run_is_not_resumed(runner, killed_run):
    import socket

    # As the run.json of a run whose process is alive says (this process stands for it): status running, its pid.
    record = {k: v for k, v in info(killed_run).items() if k != "process_started"}
    (killed_run / "run.json").write_text(
        json.dumps({**record, "status": "running", "pid": os.getpid(), "host": socket.gethostname()})
    )
    result = runner.invoke(cli, ["resume", str(killed_run)])
    assert result.exit_code == 2 and f"still running (process {os.getpid()}" in result.output


@pytest.mark.slow
@pytest.mark.compiled
def test_step_backups_resume_a_long_epoch(runner, write_config, tmp_path):
    config = write_config(
        "digits.yaml", **{**DIGITS, "training": {"epochs": 2, "batch_size": 8, "backup_every_steps": 20}}
    )
    proc = start(config, "--set", "training.epochs=100000")

    def mid_epoch():
        run = run_dir(tmp_path / "runs")
        try:
            metadata = json.loads((run / "backup" / "training_metadata.json").read_text())
        except (TypeError, OSError, ValueError):
            return None
        return run if metadata["batch"] > 0 else None

    run = wait_for(proc, mid_epoch, "a backup in the middle of an epoch")
    stop(proc, signal.SIGKILL)
    metadata = json.loads((run / "backup" / "training_metadata.json").read_text())
    result = runner.invoke(cli, ["resume", str(run), "--set", f"training.epochs={metadata['epoch'] + 1}"])
    assert result.exit_code == 0, result.output
    # Keras's BackupAndRestore restarts the epoch with the weights of the step backup.
    assert history_epochs(run) == list(range(1, metadata["epoch"] + 2))
    assert info(run)["resumes"][0]["from_step"] == metadata["iterations"] > metadata["epoch"] * 162


@pytest.mark.slow
@pytest.mark.any_backend
def test_keep_backup_keeps_it(runner, write_config):
    result = runner.invoke(cli, ["train", str(write_config(output={"dir": "runs", "keep_backup": True}))])
    assert result.exit_code == 0, result.output
    run = result.stdout.strip().splitlines()[-1]
    from pathlib import Path

    assert (Path(run) / "backup" / "latest.weights.h5").is_file()


@pytest.mark.slow
def test_a_diverged_run_keeps_its_last_good_epoch(runner, write_config, tmp_path, monkeypatch):
    from nnrun.training import callbacks

    real = callbacks.StopOnNaN.on_train_batch_end

    # The loss of a run whose learning rate is too high, from its third epoch on
    # (the NaN guard comes first, and Keras hands every callback the same logs).
    def nan_in_epoch_3(self, batch, logs=None):
        return real(self, batch, {**(logs or {}), "loss": float("nan")} if self.epoch == 2 else logs)

    def nan_epoch_3(self, epoch, logs=None):
        if epoch == 2:
            logs["loss"] = float("nan")

    monkeypatch.setattr(callbacks.StopOnNaN, "on_train_batch_end", nan_in_epoch_3)
    monkeypatch.setattr(callbacks.StopOnNaN, "on_epoch_end", nan_epoch_3, raising=False)
    result = runner.invoke(cli, ["train", str(write_config()), "--set", "training.epochs=5"])
    assert result.exit_code == 1, result.output
    assert "the loss became nan at epoch 3" in result.stderr and "training diverged" in result.stderr
    assert "the model of epoch 2 is saved" in result.stderr
    (run,) = (tmp_path / "runs").glob("tiny-*")
    record = info(run)
    assert record["status"] == "failed" and "diverged" in record["error"]
    assert (run / "model.keras").is_file(), "the last good epoch's model is kept"
    assert "the model of epoch" in record["error"]
    assert (run / "backup" / "latest.weights.h5").is_file(), "a failed run keeps its backup"
    assert json.loads((run / "backup" / "training_metadata.json").read_text())["epoch"] == 2


@pytest.mark.slow
@pytest.mark.any_backend
def test_a_full_disk_during_a_backup_fails_the_run_in_one_line_naming_the_file(
    runner, write_config, tmp_path, monkeypatch
):
    full_disk(monkeypatch, "latest.weights.h5", after=1)  # the second epoch's backup
    result = runner.invoke(cli, ["train", str(write_config())])
    (run,) = (tmp_path / "runs").glob("tiny-*")
    weights = run / "backup" / "latest.weights.h5"
    assert result.exit_code == 1, result.output
    assert result.stderr.count("error:") == 1 and "Traceback" not in result.output
    assert result.stderr.splitlines()[-1] == (
        f"error: no space left on device writing '{weights}'; nnrun resume {run} continues it"
    )
    assert result.stdout.splitlines()[-1] == str(run)
    record = info(run)
    assert (record["status"], record["error"]) == ("failed", f"no space left on device writing '{weights}'")
    assert json.loads((run / "backup" / "training_metadata.json").read_text())["epoch"] == 1, "the one before is whole"
    assert list(run.rglob(f"*{atomic.TMP_MARK}*")) == []


@pytest.mark.slow
@pytest.mark.any_backend
def test_when_even_the_status_cannot_be_written_both_are_said_in_one_line(runner, write_config, tmp_path, monkeypatch):
    import errno

    real = atomic.write_json

    def full(path, value):
        if Path(path).name == "metrics.json" or (Path(path).name == "run.json" and value.get("status") == "failed"):
            raise atomic.failed_write(OSError(errno.ENOSPC, "No space left on device"), path)
        return real(path, value)

    monkeypatch.setattr(atomic, "write_json", full)
    result = runner.invoke(cli, ["train", str(write_config())])
    (run,) = (tmp_path / "runs").glob("tiny-*")
    assert result.exit_code == 1, result.output
    assert result.stderr.count("error:") == 1 and "Traceback" not in result.output
    assert result.stderr.splitlines()[-1] == (
        f"error: no space left on device writing '{run / 'metrics.json'}'; nnrun resume {run} continues it "
        f"(could not record 'failed' in {run / 'run.json'}: No space left on device)"
    )
    assert info(run)["status"] == "running", "run.json is as it was: the run reads as crashed once the process ends"


@pytest.mark.plots
@pytest.mark.any_backend
def test_a_run_whose_plots_meet_a_full_disk_is_completed_and_says_so(runner, interrupted_run, monkeypatch):
    # Backed up at its first epoch, the run resumed for one epoch in all trains no more: it saves and ends.
    full_disk(monkeypatch, "learning_curves.png")
    result = runner.invoke(cli, ["resume", str(interrupted_run), "--set", "training.epochs=1"])
    assert result.exit_code == 1, result.output
    assert result.stderr.count("error:") == 1 and result.stderr.splitlines()[-1] == (
        f"error: no space left on device writing '{interrupted_run / 'plots' / 'learning_curves.png'}'; "
        "the run completed: its model and metrics are saved, not all of its plots"
    )
    assert result.stdout.splitlines()[-1] == str(interrupted_run)
    assert info(interrupted_run)["status"] == "completed"
    assert (interrupted_run / "model.keras").is_file() and (interrupted_run / "metrics.json").is_file()
    assert not (interrupted_run / "backup").exists(), "removed before the plots were drawn: the room they needed"
    assert list(interrupted_run.rglob(f"*{atomic.TMP_MARK}*")) == []


@pytest.mark.slow
@pytest.mark.any_backend
def test_model_best_is_used_on_request(runner, write_config, tmp_path):
    config = write_config(
        training={"epochs": 3, "batch_size": 16, "callbacks": [{"ModelCheckpoint": {"monitor": "val_loss"}}]}
    )
    trained = runner.invoke(cli, ["train", str(config)])
    assert trained.exit_code == 0, trained.output
    run = trained.stdout.strip().splitlines()[-1]
    best = runner.invoke(cli, ["evaluate", run, "--model", "best", "--json"])
    assert best.exit_code == 0, best.output
    assert json.loads(best.stdout)["model"] == "model.best.keras"
    plain = runner.invoke(cli, ["train", str(write_config())])
    other = plain.stdout.strip().splitlines()[-1]
    missing = runner.invoke(cli, ["evaluate", other, "--model", "best"])
    assert missing.exit_code == 2 and "has no model.best.keras: the config has no ModelCheckpoint" in missing.output


@pytest.mark.slow
def test_the_epoch_whose_weights_earlystopping_kept_counts_the_epochs_before_a_resume(
    runner, write_config, monkeypatch, tmp_path
):
    from nnrun import plots

    # A learning rate so high that val_loss rises after its best epoch, where EarlyStopping (patience 1)
    # ends the run and gives the model back that epoch's weights.
    stopping = {"EarlyStopping": {"patience": 1, "restore_best_weights": True}}
    training = {"epochs": 8, "batch_size": 32, "callbacks": [stopping]}
    config = write_config(optimizer={"name": "adam", "learning_rate": 0.1}, training=training)
    marked = []
    monkeypatch.setattr(plots, "learning_curves", lambda *args, kept=None: marked.append(kept))
    interrupt_after(monkeypatch, 1)
    assert runner.invoke(cli, ["train", str(config)]).exit_code == 130
    run = run_dir(tmp_path / "runs")
    resumed = runner.invoke(cli, ["resume", str(run)])
    assert resumed.exit_code == 0, resumed.output

    val_loss = [float(r["val_loss"]) for r in csv.DictReader((run / "history.csv").read_text().splitlines())]
    best = int(np.argmin(val_loss)) + 1
    assert 1 < best < len(val_loss), f"the best epoch must be neither the first nor the last: {val_loss}"
    # The resumed EarlyStopping saw the epochs from 2 on, and numbers them as the run does.
    assert info(run)["restored_epoch"] == best
    assert json.loads((run / "metrics.json").read_text())["validation"]["loss"] == pytest.approx(
        val_loss[best - 1], rel=1e-4
    )
    assert (
        f"EarlyStopping kept the weights of epoch {best} of {len(val_loss)} (val_loss {val_loss[best - 1]:.4g}): "
        "model.keras and the final metrics are that epoch's" in resumed.stderr
    )
    assert marked == [None, best]  # the learning curves: the interrupted run's, then the completed run's


@pytest.mark.slow
@pytest.mark.compiled
@pytest.mark.parametrize("distribution", [None, "data_parallel"])  # data_parallel shuffles in tf.data
def test_a_resumed_run_ends_exactly_as_one_never_stopped(runner, write_config, tmp_path, distribution):
    # Dropout and shuffling draw random numbers: the backup carries their state too.
    layers = [{"Dense": 16}, {"Dropout": 0.3}, {"Dense": {"units": 10, "activation": "softmax"}}]
    config = write_config("digits.yaml", **{**DIGITS, "model": layers, "distribution": distribution})
    with signalled(signal.SIGTERM, epochs=2):
        stopped = runner.invoke(cli, ["train", str(config), "--quiet", "--set", FOREVER])
    assert stopped.exit_code == 143, stopped.output
    run = run_dir(tmp_path / "runs")
    epochs = info(run)["epochs_completed"] + 2
    resumed = runner.invoke(cli, ["resume", str(run), "--set", f"training.epochs={epochs}"])
    assert resumed.exit_code == 0, resumed.output

    whole = runner.invoke(cli, ["train", str(config), "--set", f"training.epochs={epochs}"])
    assert whole.exit_code == 0, whole.output
    never_stopped = Path(whole.stdout.strip().splitlines()[-1])
    assert (run / "history.csv").read_text() == (never_stopped / "history.csv").read_text()
    assert (run / "metrics.json").read_text() == (never_stopped / "metrics.json").read_text()


@pytest.mark.any_backend
def test_a_run_on_another_host_is_resumed_only_with_force(runner, interrupted_run):
    record = info(interrupted_run)
    (interrupted_run / "run.json").write_text(json.dumps({**record, "status": "running", "host": "elsewhere"}))
    refused = runner.invoke(cli, ["resume", str(interrupted_run), "--set", "training.epochs=4"])
    assert refused.exit_code == 2 and "still running" in refused.output and "on elsewhere" in refused.output
    assert "resume with --force" in refused.output
    forced = runner.invoke(cli, ["resume", str(interrupted_run), "--set", "training.epochs=4", "--force"])
    assert forced.exit_code == 0, forced.output


@pytest.mark.any_backend
def test_two_resumes_of_one_run_at_once_the_second_is_refused(runner, interrupted_run):
    from nnrun.rundir import liveness

    with liveness.claim(interrupted_run):  # as a first `nnrun resume` holds it
        second = runner.invoke(cli, ["resume", str(interrupted_run), "--set", "training.epochs=4"])
    assert second.exit_code == 2 and "another process is resuming this run" in second.output
    assert info(interrupted_run)["status"] == "interrupted"
    after = runner.invoke(cli, ["resume", str(interrupted_run), "--set", "training.epochs=4"])
    assert after.exit_code == 0, after.output


@pytest.mark.any_backend
def test_resume_mistakes_are_named(runner, interrupted_run, tmp_path):
    import shutil

    misspelt = runner.invoke(cli, ["resume", str(interrupted_run), "--set", "training.epochz=5"])
    assert misspelt.exit_code == 2 and "unknown key 'epochz'; did you mean 'epochs'?" in misspelt.output
    # The user's --set is named as given, not blamed on the run's config.yaml.
    assert "config.yaml with --set: " in misspelt.output and "is not valid" not in misspelt.output
    fewer = runner.invoke(cli, ["resume", str(interrupted_run), "--set", "training.epochs=0"])
    assert fewer.exit_code == 2 and "training.epochs" in fewer.output
    a_file = runner.invoke(cli, ["resume", str(interrupted_run / "config.yaml")])
    assert a_file.exit_code == 2 and "is a file, not a directory" in a_file.output
    shutil.rmtree(interrupted_run / "backup")
    no_backup = runner.invoke(cli, ["resume", str(interrupted_run)])
    assert no_backup.exit_code == 2 and "there is no backup/ to resume from" in no_backup.output
    assert len(history_epochs(interrupted_run)) >= 1, "nothing was overwritten"


@pytest.mark.any_backend
def test_a_failed_restore_changes_no_backup_file(runner, interrupted_run):
    import hashlib

    backup = interrupted_run / "backup"
    metadata = json.loads((backup / "training_metadata.json").read_text())
    (backup / "training_metadata.json").write_text(json.dumps({**metadata, "weights_sha256": "0" * 64}))
    (backup / "latest.weights.h5.bkp").unlink(missing_ok=True)
    (backup / "latest.weights.h5.bkp").write_bytes(b"not hdf5")
    (backup / "training_metadata.json.bkp").unlink(missing_ok=True)
    (backup / "training_metadata.json.bkp").write_text(json.dumps(metadata))

    def digests():
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(backup.iterdir())}

    before = digests()
    result = runner.invoke(cli, ["resume", str(interrupted_run), "--set", "training.epochs=5"])
    assert result.exit_code == 2 and "no usable backup" in result.output, result.output
    assert digests() == before, "a failed restore rewrote the backup"
    assert info(interrupted_run)["status"] == "interrupted"


@pytest.mark.parametrize(
    "tamper, expected",
    [
        (lambda run: (run / "history.csv").write_text("loss\n0.5\n"), "history.csv': cannot be read"),
        (lambda run: _seed_states(run, [["a", "b"]]), "seed_states"),
    ],
)
@pytest.mark.any_backend
def test_a_tampered_history_or_backup_is_one_line(runner, interrupted_run, tamper, expected):
    tamper(interrupted_run)
    result = runner.invoke(cli, ["resume", str(interrupted_run), "--set", "training.epochs=5"])
    if result.exit_code == 0:  # a bad latest backup may fall back to the previous one
        assert "unusable" in result.stderr and expected in result.stderr, result.output
    else:
        assert result.exit_code == 2 and expected in result.output and "unexpected" not in result.output, result.output


def _seed_states(run, states):
    path = run / "backup" / "training_metadata.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "seed_states": states}))
