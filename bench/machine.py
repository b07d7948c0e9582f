"""What a benchmark measured on: the machine, the nnrun tree, NumPy's float32 matmul peak, and the
MNIST fit's GFLOP/s against it (bench/run.py, bench/speed.py)."""

import importlib.metadata
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml
from rich.table import Table
from workflows import ROOT


def matmul_peak(n=2048, repeat=7):
    """NumPy's float32 matrix multiply on this machine, GFLOP/s (best of `repeat`): the ceiling to compare with."""
    import numpy as np

    a, b = np.random.default_rng(0).standard_normal((2, n, n), dtype=np.float32)
    a @ b  # BLAS starts its threads
    best = min(_seconds(lambda: a @ b) for _ in range(repeat))
    return 2 * n**3 / best / 1e9


def _shaped_peak(batch, shapes, repeat=50):
    """NumPy's GFLOP/s on a training step's own matrix products: for each dense
    layer (n_in, n_out), the forward X @ W and the backward X.T @ G and G @ W.T."""
    import numpy as np

    rng = np.random.default_rng(0)
    flops = seconds = 0.0
    for n_in, n_out in shapes:
        x, w = (
            rng.standard_normal((batch, n_in), dtype=np.float32),
            rng.standard_normal((n_in, n_out), dtype=np.float32),
        )
        g = rng.standard_normal((batch, n_out), dtype=np.float32)
        for product in (lambda x=x, w=w: x @ w, lambda x=x, g=g: x.T @ g, lambda g=g, w=w: g @ w.T):
            product()
            seconds += min(_seconds(product) for _ in range(repeat))
            flops += 2 * batch * n_in * n_out
    return flops / seconds / 1e9


def _seconds(work):
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def throughput(w, backends, peak):
    """The MNIST fit's GFLOP/s on each side, against NumPy's matmul peak.

    A dense layer of n_in x n_out costs 2 n_in n_out FLOPs a sample forward and
    twice that backward, so training costs 6 x (sum of n_in n_out) a sample and
    evaluating 2 x; biases and activations are left out (under 1%).
    """
    config = yaml.safe_load((ROOT / "configs" / w.config).read_text())
    width, macs, shapes = 28 * 28, 0, []
    for layer in config["model"]["layers"]:
        if isinstance(layer, dict) and "Dense" in layer:
            macs += width * layer["Dense"]["units"]
            shapes.append((width, layer["Dense"]["units"]))
            width = layer["Dense"]["units"]
    shaped = _shaped_peak(config["training"]["batch_size"], shapes)
    table = Table(
        "side",
        "fit s (median)",
        "GFLOP/s",
        "of NumPy's peak",
        "of NumPy at these shapes",
        title=f"MNIST fit throughput; NumPy float32 matmul: {peak:.0f} GFLOP/s at 2048x2048, "
        f"{shaped:.0f} GFLOP/s at this model's own products (batch {config['training']['batch_size']})",
    )

    def row(name, fits, flops):
        fit = statistics.median(fits)
        rate = flops / fit / 1e9
        table.add_row(name, f"{fit:.1f}", f"{rate:.0f}", f"{rate / peak:.0%}", f"{rate / shaped:.0%}")

    script_runs = [run["script"] for run in w.runs if run["backend"] == backends[0]]
    epochs = w.runs[0]["nnrun"]["epochs"]  # both sides train as many (--epochs overrides both)
    row("script (tensorflow)", [r["fit"] for r in script_runs], 6 * macs * 60000 * epochs)
    for backend in backends:
        runs = [run["nnrun"] for run in w.runs if run["backend"] == backend]
        n = runs[0]["samples"]
        row(
            f"nnrun {backend}",
            [r["fit"] for r in runs],
            runs[0]["epochs"] * macs * (6 * n["train"] + 2 * (n.get("validation") or 0)),
        )
    return table


def code_line(keras_home):
    """Which nnrun is measured: where it is imported from, and the commit of the tree."""
    where = subprocess.run(
        [sys.executable, "-c", "import nnrun; print(nnrun.__version__, nnrun.__file__)"],
        cwd=ROOT,
        env={**os.environ, "KERAS_HOME": keras_home},
        capture_output=True,
        text=True,
    ).stdout.strip()
    git = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True)
    commit = git.stdout.strip() if git.returncode == 0 else "not a git checkout"
    return f"nnrun {where or '?'} ({commit})"


def machine_line():
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor() or platform.machine(),
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    tf = next((importlib.metadata.version(d) for d in ("tensorflow", "tensorflow-cpu") if _installed(d)), "?")
    return (
        f"nproc {usable} ({cpu}), {platform.system()} {platform.release()}, python {platform.python_version()}, "
        f"tensorflow {tf}, keras {importlib.metadata.version('keras')}"
    )


def _installed(dist):
    try:
        importlib.metadata.version(dist)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False
