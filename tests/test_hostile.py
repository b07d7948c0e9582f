"""Configs and run directories written by someone else: bounded, refused in one line, never trusted blindly."""

import json
import subprocess
import sys
import textwrap
import time

import pytest
import yaml

from nnrun import atomic
from nnrun.cli.main import cli
from nnrun.config import loading as config
from nnrun.config import safe_yaml
from nnrun.errors import ConfigError
from nnrun.rundir import record

from conftest import linked_elsewhere

MINIMAL = """\
data: {source: sklearn, name: iris}
model: [{Dense: 3}]
loss: sparse_categorical_crossentropy
"""


def alias_bomb(levels=9, width=9):
    lines = [f"- &a0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"- &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return "lol:\n" + "\n".join("  " + line for line in lines) + "\n"


@pytest.mark.backend
def test_an_alias_bomb_is_refused_quickly_in_bounded_memory(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(MINIMAL + alias_bomb())
    assert path.stat().st_size < 2000
    # In a child process capped at 1.5 GB of address space: expanding the
    # bomb would need far more, and would fail with MemoryError instead.
    code = textwrap.dedent(f"""
        import resource, sys, time
        resource.setrlimit(resource.RLIMIT_AS, (1_500_000_000, 1_500_000_000))
        from nnrun.cli.main import main
        started = time.monotonic()
        try:
            main(["check", {str(path)!r}])
        except SystemExit as e:
            print("exit", e.code, round(time.monotonic() - started, 2))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    exit_code, seconds = done.stdout.split()[1:]
    assert exit_code == "2", done.stdout + done.stderr
    # Refused as it is read, not expanded: a bound that tells that apart (expanding takes minutes) and
    # holds on a loaded machine, where the 1 s this was failed twice under four parallel test runs.
    assert float(seconds) < 10.0
    assert "more than 100000 values once its aliases are expanded" in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_an_alias_bomb_in_a_run_directory_config_is_refused(runner, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"status": "completed"}))
    (run / "model.keras").write_bytes(b"")
    (run / "config.yaml").write_text(MINIMAL + alias_bomb())
    started = time.monotonic()
    result = runner.invoke(cli, ["evaluate", str(run)])
    assert result.exit_code == 2 and "aliases are expanded" in result.output
    assert time.monotonic() - started < 5


def test_a_huge_config_is_refused_before_it_is_read(runner, tmp_path):
    path = tmp_path / "huge.yaml"
    with open(path, "w") as f:
        f.write(MINIMAL + "notes: |\n")
        f.writelines("  " + "x" * 100 + "\n" for _ in range(20_000))
    started = time.monotonic()
    result = runner.invoke(cli, ["check", str(path)])
    assert result.exit_code == 2 and "more than a config may have" in result.output
    assert time.monotonic() - started < 1


def test_deep_nesting_is_one_line_not_a_recursion_error(runner, tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text(MINIMAL + "x: " + "[" * 500 + "]" * 500 + "\n")
    result = runner.invoke(cli, ["check", str(path)])
    assert result.exit_code == 2, result.output
    assert "nested more than 64 levels deep" in result.output and result.output.count("\n") == 1


def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text(MINIMAL + "training:\n  epochs: 50\n  callbacks: []\ntraining:\n  batch_size: 8\n")
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert str(info.value) == f"{path}:7: 'training' is given twice in one mapping (first on line 4); remove one"


def test_libyaml_is_used_when_installed():
    if not hasattr(yaml, "CSafeLoader"):
        pytest.skip("PyYAML built without libyaml")
    assert issubclass(safe_yaml._Loader, yaml.CSafeLoader)


def test_a_set_value_is_bounded_too(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(MINIMAL)
    with pytest.raises(ConfigError) as info:
        config.load(path, ["model.layers=" + "[" * 100 + "]" * 100])
    assert "nested more than 64 levels deep" in str(info.value)


# --- names, seeds, folders: exit 2 at check, or a run that works ------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "file_name, overrides, run_name",
    [
        ("_draft.yaml", [], "_draft"),
        ("tiny.yaml", ["output.name=naïve-名前"], "naïve-名前"),
        ("tiny.yaml", ["output.name=-rf"], "-rf"),
    ],
)
def test_names_keras_would_refuse_still_train(runner, write_config, file_name, overrides, run_name):
    path = write_config(file_name)
    args = [x for item in overrides for x in ("--set", item)]
    checked = runner.invoke(cli, ["check", str(path), *args])
    assert checked.exit_code == 0, checked.output
    result = runner.invoke(cli, ["train", str(path), *args, "--set", "training.epochs=1"])
    assert result.exit_code == 0, result.output
    from pathlib import Path

    run = Path(result.stdout.strip().splitlines()[-1])
    assert run.name.startswith(f"{run_name}-") and json.loads((run / "run.json").read_text())["name"] == run_name


@pytest.mark.parametrize(
    "item, expected",
    [
        ("output.name=" + "x" * 300, "output.name: must be a folder name of at most 100 bytes"),
        ("output.name=a/b", "output.name: use letters, digits"),
        ("output.name=..", "output.name: must be a folder name"),
        ("seed=-1", "seed: input should be greater than or equal to 0; got -1"),
        (f"seed={2**32}", "seed: input should be less than 4294967296"),
    ],
)
def test_bad_names_and_seeds_are_one_line_at_check(runner, write_config, item, expected):
    result = runner.invoke(cli, ["check", str(write_config()), "--set", item])
    assert result.exit_code == 2, result.output
    assert expected in result.output and result.output.count("\n") == 1


def test_a_long_config_file_name_makes_a_short_run_name(write_config):
    path = write_config("y" * 200 + ".yaml")
    assert len(config.load(path).output.name.encode()) <= 100


@pytest.mark.backend
def test_a_runs_folder_that_cannot_be_made_is_bad_input(runner, write_config, tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("")
    result = runner.invoke(cli, ["train", str(write_config()), "--set", f"output.dir={tmp_path / 'a-file' / 'runs'}"])
    assert result.exit_code == 2 and "output.dir: cannot create" in result.output, result.output

    from pathlib import Path

    real = Path.mkdir

    def refuse(self, *args, **kwargs):
        if self.parent.name == "runs" and self.name.startswith("tiny-"):
            raise PermissionError(13, "Permission denied")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refuse)
    denied = runner.invoke(cli, ["train", str(write_config())])
    assert denied.exit_code == 2, denied.output
    assert "output.dir: cannot create a run directory in" in denied.output and "Permission denied" in denied.output


def test_a_file_that_is_not_a_csv_is_never_echoed(runner, write_config, tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("root:$y$j9T$secrethash:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n")
    path = write_config(data={"source": "csv", "path": str(secret), "target": "species"})
    result = runner.invoke(cli, ["check", str(path)])
    assert result.exit_code == 2, result.output
    assert "secrethash" not in result.output and "root:" not in result.output and "daemon" not in result.output
    assert "single column" in result.output


@pytest.mark.slow
def test_a_new_run_sweeps_temporary_files_of_dead_runs_only(runner, write_config, tmp_path):
    import os
    import socket

    def fake_run(name, pid):
        run = tmp_path / "runs" / name
        (run / "plots").mkdir(parents=True)
        (run / "run.json").write_text(json.dumps({"status": "running", "pid": pid, "host": socket.gethostname()}))
        (run / ".abc123.tmp.model.keras").write_bytes(b"half a model")
        (run / "plots" / ".def456.tmp.learning_curves.png").write_bytes(b"")
        return run

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    crashed, alive = fake_run("crashed-1", dead.pid), fake_run("alive-1", os.getpid())
    hour_ago = time.time() - 3700
    for tmp in [*crashed.rglob(".*"), *alive.rglob(".*")]:
        os.utime(tmp, (hour_ago, hour_ago))
    # A temporary file being written right now (an evaluate of a finished run) is left alone.
    (crashed / ".xyz789.tmp.metrics.json").write_text("{}")
    (tmp_path / "runs" / f".latest.{dead.pid}").symlink_to("crashed-1")
    result = runner.invoke(cli, ["train", str(write_config()), "--set", "training.epochs=1"])
    assert result.exit_code == 0, result.output
    assert [p.name for p in crashed.rglob(".*")] == [".xyz789.tmp.metrics.json"], (
        "a dead run's old temporary files stay"
    )
    assert len([p for p in alive.rglob(".*")]) == 2, "a live run's temporary files were removed"
    assert not (tmp_path / "runs" / f".latest.{dead.pid}").is_symlink()


def test_writes_are_flushed_to_disk_before_and_after_the_rename(tmp_path, monkeypatch):
    import os

    synced, real = [], os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    atomic.write_text(tmp_path / "metrics.json", "{}")
    assert len(synced) == 2
    assert synced[0].endswith(".tmp.metrics.json") and os.path.dirname(synced[0]) == str(tmp_path)
    assert synced[1] == str(tmp_path)
    assert (tmp_path / "metrics.json").read_text() == "{}"


# --- models in a run directory that someone else wrote ----------------------------------------------


def _with_model(run, tmp_path, make):
    """A copy of a run directory whose model.keras `make(path)` wrote."""
    import shutil

    bad = tmp_path / f"bad-{len(list(tmp_path.glob('bad-*')))}"
    shutil.copytree(run, bad)
    make(bad / "model.keras")
    return bad


def test_a_model_with_a_lambda_layer_executes_nothing(runner, tiny_run, tmp_path):
    import keras

    marker = tmp_path / "pwned"

    def lambda_model(path):
        touch = f"lambda x: (__import__('pathlib').Path({str(marker)!r}).write_text('ran'), x)[1]"
        model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(eval(touch)), keras.layers.Dense(3)])
        model.save(path)
        marker.unlink()  # building the model here ran it once

    run = _with_model(tiny_run, tmp_path, lambda_model)
    for args in (["evaluate", str(run)], ["predict", str(tmp_path / "x.npy"), "--run", str(run)]):
        import numpy as np

        np.save(tmp_path / "x.npy", np.ones((1, 4), dtype="float32"))
        result = runner.invoke(cli, args)
        assert result.exit_code == 2, result.output
        assert "cannot be loaded" in result.output and "Traceback" not in result.output
    assert not marker.exists(), "the Lambda layer ran"


def test_a_model_whose_config_names_another_module_executes_nothing(runner, tiny_run, tmp_path):
    import zipfile

    marker = tmp_path / "pwned"

    def injected(path):
        with zipfile.ZipFile(tiny_run / "model.keras") as z:
            files = {name: z.read(name) for name in z.namelist()}
        config = json.loads(files["config.json"])
        config["config"]["layers"][-1] = {
            "module": "os",
            "class_name": "system",
            "registered_name": None,
            "config": {"command": f"touch {marker}"},
        }
        files["config.json"] = json.dumps(config).encode()
        with zipfile.ZipFile(path, "w") as z:
            for name, data in files.items():
                z.writestr(name, data)

    run = _with_model(tiny_run, tmp_path, injected)
    result = runner.invoke(cli, ["evaluate", str(run)])
    assert result.exit_code == 2, result.output
    assert "cannot be loaded" in result.output and result.output.count("\n") == 1
    assert not marker.exists(), "os.system ran"


def test_keras_without_known_safe_mode_bypasses_is_required(monkeypatch, tiny_run):
    import keras

    from nnrun.errors import RunDirError
    from nnrun.inference import loading

    assert tuple(int(p) for p in keras.__version__.split(".")[:2]) >= (3, 14)
    monkeypatch.setattr(keras, "__version__", "3.13.2")
    with pytest.raises(RunDirError) as info:
        loading.load_model(record.read(tiny_run))
    assert "Keras 3.13.2" in str(info.value) and "keras>=3.14" in str(info.value)


# --- a tampered preprocessing.json --------------------------------------------------------------------


def _tampered(run, tmp_path, change):
    import shutil

    copy = tmp_path / f"tampered-{len(list(tmp_path.glob('tampered-*')))}"
    shutil.copytree(run, copy)
    prep = json.loads((copy / "preprocessing.json").read_text())
    change(prep)
    (copy / "preprocessing.json").write_text(json.dumps(prep))
    return copy


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda p: p.pop("input_shape"), "input_shape: field required"),
        (lambda p: p.update(input_shape="4"), "input_shape: input should be a valid list"),
        (lambda p: p.update(rescale=1e9), "rescale: input should be less than or equal to 1000"),
        (lambda p: p.update(class_names=["a", "b"]), "2 class_names, but the model has 3 outputs"),
        (lambda p: p.update(class_names=["a", "a", "b"]), "class_names has the same name twice"),
        (lambda p: p["scaling"].update(mean=[0.0]), "scaling has [1, 4] values for inputs of 4 features"),
        (
            lambda p: p["scaling"].update(scale=[0.0, 1.0, 1.0, 1.0]),
            "scaling.standard.scale.0: input should be greater than 0",
        ),
        (lambda p: p.update(kind="pickle"), "input tag 'pickle' found using 'kind' does not match"),
        (lambda p: p.update(extra="x"), "extra: extra inputs are not permitted"),
    ],
)
def test_a_tampered_preprocessing_json_is_one_line_exit_2(runner, tiny_run, tmp_path, change, expected):
    import numpy as np

    run = _tampered(tiny_run, tmp_path, change)
    np.save(tmp_path / "x.npy", np.ones((1, 4), dtype="float32"))
    for args in (["predict", str(tmp_path / "x.npy"), "--run", str(run)], ["evaluate", str(run)]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 2, result.output
        assert expected in result.output and "preprocessing.json" in result.output, result.output
        assert result.output.count("\n") == 1 and "Traceback" not in result.output


def test_a_corrupt_sibling_run_json_does_not_break_the_default_run(runner, tiny_run, tmp_path):
    import numpy as np

    sibling = tiny_run.parent / "other-20991231-000000"
    sibling.mkdir()
    (sibling / "run.json").write_text("{ not json")
    (sibling / "model.keras").write_bytes(b"")
    np.save(tmp_path / "x.npy", np.ones((1, 4), dtype="float32"))
    result = runner.invoke(cli, ["predict", str(tmp_path / "x.npy"), "--runs-dir", str(tiny_run.parent), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["run"] == str(tiny_run)
    listed = runner.invoke(cli, ["runs", str(tiny_run.parent)])
    assert listed.exit_code == 0 and f"{sibling}: skipped" in listed.stderr


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda i: i.update(attempts=5), "attempts: input should be a valid list"),
        (lambda i: i.update(resumes=[1]), "resumes.0: input should be a valid dictionary"),
        (lambda i: i.update(splits=[1]), "splits: input should be a valid dictionary"),
        (lambda i: i.update(splits={"test": {"sha256": "x"}}), "splits.test.samples: field required"),
        (lambda i: i.update(pid=-1), "pid: input should be greater than 0"),
        (lambda i: i.update(duration_s="x"), "duration_s"),
        (lambda i: i.update(status="done"), "status: input should be"),
    ],
)
def test_a_tampered_run_json_is_one_line_exit_2_and_skipped_in_listings(runner, tiny_run, tmp_path, change, expected):
    import shutil

    copy = tmp_path / "runs-copy" / tiny_run.name
    shutil.copytree(tiny_run, copy)
    info = json.loads((copy / "run.json").read_text())
    change(info)
    (copy / "run.json").write_text(json.dumps(info))
    result = runner.invoke(cli, ["evaluate", str(copy)])
    assert result.exit_code == 2, result.output
    assert expected in result.output and result.output.count("\n") == 1, result.output
    listed = runner.invoke(cli, ["runs", str(copy.parent)])
    assert listed.exit_code == 0 and "skipped" in listed.stderr, listed.output


@pytest.mark.slow
def test_inconsistent_numeric_statistics_are_refused(runner, tmp_path, write_config):
    import pandas as pd

    rng = __import__("numpy").random.default_rng(0)
    pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60), "y": rng.integers(0, 2, 60)}).to_csv(
        tmp_path / "t.csv", index=False
    )
    config = write_config(
        data={"source": "csv", "path": str(tmp_path / "t.csv"), "target": "y", "scale": "standard"},
        model=[{"Dense": {"units": 2, "activation": "softmax"}}],
        training={"epochs": 1},
    )
    trained = runner.invoke(cli, ["train", str(config)])
    assert trained.exit_code == 0, trained.output
    from pathlib import Path

    run = Path(trained.stdout.strip().splitlines()[-1])
    prep = json.loads((run / "preprocessing.json").read_text())
    prep["numeric"]["b"] = {"fill": 0.0}
    (run / "preprocessing.json").write_text(json.dumps(prep))
    (tmp_path / "in.csv").write_text("a,b\n0.1,0.2\n")
    result = runner.invoke(cli, ["predict", str(tmp_path / "in.csv"), "--run", str(run)])
    assert result.exit_code == 2 and "numeric columns must all have mean and scale" in result.output, result.output


@pytest.mark.any_backend
@pytest.mark.parametrize("folder", ["evaluation", "plots", "backup"])
def test_evaluate_never_writes_through_a_symlinked_folder_of_the_run(runner, tiny_run, tmp_path, folder):
    link, elsewhere = linked_elsewhere(tiny_run, folder, tmp_path)
    result = runner.invoke(cli, ["evaluate", str(tiny_run)])
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: '{link}' is a symbolic link; a run directory holds its own files\n"
    assert list(elsewhere.iterdir()) == [], "nothing written where the link points"
