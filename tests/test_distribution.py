"""Data-parallel training: several devices of one process, and several processes on loopback."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from nnrun.cli.main import cli
from nnrun.training.distribution import digest

from conftest import BACKEND

# Sizes that split evenly over 2 devices (108 train, 12 validation, 30 test;
# batches of 12), so no sample is left out and 1 and 2 devices see the same data.
EVEN = {"training": {"epochs": 2, "batch_size": 12}, "distribution": "data_parallel"}
TIMEOUT = 240


def on(backend):
    """Runs a test of separate processes in the suite's pass on `backend` only (CI runs both).

    The pass's backend is read from the environment, as nnrun reads it: collecting imports no Keras.
    """
    return pytest.mark.skipif(BACKEND != backend, reason=f"runs in the {backend} pass")


def nnrun(config, backend, env=None, wrapper=""):
    """`nnrun train CONFIG` in a new process, on `backend`; returns the Popen."""
    code = f"{wrapper}\nfrom nnrun.cli.main import main\nmain()"
    return subprocess.Popen(
        [sys.executable, "-c", code, "train", str(config), "--quiet", "--set", f"backend={backend}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("KERAS_")}, **(env or {})},
    )


def finished(proc):
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err[-3000:]
    return out, err


def weights_of(run):
    import keras

    return keras.saving.load_model(run / "model.keras").get_weights()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@on("jax")
def test_one_process_with_two_host_devices_trains_on_both(write_config, tmp_path):
    config = write_config(**EVEN)
    out, _ = finished(nnrun(config, "jax", {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}))
    info = json.loads((tmp_path / "runs" / "latest" / "run.json").read_text())
    assert info["status"] == "completed"
    assert info["distribution"] == {
        "type": "data_parallel",
        "backend": "jax",
        "processes": 1,
        "devices": 2,
        "device_names": ["cpu:0", "cpu:1"],
    }
    assert out.strip().endswith(os.readlink(tmp_path / "runs" / "latest"))


@pytest.mark.slow
@on("jax")
def test_two_processes_on_loopback_write_one_run_with_the_model_both_trained(write_config, tmp_path):
    config = write_config(**EVEN)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    cluster = {
        "KERAS_DISTRIBUTION_JOB_ADDRESSES": f"127.0.0.1:{free_port()}",
        "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
        "TMPDIR": str(scratch),
    }
    procs = [nnrun(config, "jax", {**cluster, "KERAS_DISTRIBUTION_PROCESS_ID": str(i)}) for i in (0, 1)]
    try:
        (out0, _), (out1, err1) = [finished(p) for p in procs]
    finally:
        for p in procs:
            p.kill()
    runs = [p for p in (tmp_path / "runs").iterdir() if not p.is_symlink()]
    assert len(runs) == 1, runs
    assert out0.strip().splitlines()[-1] == str(runs[0])
    assert out1 == ""  # stdout is process 0's: the run directory
    info = json.loads((runs[0] / "run.json").read_text())
    assert (info["status"], info["distribution"]["processes"], info["distribution"]["devices"]) == ("completed", 2, 2)
    # Process 1 says which weights it ended with: the saved model's.
    assert f"process 1 of 2: done, weights sha256 {digest(weights_of(runs[0]))}" in err1
    assert list(scratch.iterdir()) == []  # process 1's scratch run directory is gone


@pytest.mark.slow
@on("jax")
def test_processes_with_different_data_refuse_to_train(write_config, tmp_path):
    arrays = []
    for i in (0, 1):  # the same shape, other numbers: as when one machine has a stale copy
        rng = np.random.default_rng(i)
        np.savez(tmp_path / f"data{i}.npz", x=rng.normal(size=(60, 4)).astype("float32"), y=rng.integers(0, 3, 60))
        arrays.append(
            write_config(f"p{i}.yaml", **EVEN, data={"source": "npz", "path": str(tmp_path / f"data{i}.npz")})
        )
    cluster = {"KERAS_DISTRIBUTION_JOB_ADDRESSES": f"127.0.0.1:{free_port()}", "KERAS_DISTRIBUTION_NUM_PROCESSES": "2"}
    procs = [nnrun(arrays[i], "jax", {**cluster, "KERAS_DISTRIBUTION_PROCESS_ID": str(i)}) for i in (0, 1)]
    try:
        results = [p.communicate(timeout=TIMEOUT) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [2, 2], [err[-2000:] for _, err in results]
    assert "the data differ between processes" in results[0][1]
    assert not (tmp_path / "runs").exists(), "nothing was written"


@pytest.mark.slow
@pytest.mark.compiled
@on("tensorflow")
def test_mirrored_strategy_over_two_cpus_gives_the_weights_of_one(runner, write_config, tmp_path):
    # Two devices in a process of its own (its CPU is split before TensorFlow starts); one in this one.
    split = (
        "import tensorflow as tf\ncpu = tf.config.list_physical_devices('CPU')[0]\n"
        "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)"
    )
    configs = {n: write_config(f"mirrored{n}.yaml", **EVEN, output={"dir": str(tmp_path / f"runs{n}")}) for n in (1, 2)}
    two = nnrun(configs[2], "tensorflow", wrapper=split)
    one = runner.invoke(cli, ["train", str(configs[1]), "--quiet"])
    assert one.exit_code == 0, one.output
    finished(two)
    runs = {n: tmp_path / f"runs{n}" / "latest" for n in (1, 2)}
    for n, run in runs.items():
        assert json.loads((run / "run.json").read_text())["distribution"]["devices"] == n
    for one, two in zip(weights_of(runs[1]), weights_of(runs[2]), strict=True):
        np.testing.assert_allclose(one, two, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "env, message",
    [
        (
            {"KERAS_DISTRIBUTION_NUM_PROCESSES": "two"},
            "KERAS_DISTRIBUTION_NUM_PROCESSES: must be a whole number of at least 1; got 'two'",
        ),
        ({"KERAS_DISTRIBUTION_NUM_PROCESSES": "2"}, "needs KERAS_DISTRIBUTION_PROCESS_ID"),
        (
            {"KERAS_DISTRIBUTION_NUM_PROCESSES": "2", "KERAS_DISTRIBUTION_PROCESS_ID": "2"},
            "must be below KERAS_DISTRIBUTION_NUM_PROCESSES (2); got 2",
        ),
        (
            {"KERAS_DISTRIBUTION_NUM_PROCESSES": "2", "KERAS_DISTRIBUTION_PROCESS_ID": "1"},
            "KERAS_DISTRIBUTION_JOB_ADDRESSES: must start with process 0's host:port",
        ),
    ],
)
def test_launch_variables_are_checked_before_anything_loads(runner, write_config, env, message):
    config = write_config(backend="jax", distribution="data_parallel")
    result = runner.invoke(cli, ["train", str(config)], env=env)
    assert result.exit_code == 2, result.output
    assert message in result.output


@pytest.mark.parametrize(
    "sections, message",
    [
        ({"backend": "jax"}, "the config has no distribution; add distribution: data_parallel"),
        ({"backend": "tensorflow", "distribution": "data_parallel"}, "several processes need backend: jax"),
    ],
)
def test_several_processes_need_jax_and_a_distribution(runner, write_config, sections, message):
    env = {
        "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
        "KERAS_DISTRIBUTION_PROCESS_ID": "0",
        "KERAS_DISTRIBUTION_JOB_ADDRESSES": "127.0.0.1:7777",
    }
    result = runner.invoke(cli, ["train", str(write_config(**sections))], env=env)
    assert result.exit_code == 2, result.output
    assert message in result.output


@pytest.mark.parametrize(
    "value, message",
    [
        ("multi_worker_mirrored", "Keras 3's fit does not work with tf.distribute.MultiWorkerMirroredStrategy"),
        ("MultiWorkerMirroredStrategy", "use data_parallel with backend: jax"),
        ("tf.distribute.MirroredStrategy", "data_parallel is MirroredStrategy on the tensorflow backend"),
        ({"type": "data_paralel"}, "distribution.type: input should be 'data_parallel'; got 'data_paralel'"),
        ({"type": "data_parallel", "devices": 0}, "distribution.devices: input should be greater than 0; got 0"),
    ],
)
def test_unsupported_distributions_are_refused_at_check(runner, write_config, value, message):
    result = runner.invoke(cli, ["check", str(write_config(distribution=value))])
    assert result.exit_code == 2, result.output
    assert message in result.output


@pytest.mark.backend
def test_more_devices_than_there_are_is_one_line(runner, write_config):
    result = runner.invoke(cli, ["check", str(write_config(distribution={"type": "data_parallel", "devices": 64}))])
    assert result.exit_code == 2, result.output
    assert "distribution.devices: 64, but this process has 1 (" in result.output


@pytest.mark.slow
@pytest.mark.compiled
def test_check_and_train_say_what_they_train_on(runner, write_config, tmp_path):
    config = write_config(**EVEN)
    result = runner.invoke(cli, ["check", str(config)])
    assert result.exit_code == 0, result.output
    assert "distribution: data_parallel over 1 device (" in result.output
    assert "global batch 12" in result.output
    result = runner.invoke(cli, ["train", str(config), "--quiet"])
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "runs" / "latest" / "run.json").read_text())
    assert info["distribution"]["devices"] == 1 and info["distribution"]["type"] == "data_parallel"


def test_resume_if_possible_is_refused_under_several_processes(runner, write_config):
    env = {
        "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
        "KERAS_DISTRIBUTION_PROCESS_ID": "0",
        "KERAS_DISTRIBUTION_JOB_ADDRESSES": "127.0.0.1:7777",
    }
    config = write_config(backend="jax", distribution="data_parallel")
    result = runner.invoke(cli, ["train", str(config), "--resume-if-possible"], env=env)
    assert result.exit_code == 2, result.output
    assert "--resume-if-possible runs in one process; unset the KERAS_DISTRIBUTION_* variables" in result.output
